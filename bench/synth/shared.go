package synth

import (
	"math/rand/v2"
	"strconv"
)

// The shared resources: one Organization per city, part of an umbrella
// Organization, and practitionersPerCity Practitioners per city. They are
// the same in every population (they depend on nothing in Config), so
// populations of different seeds can be loaded into one server.

// Ids of the shared resources.
const (
	// OrganizationIDPrefix and a two-digit number form each
	// Organization's id: "synth-org-00" (the umbrella) to "synth-org-16".
	OrganizationIDPrefix = "synth-org-"
	// PractitionerIDPrefix and a three-digit number form each
	// Practitioner's id: "synth-prac-000" to "synth-prac-127".
	PractitionerIDPrefix = "synth-prac-"
)

var (
	organizationIDs  []string // umbrella first, then one per city
	practitionerIDs  []string
	organizationRefs []string // {"reference":"Organization/<id>"}
	practitionerRefs []string // {"reference":"Practitioner/<id>"}
	sharedBodies     [][]byte // Organizations (umbrella first), then Practitioners
)

func init() {
	for k := range len(cities) + 1 {
		id := OrganizationIDPrefix + string(appendPadded(nil, k, 2))
		organizationIDs = append(organizationIDs, id)
		organizationRefs = append(organizationRefs, `{"reference":"Organization/`+id+`"}`)
	}
	for k := range len(cities) * practitionersPerCity {
		id := PractitionerIDPrefix + string(appendPadded(nil, k, 3))
		practitionerIDs = append(practitionerIDs, id)
		practitionerRefs = append(practitionerRefs, `{"reference":"Practitioner/`+id+`"}`)
	}
	sharedBodies = append(sharedBodies, organization(0, "Synth Health Network", nil))
	for k := range cities {
		sharedBodies = append(sharedBodies, organization(k+1, cities[k].hospital, &cities[k]))
	}
	g := &gen{pcg: rand.NewPCG(0x5eed, 0x5eed)}
	g.r = rand.New(g.pcg)
	for k := range practitionerIDs {
		sharedBodies = append(sharedBodies, practitioner(g, k))
	}
}

func organization(k int, name string, c *city) []byte {
	b := []byte(`{"resourceType":"Organization","id":"`)
	b = append(b, organizationIDs[k]...)
	b = append(b, `","identifier":[{"system":"http://synth.ehrledger.example/organization","value":"`...)
	b = append(b, organizationIDs[k]...)
	b = append(b, `"}],"active":true,"type":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/organization-type","code":"prov","display":"Healthcare Provider"}]}],"name":`...)
	b = appendString(b, name)
	if c != nil {
		b = append(b, `,"address":[{"city":`...)
		b = appendString(b, c.name)
		b = append(b, `,"country":"`...)
		b = append(b, c.country...)
		b = append(b, `"}],"partOf":`...)
		b = append(b, organizationRefs[0]...)
	}
	return append(b, '}')
}

func practitioner(g *gen, k int) []byte {
	r := g.r
	female := r.IntN(2) == 0
	names := maleNames
	gender := "male"
	if female {
		names, gender = femaleNames, "female"
	}
	b := []byte(`{"resourceType":"Practitioner","id":"`)
	b = append(b, practitionerIDs[k]...)
	b = append(b, `","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"`...)
	b = strconv.AppendInt(b, 1900000000+int64(k)*1013+int64(r.IntN(1000)), 10)
	b = append(b, `"}],"active":true,"name":[{"use":"official","family":`...)
	b = appendString(b, familyNames[pick(familyCum, r.IntN(familyTotal))].name)
	b = append(b, `,"given":[`...)
	b = appendString(b, names[r.IntN(len(names))])
	b = append(b, `],"prefix":["Dr."]}],"telecom":[{"system":"phone","value":`...)
	b = appendString(b, g.pattern(cities[k/practitionersPerCity].phone))
	b = append(b, `,"use":"work"}],"gender":"`...)
	b = append(b, gender...)
	return append(b, `"}`...)
}

// Shared returns the shared Organizations and Practitioners that records
// refer to, each with its id, to be created with PUT [type]/[id] before
// any record is loaded: the Organizations first, the umbrella one (which
// the others are partOf) before them, then the Practitioners. The result
// is a fresh copy.
func (p *Population) Shared() [][]byte {
	out := make([][]byte, len(sharedBodies))
	for k, b := range sharedBodies {
		out[k] = append([]byte(nil), b...)
	}
	return out
}

// SharedPaths returns the relative URL, "Organization/synth-org-00" or
// "Practitioner/synth-prac-000", to PUT each of Shared's resources at, in
// the same order.
func (p *Population) SharedPaths() []string {
	out := make([]string, 0, len(sharedBodies))
	for _, id := range organizationIDs {
		out = append(out, "Organization/"+id)
	}
	for _, id := range practitionerIDs {
		out = append(out, "Practitioner/"+id)
	}
	return out
}

// SharedBundle returns the shared resources as one transaction Bundle of
// PUT entries, in the order of Shared.
func (p *Population) SharedBundle() []byte {
	b := []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`)
	for k, path := range p.SharedPaths() {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"resource":`...)
		b = append(b, sharedBodies[k]...)
		b = append(b, `,"request":{"method":"PUT","url":"`...)
		b = append(b, path...)
		b = append(b, `"}}`...)
	}
	return append(b, `]}`...)
}
