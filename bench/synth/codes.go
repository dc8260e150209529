package synth

// Terminology: every code a population uses, with the system it is from
// and the resource type that carries it. The CodeableConcept JSON of each
// code is built once at init.

// Code systems.
const (
	LOINC  = "http://loinc.org"
	SNOMED = "http://snomed.info/sct"
	RxNorm = "http://www.nlm.nih.gov/research/umls/rxnorm"
	CVX    = "http://hl7.org/fhir/sid/cvx"
	UCUM   = "http://unitsofmeasure.org"
)

// MRNSystem is the identifier system of the patients' medical record
// numbers; see Population.MRN for the values.
const MRNSystem = "http://synth.ehrledger.example/mrn"

// Code is one coded concept used by the generated records.
type Code struct {
	// ResourceType is the type of the resources that carry the code, in
	// the element searched by the "code" parameter (Observation.code,
	// Condition.code, MedicationRequest.medicationCodeableConcept,
	// Immunization.vaccineCode, AllergyIntolerance.code, Procedure.code)
	// or, for Encounter, Encounter.type (search parameter "type").
	ResourceType string
	System       string
	Code         string
	Display      string
}

// Token is the code as a FHIR token search value, "system|code".
func (c Code) Token() string { return c.System + "|" + c.Code }

// code is a Code with its prebuilt JSON and its index in allCodes.
type code struct {
	Code
	cc  string // CodeableConcept JSON
	idx int
}

var allCodes []*code

func newCode(rt, system, value, display string) *code {
	c := &code{Code: Code{rt, system, value, display}, idx: len(allCodes)}
	b := append([]byte(`{"coding":[{"system":`), appendString(nil, system)...)
	b = append(b, `,"code":`...)
	b = appendString(b, value)
	b = append(b, `,"display":`...)
	b = appendString(b, display)
	b = append(b, `}],"text":`...)
	b = appendString(b, display)
	b = append(b, '}')
	c.cc = string(b)
	allCodes = append(allCodes, c)
	return c
}

// Encounter types.
var (
	encCheckup   = newCode("Encounter", SNOMED, "185349003", "Encounter for check up")
	encWellChild = newCode("Encounter", SNOMED, "410620009", "Well child visit")
	encSymptom   = newCode("Encounter", SNOMED, "185345009", "Encounter for symptom")
	encFollowUp  = newCode("Encounter", SNOMED, "390906007", "Follow-up encounter")
	encEmergency = newCode("Encounter", SNOMED, "50849002", "Emergency room admission")
	encAdmission = newCode("Encounter", SNOMED, "32485007", "Hospital admission")
)

// Encounter classes (v3 ActCode), as Coding JSON.
const (
	classAMB  = `{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB","display":"ambulatory"}`
	classEMER = `{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"EMER","display":"emergency"}`
	classIMP  = `{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IMP","display":"inpatient encounter"}`
)

// Observations.
type obsKind struct {
	code  *code
	lab   bool
	unit  string // UCUM code, also used as the human unit
	prec  int    // digits after the decimal point
	low   float64
	high  float64 // reference range of labs
	rr    string  // referenceRange JSON of labs
	quant string  // `,"unit":..,"system":..,"code":..}` closing a Quantity
}

