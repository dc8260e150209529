package audit_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ehrledger/ehrledger/audit"
)

// A record's leaf, which the public log holds, names neither the patient
// nor the data; its opening, which the provider keeps under the patient's
// key, does, and only the opening the leaf commits to opens it.
func ExampleRecord_Seal() {
	rec := audit.Record{
		Type: audit.TypeDisclosure, Time: "2026-12-08T03:04:05.123456Z", Patient: "Patient/alice",
		Recipient: &audit.Recipient{Client: "ward-app", Organization: "Organization/b"}, Purpose: "TREAT", Interaction: "read",
		Resources: []audit.Resource{audit.ResourceOf("Observation", "o1", 1, []byte(`{"resourceType":"Observation","id":"o1"}`))},
	}
	leaf, opening := rec.Seal()
	l, _ := audit.ParseLeaf(leaf)
	fmt.Println(l.Type, l.Time, l.Recipient.Organization, strings.Contains(string(leaf), "alice"), strings.Contains(string(leaf), "o1"))

	opened, _ := audit.OpenRecord(leaf, opening)
	fmt.Println(opened.Patient, opened.Time, opened.Resources[0].Ref)

	forged := append([]byte{opening[0] ^ 1}, opening[1:]...)
	_, err := audit.OpenRecord(leaf, forged)
	fmt.Println(errors.Is(err, audit.ErrOpening))
	// Output:
	// disclosure 2026-12-08T03:04:05Z Organization/b false false
	// Patient/alice 2026-12-08T03:04:05.123456Z Observation/o1/_history/1
	// true
}
