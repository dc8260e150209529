package synth_test

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ehrledger/ehrledger/bench/synth"
)

// Load a population: the shared resources first, then the patients'
// records from as many workers as the server takes, each reusing its
// buffer; then query with inputs known from the Config.
func Example() {
	pop := synth.New(synth.Config{Seed: 1, Patients: 1000})

	var requests atomic.Int64
	put := func(path string, body []byte) { requests.Add(1) } // PUT [base]/path
	post := func(bundle []byte) { requests.Add(1) }           // POST [base]

	for k, body := range pop.Shared() {
		put(pop.SharedPaths()[k], body)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var buf []byte
			for i := int(next.Add(1) - 1); i < pop.Patients(); i = int(next.Add(1) - 1) {
				buf = pop.AppendRecord(buf[:0], i)
				post(buf)
			}
		})
	}
	wg.Wait()
	fmt.Println(requests.Load(), "requests")

	q := pop.QueryInputs()
	fmt.Printf("Patient?identifier=%s|%s\n", q.MRNSystem, pop.MRN(42))
	fmt.Printf("Patient?family=%s: %d patients\n", q.FrequentFamily, q.FrequentFamilyPatients)
	fmt.Printf("Patient?family=%s: %d patient\n", q.RareFamily, q.RareFamilyPatients)
	fmt.Printf("Observation?code=%s&date=ge%s\n", q.CodesOf("Observation")[0].Token(), q.Recent.Start.Format("2006-01-02"))
	// Output:
	// 1145 requests
	// Patient?identifier=http://synth.ehrledger.example/mrn|S1-00000042
	// Patient?family=Smith: 25 patients
	// Patient?family=Brzęczyszczykiewicz: 1 patient
	// Observation?code=http://loinc.org|8867-4&date=ge2024-06-01
}
