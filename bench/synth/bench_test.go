package synth

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkRecord generates records one after another on one goroutine,
// reusing the buffer as a loader would.
func BenchmarkRecord(b *testing.B) {
	p := New(Config{Seed: 1, Patients: 1 << 30})
	s := p.Stats()
	b.SetBytes(int64(s.Bytes / s.Records))
	var buf []byte
	n := 0
	for b.Loop() {
		buf = p.AppendRecord(buf[:0], n)
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(n)*s.Mean), "ns/resource")
}

// BenchmarkRecordParallel generates records on every processor.
func BenchmarkRecordParallel(b *testing.B) {
	p := New(Config{Seed: 1, Patients: 1 << 30})
	s := p.Stats()
	b.SetBytes(int64(s.Bytes / s.Records))
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var buf []byte
		for pb.Next() {
			buf = p.AppendRecord(buf[:0], int(next.Add(1)-1))
		}
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/(float64(next.Load())*s.Mean), "ns/resource")
}

// BenchmarkMillion generates the records of about a million resources
// with one worker per processor; an op is the whole population.
func BenchmarkMillion(b *testing.B) {
	patients := New(Config{Seed: 1}).PatientsFor(1_000_000)
	p := New(Config{Seed: 1, Patients: patients})
	workers := runtime.GOMAXPROCS(0)
	for b.Loop() {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				var buf []byte
				for i := int(next.Add(1) - 1); i < patients; i = int(next.Add(1) - 1) {
					buf = p.AppendRecord(buf[:0], i)
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(patients), "patients/op")
}
