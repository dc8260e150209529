package synth

import (
	"math"
	"math/rand/v2"
	"slices"
)

// gen generates records; one is used by one goroutine at a time and its
// buffers are reused from record to record.
type gen struct {
	p      *Population
	pcg    *rand.PCG
	r      *rand.Rand
	b      []byte
	idBase [2]uint64
	nextID uint64
	n      int    // entries written
	t      *tally // counts what is written, nil when not counting

	pt    person
	encs  []encounter
	conds []condition
	rxs   []prescription
	flu   int // season (year) of the last influenza vaccination
	vx    int // childhood vaccines given
	covid bool
}

// Encounter classes.
const (
	amb = iota
	emer
	imp
)

type encounter struct {
	id         uuid
	start, end int64 // end 0: in progress
	class      int
	kind       *code
	prac       int // shared practitioner index
	reason     int // chronic condition followed up, -1 for none
	acute      *disease
	acuteID    uuid
}

type condition struct {
	d      *disease
	id     uuid
	onset  int64
	abated int64 // 0: still active
	enc    int   // encounter where diagnosed, -1 for none
}

type prescription struct {
	m      *med
	cond   int
	enc    int // -1: not written with an encounter
	at     int64
	status string
}

func newGen(p *Population) *gen {
	g := &gen{p: p, pcg: rand.NewPCG(0, 0)}
	g.r = rand.New(g.pcg)
	return g
}

// seed starts patient i's stream: the PCG is seeded with the population's
// seed and a hash of i, so every record is independent of the others.
func (g *gen) seed(i int) {
	g.pcg.Seed(g.p.cfg.Seed, mix64(uint64(i)+0x9e3779b97f4a7c15))
}

// newID returns the next UUID of the record. UUIDs come from a counter
// through a bijection, so they never repeat within a record.
func (g *gen) newID() uuid {
	k := g.nextID * 0x9e3779b97f4a7c15
	g.nextID++
	hi := mix64(g.idBase[0] + k)
	lo := mix64(g.idBase[1] ^ k)
	return uuid{hi&^0xf000 | 0x4000, lo&^(3<<62) | 2<<62}
}

// record appends patient i's transaction Bundle to g.b.
func (g *gen) record(i int) {
	g.seed(i)
	g.demographics(i)
	g.idBase = [2]uint64{g.r.Uint64(), g.r.Uint64()}
	g.nextID = 0
	g.n = 0
	g.pt.id = g.newID()
	g.plan()

	g.b = append(g.b, `{"resourceType":"Bundle","type":"transaction","entry":[`...)
	g.writePatient()
	if !g.p.cfg.CoreOnly {
		g.writeAllergies()
	}
	for k := range g.conds {
		g.writeCondition(&g.conds[k])
	}
	for k := range g.rxs {
		if g.rxs[k].enc < 0 {
			g.writePrescription(&g.rxs[k], nil)
		}
	}
	g.flu, g.vx, g.covid = 0, 0, false
	for j := range g.encs {
		g.writeEncounter(j)
	}
	g.b = append(g.b, `]}`...)
	if g.t != nil {
		g.t.record(g.n)
	}
}

