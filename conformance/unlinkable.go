package conformance

import (
	"crypto/sha256"
	"encoding/base64"
	bin "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// testUnlinkable reads the whole public log as an outsider does (tiles
// and entry bundles, no token) after two patients' data was written,
// read by two organisations and by each patient's own app, and checks
// that no leaf names a patient or a resource of patient data or shows the
// SHA-256 of a body, that no value in a leaf links two records to one
// patient, and that the brute force that recovered an Observation's value
// from the digest a leaf used to show now finds nothing.
func testUnlinkable(t *testing.T, c *client, run string) {
	var secrets []string // what no leaf may hold: ids, and digests in every encoding
	digest := func(body []byte) {
		sum := sha256.Sum256(body)
		secrets = append(secrets, hex.EncodeToString(sum[:]), base64.StdEncoding.EncodeToString(sum[:]), base64.RawURLEncoding.EncodeToString(sum[:]))
	}
	about := map[int64]string{} // record index → the patient it is about
	var selfReads []int64
	orgs := []*client{
		c.caller(t, run, "unlink-org1", "Organization/unlink-org1-"+run, "system/*.rs", []string{"TREAT"}, ""),
		c.caller(t, run, "unlink-org2", "Organization/unlink-org2-"+run, "system/*.rs", []string{"HPAYMT"}, ""),
	}
	value := 20 + rand.IntN(100) // the secret the brute force looks for
	var obs0 string
	var obsBody []byte
	for i, tag := range []string{"a", "b"} {
		pat := "unlink-" + tag + "-" + run
		obs := pat + "-weight"
		if i == 0 {
			obs0 = obs
		}
		secrets = append(secrets, pat, obs)
		digest(c.do(http.MethodPut, "/Patient/"+pat, fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"family":"Unlinkable%s"}]}`, pat, tag)).want(t, http.StatusCreated).body)
		digest(c.do(http.MethodPut, "/Observation/"+obs, fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/%s"},"valueQuantity":{"value":%d,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`, obs, pat, value)).want(t, http.StatusCreated).body)
		self := c.caller(t, run, "unlink-self-"+tag, "Patient/"+pat, "patient/*.rs", []string{"PATRQT"}, pat)
		for _, reader := range append([]*client{self}, orgs...) {
			for _, path := range []string{"/Patient/" + pat, "/Observation/" + obs, "/Observation?subject=Patient/" + pat} {
				r := reader.do(http.MethodGet, path, nil).want(t, http.StatusOK)
				if !strings.Contains(path, "?") {
					digest(r.body)
					if path == "/Observation/"+obs0 {
						obsBody = r.body
					}
				}
				for _, n := range ledgerIndexes(t, r) {
					about[n] = pat
					if reader == self {
						selfReads = append(selfReads, n)
					}
				}
			}
		}
		for _, n := range c.recordsAbout(t, pat, "rest", "Observation/"+obs+"/_history/1") {
			about[n] = pat // the Observation's write record
		}
	}

	// Every leaf, as anyone reads them.
	last := int64(0)
	for n := range about {
		last = max(last, n)
	}
	cp := c.checkpoint(t, last)
	outsider := newClient(t, c.base, "")
	var leaves [][]byte
	for b := int64(0); b*256 < int64(cp.Size); b++ {
		w := int(min(256, int64(cp.Size)-b*256))
		path := "/ledger/" + strings.Replace(tlog.Tile{H: 8, L: -1, N: b, W: w}.Path(), "tile/8/data/", "tile/entries/", 1)
		bundle := outsider.do(http.MethodGet, path, nil).want(t, http.StatusOK).body
		for len(bundle) >= 2 {
			l := int(bin.BigEndian.Uint16(bundle))
			leaves = append(leaves, bundle[2:2+l])
			bundle = bundle[2+l:]
		}
	}
	if int64(len(leaves)) != int64(cp.Size) {
		t.Fatalf("read %d leaves of a log of %d", len(leaves), cp.Size)
	}
	commitments := map[string]int64{}
	for n, leaf := range leaves {
		for _, s := range secrets {
			if strings.Contains(string(leaf), s) {
				t.Fatalf("leaf %d holds %q: %s", n, s, leaf)
			}
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(leaf, &fields); err != nil {
			t.Fatalf("leaf %d is not JSON: %s", n, leaf)
		}
		for f := range fields {
			if !slices.Contains(leafFields, f) {
				t.Fatalf("leaf %d shows %q: %s", n, f, leaf)
			}
		}
		// The only value a leaf holds besides the clear fields is its
		// commitment, which no two records share.
		var l struct{ Commitment string }
		json.Unmarshal(leaf, &l)
		if prev, dup := commitments[l.Commitment]; dup && l.Commitment != "" {
			t.Fatalf("leaves %d and %d share their commitment", prev, n)
		}
		commitments[l.Commitment] = int64(n)
	}
	// The patients' own apps are not named: their clients may be theirs
	// alone.
	for _, n := range selfReads {
		var l struct{ Recipient map[string]any }
		json.Unmarshal(leaves[n], &l)
		if len(l.Recipient) != 1 || l.Recipient["patient_context"] != true {
			t.Fatalf("leaf %d of a patient's own read shows the recipient %v", n, l.Recipient)
		}
	}
	// The records are about whom the server says, to whom may know.
	var write ledgerRecord
	for n, pat := range about {
		rec, _ := c.record(t, cp, n)
		if rec.Patient != "Patient/"+pat {
			t.Fatalf("record %d opens as about %s, not %s", n, rec.Patient, pat)
		}
		if rec.Type == "write" && len(rec.Resources) == 1 && rec.Resources[0].Ref == "Observation/"+obs0+"/_history/1" {
			write = rec
		}
	}

	// The brute force: the Observation's shape is known, its value and the
	// instant it was written are not; a write record's time used to give
	// the instant within a millisecond. 120,000 guesses (100 values, 1,200
	// instants around the true one, so that a slow clock under the race
	// detector does not matter): with the SHA-256 the write record commits
	// to (what a leaf used to show), one matches; with the public log
	// alone, none matches anything in any leaf.
	var served struct {
		Meta struct{ LastUpdated string } `json:"meta"`
	}
	json.Unmarshal(obsBody, &served)
	template := strings.Replace(strings.Replace(string(obsBody), served.Meta.LastUpdated, "{instant}", 1), fmt.Sprintf(`"value":%d`, value), `"value":{value}`, 1)
	at, err := time.Parse(time.RFC3339Nano, served.Meta.LastUpdated)
	if write.Resources == nil || err != nil || !strings.Contains(template, "{instant}") || !strings.Contains(template, "{value}") {
		t.Fatalf("no write record of the Observation (%+v) or no template: %s", write, template)
	}
	guess := func(matches func(hexSum string) bool) (int, string, int) {
		tries := 0
		for v := 20; v < 120; v++ {
			for us := -600; us < 600; us++ {
				instant := at.Add(time.Duration(us) * time.Microsecond).UTC().Format("2006-01-02T15:04:05.000000Z")
				body := strings.Replace(strings.Replace(template, "{instant}", instant, 1), "{value}", strconv.Itoa(v), 1)
				sum := sha256.Sum256([]byte(body))
				tries++
				if matches(hex.EncodeToString(sum[:])) {
					return v, instant, tries
				}
			}
		}
		return -1, "", tries
	}
	if v, instant, _ := guess(func(h string) bool { return h == write.Resources[0].SHA256 }); v != value || instant != served.Meta.LastUpdated {
		t.Fatalf("with the digest, the brute force finds %d at %s, not %d at %s: the attack is not the one the format must resist", v, instant, value, served.Meta.LastUpdated)
	}
	public := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			public[x] = true
		case map[string]any:
			for _, y := range x {
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	for _, leaf := range leaves {
		var v any
		json.Unmarshal(leaf, &v)
		walk(v)
	}
	if v, instant, tries := guess(func(h string) bool { return public[h] }); v >= 0 || tries != 120_000 {
		t.Fatalf("from the public log alone, the brute force finds %d at %s after %d tries", v, instant, tries)
	}
}
