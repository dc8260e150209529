package consent

// The part of the v3 ActReason hierarchy of purposes of use
// (http://terminology.hl7.org/CodeSystem/v3-ActReason, under
// PurposeOfUse) that decisions use: a provision naming a purpose also
// covers its specialisations, so that a provision for TREAT covers an
// emergency treatment (ETREAT) and one for HRESCH covers clinical trial
// research (CLINTRCH).
var purposeParents = map[string][]string{
	"ETREAT":    {"TREAT"},
	"CAREMGT":   {"TREAT", "HOPERAT"},
	"CLINTRCH":  {"TREAT", "HRESCH"},
	"POPHLTH":   {"TREAT"},
	"BIORCH":    {"HRESCH"},
	"DSRCH":     {"HRESCH"},
	"POARCH":    {"HRESCH"},
	"TRANSRCH":  {"HRESCH"},
	"DISASTER":  {"PUBHLTH"},
	"THREAT":    {"PUBHLTH"},
	"FAMRQT":    {"PATRQT"},
	"PWATRNY":   {"PATRQT"},
	"SUPNWK":    {"PATRQT"},
	"COVAUTH":   {"HPAYMT"},
	"COVERAGE":  {"HPAYMT"},
	"ELIGDTRM":  {"HPAYMT"},
	"ELIGVER":   {"HPAYMT"},
	"CLMATTCH":  {"HPAYMT"},
	"HSYSADMIN": {"HOPERAT"},
	"HQUALIMP":  {"HOPERAT"},
	"PATSFTY":   {"HOPERAT"},
	"RECORDMGT": {"HOPERAT"},
	"TRAIN":     {"HOPERAT"},
	"HLEGAL":    {"HOPERAT"},
}

// purposeCovers reports whether a provision naming named covers a request
// made for purpose: the same code, or a specialisation of it.
func purposeCovers(named, purpose string) bool {
	if named == purpose {
		return true
	}
	for _, parent := range purposeParents[purpose] {
		if purposeCovers(named, parent) {
			return true
		}
	}
	return false
}
