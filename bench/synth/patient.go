package synth

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// Demographics of a patient, as its Patient resource states them: the
// inputs of patient searches.
type Demographics struct {
	MRN    string   // identifier value, system MRNSystem
	Family string   // name[0].family
	Given  []string // name[0].given
	Gender string   // male, female, other or unknown
	// BirthDate is YYYY-MM-DD, or YYYY-MM for about 5 % of patients.
	BirthDate  string
	City       string
	PostalCode string
	Country    string // ISO 3166 alpha-2
	Phone      string // telecom[0].value, use home
}

// person is the state of the patient being generated.
type person struct {
	Demographics
	female    bool
	city      int
	line      string // address line
	mobile    string // "" for none
	birthDay  int64  // local day number
	birthSec  int64  // local midnight of birthDay
	monthOnly bool
	gp        int     // shared practitioner index
	height    float64 // adult height, cm
	bmi       float64 // adult body mass index
	id        uuid
}

const year = 365.2425 * day

// demographics draws the patient's identity. It is the first thing drawn
// from a record's generator, so Population.Patient can stop after it.
func (g *gen) demographics(i int) {
	r := g.r
	pt := &g.pt
	pt.MRN = g.p.MRN(i)
	switch x := r.IntN(100); {
	case x < 49:
		pt.Gender, pt.female = "male", false
	case x < 98:
		pt.Gender, pt.female = "female", true
	case x < 99:
		pt.Gender, pt.female = "other", r.IntN(2) == 0
	default:
		pt.Gender, pt.female = "unknown", r.IntN(2) == 0
	}
	names := maleNames
	if pt.female {
		names = femaleNames
	}
	pt.Given = pt.Given[:0]
	pt.Given = append(pt.Given, names[r.IntN(len(names))])
	if r.IntN(100) < 30 {
		second := names[r.IntN(len(names))]
		if second != pt.Given[0] {
			pt.Given = append(pt.Given, second)
		}
	}
	pt.Family = familyNames[pick(familyCum, r.IntN(familyTotal))].name
	if i%RareEvery == 0 {
		pt.Family = RareFamily
	}

	first, last := BirthDateFirst.Unix()/day, BirthDateLast.Unix()/day
	pt.birthDay = first + r.Int64N(last-first+1)
	pt.monthOnly = r.IntN(100) < 5
	if pt.monthOnly {
		pt.BirthDate = string(appendMonth(nil, pt.birthDay))
	} else {
		pt.BirthDate = string(appendDate(nil, pt.birthDay))
	}

	pt.city = pick(cityCum, r.IntN(cityTotal))
	c := &cities[pt.city]
	pt.City, pt.Country = c.name, c.country
	pt.PostalCode = g.pattern(c.postal)
	pt.Phone = g.pattern(c.phone)
	pt.mobile = ""
	if r.IntN(100) < 40 {
		pt.mobile = g.pattern(c.phone)
	}
	street := c.streets[r.IntN(len(c.streets))]
	num := 1 + r.IntN(199)
	if c.numberFirst {
		pt.line = strconv.Itoa(num) + " " + street
	} else {
		pt.line = street + " " + strconv.Itoa(num)
	}
	pt.birthSec = pt.birthDay*day - int64(c.offset)
	pt.gp = pt.city*practitionersPerCity + r.IntN(practitionersPerCity)
	if pt.female {
		pt.height = clamp(163+6.5*r.NormFloat64(), 140, 190)
	} else {
		pt.height = clamp(176+7*r.NormFloat64(), 150, 205)
	}
	pt.bmi = clamp(26.5+4.5*r.NormFloat64(), 16.5, 55)
}

// pattern fills a pattern: '#' becomes a digit, 'A' a capital letter.
func (g *gen) pattern(p string) string {
	b := make([]byte, len(p))
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '#':
			b[i] = byte('0' + g.r.IntN(10))
		case 'A':
			b[i] = "ABCEGHJKLMNPRSTVWXYZ"[g.r.IntN(20)]
		default:
			b[i] = p[i]
		}
	}
	return string(b)
}

// age is the patient's age in years at t.
func (g *gen) age(t int64) float64 { return float64(t-g.pt.birthSec) / year }

// heightAt is the patient's height in cm at age a.
func (g *gen) heightAt(a float64) float64 {
	adult := g.pt.height
	switch {
	case a < 1:
		return 50 + 25*a
	case a < 2:
		return 75 + 12*(a-1)
	case a < 18:
		return 87 + (adult-87)*(a-2)/16
	case a > 70:
		return adult - 0.1*(a-70)
	}
	return adult
}

// bmiAt is the patient's typical body mass index at age a.
func (g *gen) bmiAt(a float64) float64 {
	switch {
	case a < 1:
		return 13 + 4*a
	case a < 5:
		return 17 - 0.4*(a-1)
	case a < 18:
		return 15.4 + (g.pt.bmi-15.4)*(a-5)/13
	}
	return g.pt.bmi
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// normal draws from N(mean, sd) clamped to [lo, hi].
func normal(r *rand.Rand, mean, sd, lo, hi float64) float64 {
	return clamp(mean+sd*r.NormFloat64(), lo, hi)
}

// writePatient writes the Patient entry.
func (g *gen) writePatient() {
	pt := &g.pt
	c := &cities[pt.city]
	g.begin(tPatient, pt.id)
	b := g.b
	b = append(b, `,"identifier":[{"use":"usual","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR","display":"Medical record number"}]},"system":"`+MRNSystem+`","value":`...)
	b = appendString(b, pt.MRN)
	b = append(b, `}],"active":true,"name":[{"use":"official","family":`...)
	b = appendString(b, pt.Family)
	b = append(b, `,"given":[`...)
	for k, n := range pt.Given {
		if k > 0 {
			b = append(b, ',')
		}
		b = appendString(b, n)
	}
	b = append(b, `]}],"telecom":[{"system":"phone","value":`...)
	b = appendString(b, pt.Phone)
	b = append(b, `,"use":"home"}`...)
	if pt.mobile != "" {
		b = append(b, `,{"system":"phone","value":`...)
		b = appendString(b, pt.mobile)
		b = append(b, `,"use":"mobile"}`...)
	}
	b = append(b, `],"gender":"`...)
	b = append(b, pt.Gender...)
	b = append(b, `","birthDate":"`...)
	b = append(b, pt.BirthDate...)
	b = append(b, `","address":[{"use":"home","line":[`...)
	b = appendString(b, pt.line)
	b = append(b, `],"city":`...)
	b = appendString(b, c.name)
	if c.district != "" {
		b = append(b, `,"district":`...)
		b = appendString(b, c.district)
	}
	if c.state != "" {
		b = append(b, `,"state":`...)
		b = appendString(b, c.state)
	}
	b = append(b, `,"postalCode":`...)
	b = appendString(b, pt.PostalCode)
	b = append(b, `,"country":"`...)
	b = append(b, c.country...)
	b = append(b, `"}],"generalPractitioner":[`...)
	b = append(b, practitionerRefs[pt.gp]...)
	b = append(b, `],"managingOrganization":`...)
	b = append(b, organizationRefs[pt.city+1]...)
	g.b = b
	g.end(tPatient)
}