var (
	obsHeartRate   = newObs(LOINC, "8867-4", "Heart rate", false, "/min", 0, 0, 0)
	obsWeight      = newObs(LOINC, "29463-7", "Body weight", false, "kg", 1, 0, 0)
	obsHeight      = newObs(LOINC, "8302-2", "Body height", false, "cm", 1, 0, 0)
	obsBMI         = newObs(LOINC, "39156-5", "Body mass index (BMI) [Ratio]", false, "kg/m2", 1, 0, 0)
	obsBP          = newObs(LOINC, "85354-9", "Blood pressure panel with all children optional", false, "mm[Hg]", 0, 0, 0)
	obsSystolic    = newObs(LOINC, "8480-6", "Systolic blood pressure", false, "mm[Hg]", 0, 0, 0)
	obsDiastolic   = newObs(LOINC, "8462-4", "Diastolic blood pressure", false, "mm[Hg]", 0, 0, 0)
	obsTemperature = newObs(LOINC, "8310-5", "Body temperature", false, "Cel", 1, 0, 0)
	obsGlucose     = newObs(LOINC, "2339-0", "Glucose [Mass/volume] in Blood", true, "mg/dL", 0, 70, 99)
	obsHbA1c       = newObs(LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", true, "%", 1, 4, 5.6)
	obsCreatinine  = newObs(LOINC, "2160-0", "Creatinine [Mass/volume] in Serum or Plasma", true, "mg/dL", 2, 0.6, 1.2)
	obsCholesterol = newObs(LOINC, "2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", true, "mg/dL", 0, 0, 200)
	obsHemoglobin  = newObs(LOINC, "718-7", "Hemoglobin [Mass/volume] in Blood", true, "g/dL", 1, 12, 17.5)
)

func newObs(system, value, display string, lab bool, unit string, prec int, low, high float64) *obsKind {
	k := &obsKind{lab: lab, unit: unit, prec: prec, low: low, high: high}
	k.code = newCode("Observation", system, value, display)
	q := append([]byte(`,"unit":`), appendString(nil, unit)...)
	q = append(q, `,"system":"`+UCUM+`","code":`...)
	q = appendString(q, unit)
	k.quant = string(append(q, '}'))
	if lab {
		rr := []byte(`[{`)
		if low > 0 {
			rr = append(rr, `"low":{"value":`...)
			rr = appendDecimal(rr, low, prec)
			rr = append(rr, k.quant...)
			rr = append(rr, ',')
		}
		rr = append(rr, `"high":{"value":`...)
		rr = appendDecimal(rr, high, prec)
		rr = append(rr, k.quant...)
		k.rr = string(append(rr, `}]`...))
	}
	return k
}

// Conditions.
type disease struct {
	code    *code
	chronic bool
	minAge  float64 // years
	resolve float64 // chance a chronic condition has resolved by AsOf
	meds    []*med  // chronic: each prescribed; acute: one of them, maybe
}

var (
	dxDiabetes       = &disease{code: newCode("Condition", SNOMED, "44054006", "Diabetes mellitus type 2"), chronic: true, minAge: 25}
	dxHypertension   = &disease{code: newCode("Condition", SNOMED, "38341003", "Hypertensive disorder, systemic arterial"), chronic: true, minAge: 20}
	dxAsthma         = &disease{code: newCode("Condition", SNOMED, "195967001", "Asthma"), chronic: true, minAge: 2, resolve: 0.3}
	dxHyperlipidemia = &disease{code: newCode("Condition", SNOMED, "55822004", "Hyperlipidemia"), chronic: true, minAge: 30}
	dxCOPD           = &disease{code: newCode("Condition", SNOMED, "13645005", "Chronic obstructive lung disease"), chronic: true, minAge: 40}
	dxDepression     = &disease{code: newCode("Condition", SNOMED, "35489007", "Depressive disorder"), chronic: true, minAge: 12, resolve: 0.4}
	dxCKD            = &disease{code: newCode("Condition", SNOMED, "709044004", "Chronic kidney disease"), chronic: true, minAge: 40}
	dxObesity        = &disease{code: newCode("Condition", SNOMED, "162864005", "Body mass index 30+ - obesity"), chronic: true, minAge: 18, resolve: 0.1}
	dxAFib           = &disease{code: newCode("Condition", SNOMED, "49436004", "Atrial fibrillation"), chronic: true, minAge: 50}
	dxOsteoarthritis = &disease{code: newCode("Condition", SNOMED, "239873007", "Osteoarthritis of knee"), chronic: true, minAge: 45}

	dxBronchitis = &disease{code: newCode("Condition", SNOMED, "10509002", "Acute bronchitis")}
	dxSinusitis  = &disease{code: newCode("Condition", SNOMED, "444814009", "Viral sinusitis")}
	dxStrep      = &disease{code: newCode("Condition", SNOMED, "43878008", "Streptococcal sore throat")}
	dxPharyngits = &disease{code: newCode("Condition", SNOMED, "195662009", "Acute viral pharyngitis")}
	dxOtitis     = &disease{code: newCode("Condition", SNOMED, "65363002", "Otitis media")}
	dxUTI        = &disease{code: newCode("Condition", SNOMED, "68566005", "Urinary tract infectious disease")}
	dxSprain     = &disease{code: newCode("Condition", SNOMED, "44465007", "Sprain of ankle")}
	dxLaceration = &disease{code: newCode("Condition", SNOMED, "283371005", "Laceration of forearm")}
	dxConcussion = &disease{code: newCode("Condition", SNOMED, "62106007", "Concussion with no loss of consciousness")}
	dxChestPain  = &disease{code: newCode("Condition", SNOMED, "29857009", "Chest pain")}
)

// chronicDiseases in the order they are planned (later ones depend on
// earlier ones).
var chronicDiseases = []*disease{
	dxObesity, dxHypertension, dxDiabetes, dxHyperlipidemia, dxAsthma,
	dxCOPD, dxDepression, dxCKD, dxAFib, dxOsteoarthritis,
}

// Acute problems seen at symptom visits (ambulatory) and in emergencies.
var (
	acuteAmbulatory = []*disease{dxBronchitis, dxSinusitis, dxStrep, dxPharyngits, dxOtitis, dxUTI, dxSprain}
	acuteEmergency  = []*disease{dxSprain, dxLaceration, dxConcussion, dxChestPain, dxBronchitis, dxUTI}
)

// Medications.
type med struct {
	code   *code
	dosage string // dosageInstruction JSON
}

func newMed(value, display, text string, perDay int) *med {
	m := &med{code: newCode("MedicationRequest", RxNorm, value, display)}
	b := append([]byte(`[{"sequence":1,"text":`), appendString(nil, text)...)
	if perDay > 0 {
		b = append(b, `,"timing":{"repeat":{"frequency":`...)
		b = appendPadded(b, perDay, 1)
		b = append(b, `,"period":1,"periodUnit":"d"}}`...)
	} else {
		b = append(b, `,"asNeededBoolean":true`...)
	}
	m.dosage = string(append(b, `}]`...))
	return m
}

var (
	rxMetformin    = newMed("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet", "1 tablet by mouth once daily with the evening meal", 1)
	rxLisinopril   = newMed("314076", "lisinopril 10 MG Oral Tablet", "1 tablet by mouth once daily", 1)
	rxAmlodipine   = newMed("197361", "amlodipine 5 MG Oral Tablet", "1 tablet by mouth once daily", 1)
	rxAtorvastatin = newMed("617312", "atorvastatin 20 MG Oral Tablet [Lipitor]", "1 tablet by mouth at bedtime", 1)
	rxAlbuterol    = newMed("745679", "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler", "2 puffs every 4 to 6 hours as needed for wheezing", 0)
	rxFluticasone  = newMed("895994", "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler", "2 puffs twice daily", 2)
	rxSertraline   = newMed("312940", "sertraline 50 MG Oral Tablet", "1 tablet by mouth once daily", 1)
	rxFurosemide   = newMed("313988", "Furosemide 40 MG Oral Tablet", "1 tablet by mouth once daily in the morning", 1)
	rxWarfarin     = newMed("855332", "Warfarin Sodium 5 MG Oral Tablet", "1 tablet by mouth once daily, adjusted to INR", 1)
	rxNaproxen     = newMed("849574", "Naproxen sodium 220 MG Oral Tablet", "1 tablet by mouth twice daily as needed for pain", 0)
	rxAmoxicillin  = newMed("308182", "Amoxicillin 250 MG Oral Capsule", "2 capsules by mouth three times daily for 10 days", 3)
	rxNitrofuran   = newMed("311995", "NITROFURANTOIN, MACROCRYSTALS 50 MG Oral Capsule", "1 capsule by mouth four times daily for 7 days", 4)
	rxAcetaminophn = newMed("313782", "Acetaminophen 325 MG Oral Tablet", "2 tablets by mouth every 6 hours as needed", 0)
	rxIbuprofen    = newMed("310965", "Ibuprofen 200 MG Oral Tablet", "1 to 2 tablets by mouth every 6 hours as needed", 0)
)

func init() {
	dxDiabetes.meds = []*med{rxMetformin}
	dxHypertension.meds = []*med{rxLisinopril, rxAmlodipine}
	dxHyperlipidemia.meds = []*med{rxAtorvastatin}
	dxAsthma.meds = []*med{rxAlbuterol, rxFluticasone}
	dxCOPD.meds = []*med{rxAlbuterol}
	dxDepression.meds = []*med{rxSertraline}
	dxCKD.meds = []*med{rxFurosemide}
	dxAFib.meds = []*med{rxWarfarin}
	dxOsteoarthritis.meds = []*med{rxNaproxen}
	for _, d := range []*disease{dxStrep, dxOtitis, dxSinusitis} {
		d.meds = []*med{rxAmoxicillin}
	}
	dxUTI.meds = []*med{rxNitrofuran}
	for _, d := range []*disease{dxSprain, dxLaceration, dxConcussion, dxBronchitis, dxPharyngits} {
		d.meds = []*med{rxIbuprofen, rxAcetaminophn}
	}
}

// Immunizations (CVX).
var (
	vxFlu      = newCode("Immunization", CVX, "140", "Influenza, seasonal, injectable, preservative free")
	vxCovid    = newCode("Immunization", CVX, "208", "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 30 mcg/0.3mL dose")
	vxTdap     = newCode("Immunization", CVX, "115", "Tdap")
	vxPneumo   = newCode("Immunization", CVX, "133", "Pneumococcal conjugate PCV 13")
	vxChildren = []*code{
		newCode("Immunization", CVX, "08", "Hep B, adolescent or pediatric"),
		newCode("Immunization", CVX, "20", "DTaP"),
		newCode("Immunization", CVX, "10", "IPV"),
		newCode("Immunization", CVX, "03", "MMR"),
		newCode("Immunization", CVX, "21", "varicella"),
	}
)

// Allergies.
type allergen struct {
	code     *code
	category string
	reaction *code // manifestation
}

var allergens = []allergen{
	{newCode("AllergyIntolerance", SNOMED, "91936005", "Allergy to penicillin"), "medication", newCode("", SNOMED, "271807003", "Eruption of skin")},
	{newCode("AllergyIntolerance", SNOMED, "91935009", "Allergy to peanuts"), "food", newCode("", SNOMED, "39579001", "Anaphylaxis")},
	{newCode("AllergyIntolerance", SNOMED, "300913006", "Shellfish allergy"), "food", newCode("", SNOMED, "247472004", "Wheal")},
	{newCode("AllergyIntolerance", SNOMED, "300916003", "Latex allergy"), "environment", newCode("", SNOMED, "402387002", "Allergic angioedema")},
	{newCode("AllergyIntolerance", SNOMED, "418689008", "Allergy to grass pollen"), "environment", newCode("", SNOMED, "878820003", "Rhinoconjunctivitis")},
	{newCode("AllergyIntolerance", SNOMED, "232347008", "Dander (animal) allergy"), "environment", newCode("", SNOMED, "49727002", "Cough")},
}

// Procedures.
var (
	pxECG          = newCode("Procedure", SNOMED, "29303009", "Electrocardiographic procedure")
	pxSpirometry   = newCode("Procedure", SNOMED, "127783003", "Spirometry")
	pxColonoscopy  = newCode("Procedure", SNOMED, "73761001", "Colonoscopy")
	pxMammography  = newCode("Procedure", SNOMED, "71651007", "Mammography")
	pxAppendectomy = newCode("Procedure", SNOMED, "80146002", "Appendectomy")
	pxSuture       = newCode("Procedure", SNOMED, "288086009", "Suture open wound")
	pxHemodialysis = newCode("Procedure", SNOMED, "302497006", "Hemodialysis")
)
