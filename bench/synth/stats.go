package synth

import (
	"cmp"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"
)

// StatsSample is the number of records Stats counts when the population
// is larger than that, or empty.
const StatsSample = 5000

// Stats describes the records of a population, counted over all of them
// or, for populations of more than StatsSample patients (or none), over
// the first StatsSample records (a fair sample, records being
// independent draws).
type Stats struct {
	Records   int // records counted
	Resources int // resources in them, entries of their Bundles
	Bytes     int // their total size

	// Resources per record: mean and distribution.
	Mean                       float64
	Min, Median, P90, P99, Max int
	// PerType is the mean number of resources of each type per record.
	PerType map[string]float64
	// Codes lists every code found, by resource type (in the order
	// Patient, Encounter, Observation, Condition, MedicationRequest,
	// Procedure, Immunization, AllergyIntolerance) and then by decreasing
	// frequency.
	Codes []CodeCount
}

// CodeCount is how often a code occurs.
type CodeCount struct {
	Code
	PerRecord float64 // resources carrying the code, per record
	Records   float64 // share of records with at least one of them
}

// tally counts what a generator writes.
type tally struct {
	types  [nTypes]int
	codes  []int // resources per code index
	recs   []int // records per code index
	seen   []int // the stamp of the record that last counted each code
	stamp  int
	sizes  []int
	nbytes int
}

func newTally() *tally {
	return &tally{codes: make([]int, len(allCodes)), recs: make([]int, len(allCodes)), seen: make([]int, len(allCodes)), stamp: 1}
}

func (t *tally) code(c *code) {
	t.codes[c.idx]++
	if t.seen[c.idx] != t.stamp {
		t.seen[c.idx] = t.stamp
		t.recs[c.idx]++
	}
}

func (t *tally) record(entries int) {
	t.sizes = append(t.sizes, entries)
	t.stamp++
}

func (t *tally) add(o *tally) {
	for k := range t.types {
		t.types[k] += o.types[k]
	}
	for k := range t.codes {
		t.codes[k] += o.codes[k]
		t.recs[k] += o.recs[k]
	}
	t.sizes = append(t.sizes, o.sizes...)
	t.nbytes += o.nbytes
}

// Stats counts the population's records (see Stats); it is computed once,
// in parallel, on first use, which takes a fraction of a second.
func (p *Population) Stats() Stats {
	p.statsOnce.Do(func() {
		n := p.cfg.Patients
		if n == 0 || n > StatsSample {
			n = StatsSample
		}
		p.stats = p.count(n)
	})
	s := p.stats
	s.PerType = make(map[string]float64, len(p.stats.PerType))
	for k, v := range p.stats.PerType {
		s.PerType[k] = v
	}
	s.Codes = slices.Clone(p.stats.Codes)
	return s
}

// count generates records [0, n) and counts them.
func (p *Population) count(n int) Stats {
	workers := min(runtime.GOMAXPROCS(0), n)
	tallies := make([]*tally, workers)
	var wg sync.WaitGroup
	for w := range workers {
		t := newTally()
		tallies[w] = t
		wg.Go(func() {
			g := newGen(p)
			g.t = t
			for i := w; i < n; i += workers {
				g.b = g.b[:0]
				g.record(i)
				t.nbytes += len(g.b)
			}
		})
	}
	wg.Wait()
	t := newTally()
	for _, o := range tallies {
		t.add(o)
	}

	s := Stats{Records: n, Bytes: t.nbytes, PerType: map[string]float64{}}
	if n == 0 {
		return s
	}
	slices.Sort(t.sizes)
	for _, k := range t.sizes {
		s.Resources += k
	}
	s.Mean = float64(s.Resources) / float64(n)
	q := func(f float64) int { return t.sizes[min(n-1, int(math.Ceil(f*float64(n)))-1)] }
	s.Min, s.Median, s.P90, s.P99, s.Max = t.sizes[0], q(0.5), q(0.9), q(0.99), t.sizes[n-1]
	for k, c := range t.types {
		s.PerType[typeNames[k]] = float64(c) / float64(n)
	}
	order := map[string]int{}
	for k, name := range typeNames {
		order[name] = k
	}
	for _, c := range allCodes {
		if t.codes[c.idx] == 0 || c.ResourceType == "" {
			continue
		}
		s.Codes = append(s.Codes, CodeCount{Code: c.Code, PerRecord: float64(t.codes[c.idx]) / float64(n), Records: float64(t.recs[c.idx]) / float64(n)})
	}
	slices.SortStableFunc(s.Codes, func(a, b CodeCount) int {
		return cmp.Or(cmp.Compare(order[a.ResourceType], order[b.ResourceType]), cmp.Compare(b.PerRecord, a.PerRecord))
	})
	return s
}