// plan draws the shape of the record: chronic conditions, encounters,
// and prescriptions, whose ids other entries refer to before or after
// they are written.
func (g *gen) plan() {
	r := g.r
	cfg := &g.p.cfg
	asOf := g.p.asOf
	ageNow := g.age(asOf)
	g.conds = g.conds[:0]
	g.encs = g.encs[:0]
	g.rxs = g.rxs[:0]

	// Chronic conditions, by prevalence at the patient's current age.
	for _, d := range chronicDiseases {
		if ageNow < d.minAge || r.Float64() >= g.prevalence(d, ageNow) {
			continue
		}
		onsetAge := d.minAge + r.Float64()*(ageNow-d.minAge)
		c := condition{d: d, id: g.newID(), onset: g.pt.birthSec + int64(onsetAge*year), enc: -1}
		if d.resolve > 0 && r.Float64() < d.resolve {
			c.abated = c.onset + 60*day + int64(r.Float64()*float64(asOf-c.onset))
			if c.abated >= asOf {
				c.abated = 0
			}
		}
		g.conds = append(g.conds, c)
	}

	// Encounters: how many (skewed: log-normal above the minimum, more
	// with age and chronic conditions) and when.
	from := max(g.pt.birthSec, asOf-int64(float64(cfg.HistoryYears)*year))
	factor := 1 + 0.2*float64(len(g.conds))
	if ageNow > 65 {
		factor += 0.3
	}
	n := cfg.MinEncounters + int(math.Exp(0.95+0.9*r.NormFloat64())*factor)
	n = min(n, cfg.MaxEncounters)
	off := int64(cities[g.pt.city].offset)
	firstDay, lastDay := localDay(from, int(off)), localDay(asOf, int(off))-1
	if lastDay < firstDay {
		lastDay = firstDay
	}
	for range n {
		e := encounter{id: g.newID(), reason: -1}
		switch x := r.IntN(100); {
		case x < 85:
			e.class = amb
		case x < 95:
			e.class = emer
		default:
			e.class = imp
		}
		dayStart := (firstDay+r.Int64N(lastDay-firstDay+1))*day - off
		switch e.class {
		case amb:
			e.start = dayStart + 8*3600 + int64(r.IntN(38))*15*60
			e.end = e.start + int64(15+r.IntN(46))*60
		case emer:
			e.start = dayStart + int64(r.IntN(day))
			e.end = e.start + int64(3600+r.IntN(7*3600))
		default:
			e.start = dayStart + int64(r.IntN(day))
			e.end = e.start + int64(day*(0.5+r.ExpFloat64()*3.5))
		}
		e.start = max(e.start, g.pt.birthSec)
		g.encs = append(g.encs, e)
	}
	slices.SortFunc(g.encs, func(a, b encounter) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	// A few patients are in the middle of an encounter as of AsOf.
	last := &g.encs[len(g.encs)-1]
	if r.IntN(100) < 3 {
		var ago int64
		switch last.class {
		case amb:
			ago = int64(10+r.IntN(40)) * 60
		case emer:
			ago = int64(600 + r.IntN(6*3600))
		default:
			ago = int64(3600 + r.IntN(4*day))
		}
		last.start = max(last.start, asOf-ago)
		last.end = asOf + 1
	}
	for k := range g.encs {
		if e := &g.encs[k]; e.end > asOf {
			e.end = 0
		}
	}

	// Diagnosis: a chronic condition starting within the history was
	// found at the first encounter after its onset.
	for k := range g.conds {
		c := &g.conds[k]
		if c.onset < g.encs[0].start {
			continue
		}
		for j := range g.encs {
			if g.encs[j].start >= c.onset {
				c.onset, c.enc = g.encs[j].start, j
				break
			}
		}
		if c.abated != 0 && c.abated <= c.onset {
			c.abated = c.onset + 60*day
			if c.abated >= asOf {
				c.abated = 0
			}
		}
	}

	// What each encounter is for, and who sees the patient.
	for j := range g.encs {
		e := &g.encs[j]
		a := g.age(e.start)
		e.prac = g.pt.city*practitionersPerCity + r.IntN(practitionersPerCity)
		switch e.class {
		case emer:
			e.kind = encEmergency
			if r.IntN(100) < 60 {
				e.acute = acuteEmergency[r.IntN(len(acuteEmergency))]
			}
		case imp:
			e.kind = encAdmission
		default:
			if r.IntN(100) < 80 {
				e.prac = g.pt.gp
			}
			var active [16]int
			na := 0
			for k := range g.conds {
				if na < len(active) && g.activeAt(k, e.start) {
					active[na] = k
					na++
				}
			}
			switch x := r.IntN(100); {
			case x < 30 && a < 18:
				e.kind = encWellChild
			case x < 25:
				e.kind = encCheckup
			case x < 65 && na > 0:
				e.kind = encFollowUp
				e.reason = active[r.IntN(na)]
			default:
				e.kind = encSymptom
				if r.IntN(100) < 50 {
					e.acute = acuteAmbulatory[r.IntN(len(acuteAmbulatory))]
				}
			}
		}
		if e.acute != nil {
			e.acuteID = g.newID()
		}
	}

	// Prescriptions for chronic conditions: at diagnosis, then renewed at
	// ambulatory encounters a year or more apart, at most three; the last
	// is active unless the condition has resolved.
	for k := range g.conds {
		c := &g.conds[k]
		for mi, m := range c.d.meds {
			if mi > 0 && r.IntN(100) < 50 {
				continue
			}
			first := len(g.rxs)
			var prev int64 = math.MinInt64
			for j := range g.encs {
				e := &g.encs[j]
				if e.start < c.onset || (c.abated != 0 && e.start >= c.abated) {
					continue
				}
				if j != c.enc && (e.class != amb || e.start < prev+365*day) {
					continue
				}
				if len(g.rxs)-first == 3 {
					g.rxs = slices.Delete(g.rxs, first, first+1)
				}
				g.rxs = append(g.rxs, prescription{m: m, cond: k, enc: j, at: e.start + 60})
				prev = e.start
			}
			if len(g.rxs) == first {
				g.rxs = append(g.rxs, prescription{m: m, cond: k, enc: -1, at: c.onset})
			}
			for q := first; q < len(g.rxs); q++ {
				g.rxs[q].status = "completed"
			}
			lastRx := &g.rxs[len(g.rxs)-1]
			lastRx.status = "active"
			if c.abated != 0 || r.IntN(100) < 8 {
				lastRx.status = "stopped"
			}
		}
	}
}

// activeAt reports whether chronic condition k is active at t.
func (g *gen) activeAt(k int, t int64) bool {
	c := &g.conds[k]
	return c.onset <= t && (c.abated == 0 || t < c.abated)
}

// has reports whether the patient has disease d active at t.
func (g *gen) has(d *disease, t int64) bool {
	for k := range g.conds {
		if g.conds[k].d == d {
			return g.activeAt(k, t)
		}
	}
	return false
}

// hasEver reports whether disease d was planned for the patient.
func (g *gen) hasEver(d *disease) bool {
	for k := range g.conds {
		if g.conds[k].d == d {
			return true
		}
	}
	return false
}

// prevalence is the chance of having had chronic disease d by age a.
func (g *gen) prevalence(d *disease, a float64) float64 {
	obese := g.pt.bmi >= 30
	switch d {
	case dxObesity:
		if obese {
			return 0.7
		}
		return 0
	case dxHypertension:
		p := clamp((a-20)/60*0.55, 0, 0.55)
		if obese {
			p += 0.15
		}
		return p
	case dxDiabetes:
		p := clamp(0.02+(a-25)*0.0035, 0, 0.25)
		if obese {
			p *= 2
		}
		return p
	case dxHyperlipidemia:
		return clamp(0.05+(a-30)*0.006, 0, 0.4)
	case dxAsthma:
		return 0.08
	case dxCOPD:
		return clamp(0.02+(a-40)*0.002, 0, 0.12)
	case dxDepression:
		return 0.09
	case dxCKD:
		p := clamp(0.03+(a-40)*0.003, 0, 0.15)
		if g.hasEver(dxDiabetes) {
			p += 0.1
		}
		if g.hasEver(dxHypertension) {
			p += 0.05
		}
		return p
	case dxAFib:
		return clamp((a-50)*0.004, 0, 0.12)
	case dxOsteoarthritis:
		return clamp((a-45)*0.008, 0, 0.3)
	}
	return 0
}
