package disclosure

import (
	"testing"

	"github.com/ehrledger/ehrledger/store"
)

// FuzzKeyCursor reads $everything's paging cursors as clients send them
// back: never a panic, and a cursor taken names a resource type and an
// id.
func FuzzKeyCursor(f *testing.F) {
	for _, k := range []string{"", keyCursor(store.Key{Type: "Observation", ID: "1"}), "T2JzZXJ2YXRpb24", "bm90IGEgdHlwZS94", "%%%"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, page string) {
		k, err := parseKeyCursor(page)
		if err == nil && page != "" && (k.Type == "" || k.ID == "") {
			t.Fatalf("%q taken as %+v", page, k)
		}
	})
}
