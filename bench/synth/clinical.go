package synth

import "math/rand/v2"

// Resource types written, as tally indexes.
const (
	tPatient = iota
	tEncounter
	tObservation
	tCondition
	tMedicationRequest
	tProcedure
	tImmunization
	tAllergyIntolerance
	nTypes
)

var typeNames = [nTypes]string{
	"Patient", "Encounter", "Observation", "Condition", "MedicationRequest",
	"Procedure", "Immunization", "AllergyIntolerance",
}

// begin opens an entry: its fullUrl and the start of its resource.
func (g *gen) begin(t int, id uuid) {
	b := g.b
	if g.n > 0 {
		b = append(b, ',')
	}
	g.n++
	b = append(b, `{"fullUrl":"`...)
	b = appendURN(b, id)
	b = append(b, `","resource":{"resourceType":"`...)
	b = append(b, typeNames[t]...)
	g.b = append(b, '"')
}

// end closes an entry with its POST request.
func (g *gen) end(t int) {
	b := append(g.b, `},"request":{"method":"POST","url":"`...)
	b = append(b, typeNames[t]...)
	g.b = append(b, `"}}`...)
	if g.t != nil {
		g.t.types[t]++
	}
}

// field appends `,"name":` and the CodeableConcept of c.
func (g *gen) concept(name string, c *code) {
	b := append(g.b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	g.b = append(b, c.cc...)
	if g.t != nil {
		g.t.code(c)
	}
}

// ref appends `,"name":{"reference":"urn:uuid:..."}`.
func (g *gen) ref(name string, id uuid) {
	b := append(g.b, `,"`...)
	b = append(b, name...)
	b = append(b, `":{"reference":"`...)
	b = appendURN(b, id)
	g.b = append(b, `"}`...)
}

// shared appends `,"name":` and a prebuilt reference to a shared resource;
// list wraps it in an array.
func (g *gen) shared(name, ref string, list bool) {
	b := append(g.b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	if list {
		b = append(b, '[')
	}
	b = append(b, ref...)
	if list {
		b = append(b, ']')
	}
	g.b = b
}

// dateTime appends `,"name":"<dateTime>"` in the patient's zone.
func (g *gen) dateTime(name string, t int64) {
	b := append(g.b, `,"`...)
	b = append(b, name...)
	b = append(b, `":"`...)
	b = appendDateTime(b, t, cities[g.pt.city].offset)
	g.b = append(b, '"')
}

// str appends `,"name":"value"` for a value that needs no escaping.
func (g *gen) str(name, value string) {
	b := append(g.b, `,"`...)
	b = append(b, name...)
	b = append(b, `":"`...)
	b = append(b, value...)
	g.b = append(b, '"')
}

const (
	clinicalActive   = `{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active","display":"Active"}]}`
	clinicalResolved = `{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"resolved","display":"Resolved"}]}`
	verConfirmed     = `{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"confirmed","display":"Confirmed"}]}`
	catProblemList   = `[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"problem-list-item","display":"Problem List Item"}]}]`
	catDiagnosis     = `[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"encounter-diagnosis","display":"Encounter Diagnosis"}]}]`
	catVitalSigns    = `[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}]}]`
	catLaboratory    = `[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory","display":"Laboratory"}]}]`
	interpLow        = `[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"L","display":"Low"}]}]`
	interpNormal     = `[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"N","display":"Normal"}]}]`
	interpHigh       = `[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation","code":"H","display":"High"}]}]`
)

// writeCondition writes a chronic condition.
func (g *gen) writeCondition(c *condition) {
	g.begin(tCondition, c.id)
	if c.abated != 0 {
		g.b = append(g.b, `,"clinicalStatus":`+clinicalResolved...)
	} else {
		g.b = append(g.b, `,"clinicalStatus":`+clinicalActive...)
	}
	g.b = append(g.b, `,"verificationStatus":`+verConfirmed+`,"category":`+catProblemList...)
	g.concept("code", c.d.code)
	g.ref("subject", g.pt.id)
	if c.enc >= 0 {
		g.ref("encounter", g.encs[c.enc].id)
	}
	if c.enc >= 0 || g.r.IntN(100) < 70 {
		g.dateTime("onsetDateTime", c.onset)
	} else {
		// Onset known to the month only: a dateTime of precision month.
		b := append(g.b, `,"onsetDateTime":"`...)
		b = appendMonth(b, localDay(c.onset, cities[g.pt.city].offset))
		g.b = append(b, '"')
	}
	if c.abated != 0 {
		g.dateTime("abatementDateTime", c.abated)
	}
	rec := c.onset
	if c.enc < 0 && len(g.encs) > 0 && g.encs[0].start > rec {
		rec = g.encs[0].start
	}
	g.dateTime("recordedDate", rec)
	if c.enc >= 0 {
		g.shared("recorder", practitionerRefs[g.encs[c.enc].prac], false)
	}
	g.end(tCondition)
}

// writeAcute writes the acute problem diagnosed at encounter e.
func (g *gen) writeAcute(e *encounter) {
	g.begin(tCondition, e.acuteID)
	abated := e.start + int64(7+g.r.IntN(15))*day
	if abated < g.p.asOf {
		g.b = append(g.b, `,"clinicalStatus":`+clinicalResolved...)
	} else {
		g.b = append(g.b, `,"clinicalStatus":`+clinicalActive...)
	}
	g.b = append(g.b, `,"verificationStatus":`+verConfirmed+`,"category":`+catDiagnosis...)
	g.concept("code", e.acute.code)
	g.ref("subject", g.pt.id)
	g.ref("encounter", e.id)
	g.dateTime("onsetDateTime", max(e.start-int64(g.r.IntN(3*day)), g.pt.birthSec))
	if abated < g.p.asOf {
		g.dateTime("abatementDateTime", abated)
	}
	g.dateTime("recordedDate", e.start)
	g.shared("recorder", practitionerRefs[e.prac], false)
	g.end(tCondition)
	if len(e.acute.meds) > 0 && g.r.IntN(100) < 60 {
		rx := prescription{m: e.acute.meds[g.r.IntN(len(e.acute.meds))], at: e.start + 120, status: "completed"}
		if rx.at+14*day > g.p.asOf {
			rx.status = "active"
		}
		g.writeRequest(&rx, e, e.acuteID)
	}
}

// writePrescription writes a chronic condition's MedicationRequest; e is
// the encounter it was written at, or nil.
func (g *gen) writePrescription(rx *prescription, e *encounter) {
	g.writeRequest(rx, e, g.conds[rx.cond].id)
}

func (g *gen) writeRequest(rx *prescription, e *encounter, reason uuid) {
	g.begin(tMedicationRequest, g.newID())
	g.str("status", rx.status)
	g.b = append(g.b, `,"intent":"order"`...)
	g.concept("medicationCodeableConcept", rx.m.code)
	g.ref("subject", g.pt.id)
	prac := g.pt.gp
	if e != nil {
		g.ref("encounter", e.id)
		prac = e.prac
	}
	g.dateTime("authoredOn", rx.at)
	g.shared("requester", practitionerRefs[prac], false)
	g.b = append(g.b, `,"reasonReference":[{"reference":"`...)
	g.b = appendURN(g.b, reason)
	g.b = append(g.b, `"}],"dosageInstruction":`...)
	g.b = append(g.b, rx.m.dosage...)
	g.end(tMedicationRequest)
}

// writeEncounter writes encounter j and everything recorded at it.
func (g *gen) writeEncounter(j int) {
	e := &g.encs[j]
	g.begin(tEncounter, e.id)
	if e.end == 0 {
		g.b = append(g.b, `,"status":"in-progress","class":`...)
	} else {
		g.b = append(g.b, `,"status":"finished","class":`...)
	}
	switch e.class {
	case amb:
		g.b = append(g.b, classAMB...)
	case emer:
		g.b = append(g.b, classEMER...)
	default:
		g.b = append(g.b, classIMP...)
	}
	g.b = append(g.b, `,"type":[`...)
	g.b = append(g.b, e.kind.cc...)
	g.b = append(g.b, ']')
	if g.t != nil {
		g.t.code(e.kind)
	}
	g.ref("subject", g.pt.id)
	g.b = append(g.b, `,"participant":[{"type":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"PPRF","display":"primary performer"}]}],"individual":`...)
	g.b = append(g.b, practitionerRefs[e.prac]...)
	g.b = append(g.b, `}],"period":{"start":"`...)
	g.b = appendDateTime(g.b, e.start, cities[g.pt.city].offset)
	if e.end != 0 {
		g.b = append(g.b, `","end":"`...)
		g.b = appendDateTime(g.b, e.end, cities[g.pt.city].offset)
	}
	g.b = append(g.b, `"}`...)
	switch {
	case e.reason >= 0:
		g.b = append(g.b, `,"reasonReference":[{"reference":"`...)
		g.b = appendURN(g.b, g.conds[e.reason].id)
		g.b = append(g.b, `"}]`...)
	case e.acute != nil:
		g.b = append(g.b, `,"reasonReference":[{"reference":"`...)
		g.b = appendURN(g.b, e.acuteID)
		g.b = append(g.b, `"}]`...)
	}
	g.shared("serviceProvider", organizationRefs[g.pt.city+1], false)
	g.end(tEncounter)

	if e.acute != nil {
		g.writeAcute(e)
	}
	g.observations(e)
	for k := range g.rxs {
		if g.rxs[k].enc == j {
			g.writePrescription(&g.rxs[k], e)
		}
	}
	if !g.p.cfg.CoreOnly {
		g.procedures(e)
		g.immunizations(e)
	}
}

// until is the end of encounter e, or AsOf while it is in progress.
func (g *gen) until(e *encounter) int64 {
	if e.end == 0 {
		return g.p.asOf
	}
	return e.end
}

// within draws an instant of e at most span seconds after it starts.
func (g *gen) within(e *encounter, span int64) int64 {
	span = min(span, g.until(e)-e.start)
	if span <= 0 {
		return e.start
	}
	return e.start + g.r.Int64N(span)
}

// observations writes the vital signs and labs taken at e.
func (g *gen) observations(e *encounter) {
	r := g.r
	rounds := 1
	if e.class == imp {
		rounds = int(min(3, 1+(g.until(e)-e.start)/day))
	}
	for round := range rounds {
		at := g.within(e, 30*60)
		if round > 0 {
			at = min(e.start+int64(round)*day+int64(r.IntN(3600)), g.until(e))
		}
		g.vitals(e, at)
		labs := 0
		switch {
		case e.class == imp:
			labs = 100
		case e.class == emer:
			labs = 40
		case e.kind == encFollowUp:
			labs = 40
		case e.kind == encCheckup:
			labs = 25
		case e.kind == encSymptom:
			labs = 8
		}
		if r.IntN(100) < labs {
			g.labs(e, min(at+int64(r.IntN(1800)), g.until(e)))
		}
	}
}

// vitals writes the vital signs measured at t.
func (g *gen) vitals(e *encounter, t int64) {
	r := g.r
	a := g.age(t)
	var pHR, pBP, pW, pH, pT int
	switch e.class {
	case amb:
		pHR, pBP, pW, pH, pT = 45, 45, 30, 10, 10
		if a < 18 {
			pW, pH = 80, 70
		}
		if e.acute != nil {
			pT = 50
		}
	case emer:
		pHR, pBP, pW, pH, pT = 100, 90, 15, 5, 80
	default:
		pHR, pBP, pW, pH, pT = 100, 100, 40, 10, 100
	}
	if a < 3 {
		pBP = 0
	}
	if r.IntN(100) < pHR {
		mean, sd := 74.0, 10.0
		switch {
		case a < 1:
			mean, sd = 130, 12
		case a < 6:
			mean = 105
		case a < 12:
			mean = 90
		}
		if e.class == emer {
			mean += 10
		}
		if g.has(dxAFib, t) {
			sd = 20
		}
		g.quantity(e, t, obsHeartRate, normal(r, mean, sd, 35, 210))
	}
	if r.IntN(100) < pBP {
		g.bloodPressure(e, t, a)
	}
	height := g.heightAt(a) + 0.8*r.NormFloat64()
	weight := 0.0
	if r.IntN(100) < pW {
		weight = g.bmiAt(a) * (height / 100) * (height / 100) * (1 + 0.03*r.NormFloat64())
		weight = clamp(weight, 1.5, 300)
		g.quantity(e, t, obsWeight, weight)
	}
	measured := r.IntN(100) < pH
	if measured {
		g.quantity(e, t, obsHeight, height)
	}
	if weight > 0 && a >= 2 && (measured || r.IntN(100) < 50) {
		w, h := round(weight, 1), round(height, 1)
		g.quantity(e, t, obsBMI, w/(h/100)/(h/100))
	}
	if r.IntN(100) < pT {
		mean := 36.8
		if e.acute != nil && r.IntN(100) < 40 {
			mean = 38.4
		}
		g.quantity(e, t, obsTemperature, normal(r, mean, 0.4, 35, 41.5))
	}
}

// bloodPressure writes a blood pressure panel with its two components.
func (g *gen) bloodPressure(e *encounter, t int64, a float64) {
	r := g.r
	sys := normal(r, 100, 8, 70, 140)
	dia := normal(r, 62, 7, 40, 90)
	if a >= 18 {
		sys = 112 + 0.45*max(a-30, 0) + 11*r.NormFloat64()
		dia = 72 + 0.15*max(a-30, 0) + 8*r.NormFloat64()
		if g.has(dxHypertension, t) {
			sys += 14
			dia += 7
		}
	}
	sys = clamp(sys, 80, 230)
	dia = clamp(dia, 40, min(130, sys-20))
	g.obsHead(e, t, obsBP)
	b := append(g.b, `,"component":[{"code":`...)
	b = append(b, obsSystolic.code.cc...)
	b = append(b, `,"valueQuantity":{"value":`...)
	b = appendDecimal(b, sys, 0)
	b = append(b, obsSystolic.quant...)
	b = append(b, `},{"code":`...)
	b = append(b, obsDiastolic.code.cc...)
	b = append(b, `,"valueQuantity":{"value":`...)
	b = appendDecimal(b, dia, 0)
	b = append(b, obsDiastolic.quant...)
	g.b = append(b, `}]`...)
	g.end(tObservation)
}

// labs writes the laboratory results of a blood draw at t.
func (g *gen) labs(e *encounter, t int64) {
	r := g.r
	a := g.age(t)
	diabetic := g.has(dxDiabetes, t)
	ckd := g.has(dxCKD, t)
	lipids := g.has(dxHyperlipidemia, t)
	if diabetic || r.IntN(100) < 60 {
		v := normal(r, 92, 9, 60, 130)
		if diabetic {
			v = normal(r, 155, 40, 70, 450)
		}
		g.quantity(e, t, obsGlucose, v)
	}
	if (diabetic && r.IntN(100) < 80) || (a >= 18 && r.IntN(100) < 8) {
		v := normal(r, 5.3, 0.3, 4.3, 6.4)
		if diabetic {
			v = normal(r, 7.4, 1.1, 5.7, 14)
		}
		g.quantity(e, t, obsHbA1c, v)
	}
	if ckd || r.IntN(100) < 45 {
		v := normal(r, 0.95, 0.15, 0.5, 1.4)
		switch {
		case ckd:
			v = normal(r, 2.1, 0.7, 1.2, 8)
		case a < 12:
			v = normal(r, 0.45, 0.1, 0.2, 0.8)
		case g.pt.female:
			v = normal(r, 0.75, 0.12, 0.45, 1.2)
		}
		g.quantity(e, t, obsCreatinine, v)
	}
	if (lipids && r.IntN(100) < 80) || r.IntN(100) < 25 {
		v := normal(r, 170+0.6*max(a-20, 0), 30, 100, 320)
		if lipids {
			v = normal(r, 245, 35, 170, 400)
		}
		g.quantity(e, t, obsCholesterol, v)
	}
	if r.IntN(100) < 45 {
		v := normal(r, 15, 1.1, 10, 19)
		switch {
		case a < 12:
			v = normal(r, 12.5, 1, 9, 16)
		case g.pt.female:
			v = normal(r, 13.5, 1, 9, 17)
		}
		if ckd {
			v -= 1.8
		}
		g.quantity(e, t, obsHemoglobin, v)
	}
}

// obsHead opens an Observation of kind k taken at t during e, up to its
// value.
func (g *gen) obsHead(e *encounter, t int64, k *obsKind) {
	g.begin(tObservation, g.newID())
	if k.lab {
		g.b = append(g.b, `,"status":"final","category":`+catLaboratory...)
	} else {
		g.b = append(g.b, `,"status":"final","category":`+catVitalSigns...)
	}
	g.concept("code", k.code)
	g.ref("subject", g.pt.id)
	g.ref("encounter", e.id)
	g.dateTime("effectiveDateTime", t)
	if k.lab {
		g.dateTime("issued", min(t+int64(3600+g.r.IntN(5*3600)), g.p.asOf))
	}
	g.shared("performer", practitionerRefs[e.prac], true)
}

// quantity writes an Observation of kind k with value v.
func (g *gen) quantity(e *encounter, t int64, k *obsKind, v float64) {
	g.obsHead(e, t, k)
	v = round(v, k.prec)
	b := append(g.b, `,"valueQuantity":{"value":`...)
	b = appendDecimal(b, v, k.prec)
	b = append(b, k.quant...)
	if k.lab {
		b = append(b, `,"interpretation":`...)
		switch {
		case v < k.low:
			b = append(b, interpLow...)
		case v > k.high:
			b = append(b, interpHigh...)
		default:
			b = append(b, interpNormal...)
		}
		b = append(b, `,"referenceRange":`...)
		b = append(b, k.rr...)
	}
	g.b = b
	g.end(tObservation)
}

func round(v float64, prec int) float64 {
	p := [...]float64{1, 10, 100, 1000}[prec]
	return float64(int64(v*p+0.5)) / p
}

// procedures writes the procedures done at e.
func (g *gen) procedures(e *encounter) {
	r := g.r
	a := g.age(e.start)
	p := func(c *code, percent int) {
		if r.IntN(100) < percent {
			g.procedure(e, c)
		}
	}
	switch {
	case e.class == emer:
		switch e.acute {
		case dxChestPain:
			p(pxECG, 100)
		case dxLaceration:
			p(pxSuture, 90)
		default:
			p(pxECG, 20)
		}
	case e.class == imp:
		p(pxAppendectomy, 12)
		p(pxECG, 50)
	case e.kind == encCheckup && a >= 50:
		p(pxColonoscopy, 4)
		p(pxECG, 8)
		if g.pt.female {
			p(pxMammography, 15)
		}
	case e.kind == encFollowUp:
		switch g.conds[e.reason].d {
		case dxAsthma, dxCOPD:
			p(pxSpirometry, 30)
		case dxCKD:
			p(pxHemodialysis, 5)
		case dxAFib, dxHypertension:
			p(pxECG, 20)
		}
	}
}

func (g *gen) procedure(e *encounter, c *code) {
	g.begin(tProcedure, g.newID())
	g.b = append(g.b, `,"status":"completed"`...)
	g.concept("code", c)
	g.ref("subject", g.pt.id)
	g.ref("encounter", e.id)
	at := g.within(e, 4*3600)
	if c == pxAppendectomy {
		b := append(g.b, `,"performedPeriod":{"start":"`...)
		b = appendDateTime(b, at, cities[g.pt.city].offset)
		b = append(b, `","end":"`...)
		b = appendDateTime(b, min(at+int64(2700+g.r.IntN(3600)), g.until(e)), cities[g.pt.city].offset)
		g.b = append(b, `"}`...)
	} else {
		g.dateTime("performedDateTime", at)
	}
	g.b = append(g.b, `,"performer":[{"actor":`...)
	g.b = append(g.b, practitionerRefs[e.prac]...)
	g.b = append(g.b, `}]`...)
	if e.acute != nil {
		g.b = append(g.b, `,"reasonReference":[{"reference":"`...)
		g.b = appendURN(g.b, e.acuteID)
		g.b = append(g.b, `"}]`...)
	} else if e.reason >= 0 {
		g.b = append(g.b, `,"reasonReference":[{"reference":"`...)
		g.b = appendURN(g.b, g.conds[e.reason].id)
		g.b = append(g.b, `"}]`...)
	}
	g.end(tProcedure)
}

// immunizations writes the vaccines given at e.
func (g *gen) immunizations(e *encounter) {
	if e.class != amb {
		return
	}
	r := g.r
	a := g.age(e.start)
	y, m, _ := civil(localDay(e.start, cities[g.pt.city].offset))
	if m >= 10 && y != g.flu && a >= 0.5 && r.IntN(100) < 45 {
		g.flu = y
		g.immunization(e, vxFlu)
	}
	if y == 2021 && !g.covid && a >= 12 && r.IntN(100) < 50 {
		g.covid = true
		g.immunization(e, vxCovid)
	}
	switch e.kind {
	case encWellChild:
		if a < 7 && g.vx < len(vxChildren) && r.IntN(100) < 70 {
			g.immunization(e, vxChildren[g.vx])
			g.vx++
		}
	case encCheckup:
		if r.IntN(100) < 6 {
			g.immunization(e, vxTdap)
		} else if a >= 65 && r.IntN(100) < 10 {
			g.immunization(e, vxPneumo)
		}
	}
}

func (g *gen) immunization(e *encounter, c *code) {
	g.begin(tImmunization, g.newID())
	g.b = append(g.b, `,"status":"completed"`...)
	g.concept("vaccineCode", c)
	g.ref("patient", g.pt.id)
	g.ref("encounter", e.id)
	g.dateTime("occurrenceDateTime", g.within(e, 20*60))
	g.b = append(g.b, `,"primarySource":true,"lotNumber":"`...)
	g.b = append(g.b, "ABCDEFGHJKLMNPRSTUVWXYZ"[g.r.IntN(23)])
	g.b = appendPadded(g.b, g.r.IntN(100000), 5)
	g.b = append(g.b, `","performer":[{"actor":`...)
	g.b = append(g.b, practitionerRefs[e.prac]...)
	g.b = append(g.b, `}]`...)
	g.end(tImmunization)
}

// writeAllergies writes the patient's allergies, recorded at their first
// encounter.
func (g *gen) writeAllergies() {
	r := g.r
	n := 0
	switch x := r.IntN(100); {
	case x < 5:
		n = 2
	case x < 20:
		n = 1
	}
	k := r.IntN(len(allergens))
	for range n {
		g.allergy(&allergens[k], r)
		k = (k + 1 + r.IntN(len(allergens)-1)) % len(allergens)
	}
}

func (g *gen) allergy(al *allergen, r *rand.Rand) {
	e := &g.encs[0]
	g.begin(tAllergyIntolerance, g.newID())
	g.b = append(g.b, `,"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active","display":"Active"}]},"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification","code":"confirmed","display":"Confirmed"}]},"type":"allergy","category":["`...)
	g.b = append(g.b, al.category...)
	severe := al.reaction.Code.Code == "39579001"
	if severe {
		g.b = append(g.b, `"],"criticality":"high"`...)
	} else {
		g.b = append(g.b, `"],"criticality":"low"`...)
	}
	g.concept("code", al.code)
	g.ref("patient", g.pt.id)
	g.ref("encounter", e.id)
	g.dateTime("recordedDate", e.start)
	g.shared("recorder", practitionerRefs[e.prac], false)
	g.b = append(g.b, `,"reaction":[{"manifestation":[`...)
	g.b = append(g.b, al.reaction.cc...)
	switch {
	case severe:
		g.b = append(g.b, `],"severity":"severe"}]`...)
	case r.IntN(2) == 0:
		g.b = append(g.b, `],"severity":"mild"}]`...)
	default:
		g.b = append(g.b, `],"severity":"moderate"}]`...)
	}
	g.end(tAllergyIntolerance)
}