// ResourcesPerPatient is the mean number of resources in a record (see
// Stats), to size runs; the shared resources are not counted.
func (p *Population) ResourcesPerPatient() float64 { return p.Stats().Mean }

// PatientsFor is the number of patients whose records hold about the
// given number of resources, with this population's tuning.
func (p *Population) PatientsFor(resources int) int {
	return max(1, int(math.Round(float64(resources)/p.ResourcesPerPatient())))
}

// Period is a time range [Start, End).
type Period struct{ Start, End time.Time }

// QueryInputs are search inputs known from the population's Config, for
// load runs.
type QueryInputs struct {
	MRNSystem string // identifier system; Population.MRN gives the values

	// FrequentFamily is the most frequent family name, carried by
	// FrequentFamilyPatients patients of the population (counted).
	FrequentFamily         string
	FrequentFamilyPatients int
	// RareFamily is carried by RareFamilyPatients patients: those whose
	// index is a multiple of RareEvery.
	RareFamily         string
	RareFamilyPatients int

	// Birth dates are days in Birth (about 5 % are written to the month
	// only).
	Birth Period
	// History holds every encounter and what was recorded at it: AsOf
	// minus HistoryYears up to AsOf. Chronic conditions may have begun
	// earlier, and an acute one up to three days before its encounter.
	History Period
	// Recent is the last 30 days before AsOf, a narrow date range.
	Recent Period

	// Codes are the codes present (from Stats, most frequent first within
	// each resource type).
	Codes []CodeCount
}

// QueryInputs returns the population's search inputs. The first call
// counts the population's FrequentFamily patients and its Stats, which
// takes a fraction of a second for a million resources.
func (p *Population) QueryInputs() QueryInputs {
	asOf := p.cfg.AsOf
	q := QueryInputs{
		MRNSystem:          MRNSystem,
		FrequentFamily:     FrequentFamily,
		RareFamily:         RareFamily,
		RareFamilyPatients: (p.cfg.Patients + RareEvery - 1) / RareEvery,
		Birth:              Period{BirthDateFirst, BirthDateLast.AddDate(0, 0, 1)},
		History:            Period{time.Unix(p.asOf-int64(float64(p.cfg.HistoryYears)*year), 0).UTC(), asOf},
		Recent:             Period{asOf.AddDate(0, 0, -30), asOf},
		Codes:              p.Stats().Codes,
	}
	q.FrequentFamilyPatients = p.countFamily(FrequentFamily)
	return q
}

// CodesOf returns the codes of one resource type, most frequent first.
func (q QueryInputs) CodesOf(resourceType string) []CodeCount {
	var out []CodeCount
	for _, c := range q.Codes {
		if c.ResourceType == resourceType {
			out = append(out, c)
		}
	}
	return out
}

// countFamily counts the patients of the population with family name f.
func (p *Population) countFamily(f string) int {
	n := p.cfg.Patients
	workers := max(1, min(runtime.GOMAXPROCS(0), n/1000))
	counts := make([]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			g := newGen(p)
			for i := w; i < n; i += workers {
				g.seed(i)
				g.demographics(i)
				if g.pt.Family == f {
					counts[w]++
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for _, c := range counts {
		total += c
	}
	return total
}
