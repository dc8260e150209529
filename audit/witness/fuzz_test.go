package witness

import (
	"testing"
)

// FuzzParseRequest reads add-checkpoint bodies as a peer (or anyone) may
// send them: never a panic, and a body taken has a size line, at most
// maxProof proof hashes and a checkpoint.
func FuzzParseRequest(f *testing.F) {
	h := "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	for _, seed := range []string{"old 0\n\nexample.com/log\n0\n" + h + "\n", "old 5\n" + h + "\n" + h + "\n\nx\n", "old -1\n\n", "old 01\n\n",
		"old 1\nnot base64\n\n", "\n\n", "old 9223372036854775807\n\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseRequest(body)
		if err != nil {
			return
		}
		if r.old < 0 || len(r.proof) > maxProof {
			t.Fatalf("taken: old %d, %d proof lines", r.old, len(r.proof))
		}
	})
}
