package synth

import (
	"fmt"
	"strconv"
	"sync"
)

// Population generates patient records deterministically: the same
// Config always gives byte-identical output. It is safe for concurrent
// use; records may be generated in any order and in parallel.
type Population struct {
	cfg       Config // with defaults
	asOf      int64  // cfg.AsOf in Unix seconds
	mrnPrefix string
	gens      sync.Pool // of *gen

	statsOnce sync.Once
	stats     Stats
}

// New returns the population cfg describes. It panics if cfg.Validate
// fails: a Config is written by the program, not read from its input
// (commands check flags with Validate first).
func New(cfg Config) *Population {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	p := &Population{cfg: cfg.withDefaults()}
	p.asOf = p.cfg.AsOf.Unix()
	p.mrnPrefix = "S" + strconv.FormatUint(cfg.Seed, 10) + "-"
	p.gens.New = func() any { return newGen(p) }
	return p
}

// Config returns the population's configuration with defaults applied.
func (p *Population) Config() Config { return p.cfg }

// Patients is the number of patients and records, Config.Patients.
func (p *Population) Patients() int { return p.cfg.Patients }

// Record returns patient i's record: a FHIR R4 transaction Bundle (JSON)
// whose first entry is the Patient, followed by its AllergyIntolerances,
// its chronic Conditions, and then, for each Encounter in time order, the
// Encounter and what was recorded at it (the Condition diagnosed,
// Observations, MedicationRequests, Procedures, Immunizations). Every
// entry is a POST with a urn:uuid fullUrl; references between entries use
// those urn:uuid values, some pointing forward (an Encounter's
// reasonReference to a Condition written later, a Condition's encounter
// to one written later), so the server must resolve them all before
// writing. References to Practitioners and Organizations name the shared
// resources by id (see Shared).
//
// Record(i) depends only on the Config's Seed and tuning fields and on i,
// not on Patients nor on other records: a population is a prefix of any
// larger one with the same seed. It panics if i is not in [0, Patients).
func (p *Population) Record(i int) []byte {
	return p.AppendRecord(nil, i)
}

// AppendRecord appends Record(i) to dst and returns the extended slice,
// for callers that reuse buffers.
func (p *Population) AppendRecord(dst []byte, i int) []byte {
	p.check(i)
	g := p.gens.Get().(*gen)
	g.b = dst
	g.record(i)
	dst = g.b
	g.b = nil
	p.gens.Put(g)
	return dst
}

func (p *Population) check(i int) {
	if i < 0 || i >= p.cfg.Patients {
		panic(fmt.Sprintf("synth: patient %d out of range [0, %d)", i, p.cfg.Patients))
	}
}

// MRN returns patient i's medical record number, the value of the
// Patient's identifier with system MRNSystem: "S", the seed in decimal,
// "-", and i in at least eight digits, as in "S42-00001234". MRNs are
// unique within a population and across seeds. Unlike Record, MRN accepts
// any i ≥ 0.
func (p *Population) MRN(i int) string {
	return string(appendPadded([]byte(p.mrnPrefix), i, 8))
}

// Patient returns the demographics written in patient i's Patient
// resource, without generating the rest of the record.
func (p *Population) Patient(i int) Demographics {
	p.check(i)
	g := p.gens.Get().(*gen)
	g.seed(i)
	g.demographics(i)
	d := g.pt.Demographics
	d.Given = append([]string(nil), d.Given...)
	p.gens.Put(g)
	return d
}
