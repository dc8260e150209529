// Command synth writes a synthetic patient population (package
// bench/synth) as NDJSON: the shared Organizations and Practitioners as
// one transaction Bundle of PUTs on the first line, then one transaction
// Bundle per patient, in order.
//
//	go run ./bench/synth/cmd/synth -seed 1 -resources 1000000 > population.ndjson
//	go run ./bench/synth/cmd/synth -seed 1 -patients 100 -stats
//
// -stats prints the population's statistics and query inputs as JSON
// instead of the records. Timing goes to standard error.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ehrledger/ehrledger/bench/synth"
)

func main() {
	seed := flag.Uint64("seed", 1, "population seed")
	patients := flag.Int("patients", 0, "number of patients")
	resources := flag.Int("resources", 0, "size the population to about this many resources (instead of -patients)")
	coreOnly := flag.Bool("core-only", false, "leave out Immunizations, AllergyIntolerances and Procedures")
	asOf := flag.String("as-of", "", "date the records are written as of, YYYY-MM-DD (default "+synth.DefaultAsOf.Format(time.DateOnly)+")")
	noShared := flag.Bool("no-shared", false, "do not write the shared resources' Bundle first")
	stats := flag.Bool("stats", false, "print statistics and query inputs as JSON instead of records")
	workers := flag.Int("workers", runtime.GOMAXPROCS(0), "generating goroutines")
	flag.Parse()

	cfg := synth.Config{Seed: *seed, Patients: *patients, CoreOnly: *coreOnly}
	if *asOf != "" {
		t, err := time.Parse(time.DateOnly, *asOf)
		if err != nil {
			fatal(fmt.Errorf("-as-of: %w", err))
		}
		cfg.AsOf = t
	}
	if *resources > 0 {
		if *patients > 0 {
			fatal(errors.New("give -patients or -resources, not both"))
		}
		cfg.Patients = synth.New(cfg).PatientsFor(*resources)
	}
	if err := cfg.Validate(); err != nil {
		fatal(err)
	}
	pop := synth.New(cfg)

	if *stats {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		err := enc.Encode(struct {
			Config              synth.Config
			ResourcesPerPatient float64
			Stats               synth.Stats
			QueryInputs         synth.QueryInputs
		}{pop.Config(), pop.ResourcesPerPatient(), pop.Stats(), pop.QueryInputs()})
		if err != nil {
			fatal(err)
		}
		return
	}

	start := time.Now()
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	if !*noShared {
		w.Write(pop.SharedBundle())
		w.WriteByte('\n')
	}
	n, err := write(w, pop, max(1, *workers))
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		fatal(err)
	}
	elapsed := time.Since(start)
	fmt.Fprintf(os.Stderr, "synth: %d records (about %.0f resources), %.1f MB in %v (%.0f MB/s)\n",
		cfg.Patients, float64(cfg.Patients)*pop.ResourcesPerPatient(), float64(n)/1e6, elapsed.Round(time.Millisecond), float64(n)/1e6/elapsed.Seconds())
}

// chunkSize is the number of records a worker generates at a time.
const chunkSize = 64

type chunk struct {
	index int
	data  []byte
}

// write generates the records with the given number of workers and
// writes them to w in order, one per line, keeping at most 2*workers
// chunks in memory. It returns the number of bytes written.
func write(w io.Writer, pop *synth.Population, workers int) (int64, error) {
	chunks := (pop.Patients() + chunkSize - 1) / chunkSize
	tokens := make(chan struct{}, 2*workers) // chunks in flight
	done := make(chan chunk, 2*workers)
	stop := make(chan struct{})
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case tokens <- struct{}{}:
				case <-stop:
					return
				}
				k := int(next.Add(1) - 1)
				if k >= chunks {
					return
				}
				var b []byte
				for i := k * chunkSize; i < min((k+1)*chunkSize, pop.Patients()); i++ {
					b = pop.AppendRecord(b, i)
					b = append(b, '\n')
				}
				done <- chunk{k, b}
			}
		})
	}
	go func() {
		wg.Wait()
		close(done)
	}()

	var written int64
	var err error
	pending := map[int][]byte{}
	want := 0
	for c := range done {
		pending[c.index] = c.data
		for err == nil {
			b, ok := pending[want]
			if !ok {
				break
			}
			delete(pending, want)
			want++
			var n int
			n, err = w.Write(b)
			written += int64(n)
			<-tokens
			if err != nil {
				close(stop)
			}
		}
	}
	return written, err
}

func fatal(err error) {
	msg := err.Error()
	if !strings.HasPrefix(msg, "synth: ") {
		msg = "synth: " + msg
	}
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}
