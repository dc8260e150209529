package conformance

import (
	"crypto/sha256"
	"encoding/base64"
	bin "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ledgerRecord is the part of a ledger record the suite checks: its leaf,
// with what the opening of the leaf's commitment reveals.
type ledgerRecord struct {
	V         int    `json:"v"`
	Type      string `json:"type"`
	Time      string `json:"time"`
	Patient   string `json:"patient"`
	Recipient *struct {
		Client         string `json:"client"`
		Organization   string `json:"organization"`
		PatientContext bool   `json:"patient_context"`
	} `json:"recipient"`
	Purpose     string `json:"purpose"`
	Interaction string `json:"interaction"`
	Consents    []struct {
		Ref   string `json:"ref"`
		Index *int64 `json:"index"`
	} `json:"consents"`
	BreakGlass bool `json:"break_glass"`
	Resources  []struct {
		Ref    string `json:"ref"`
		SHA256 string `json:"sha256"`
	} `json:"resources"`
	Commitment string `json:"commitment"`
}

// leafFields are the fields a leaf may show: nothing that links a record
// to a patient (docs/ledger.md).
var leafFields = []string{"v", "type", "time", "recipient", "purpose", "interaction", "break_glass", "commitment"}

// openLeaf reads a leaf with the opening of its commitment, checking it as
// verify does: the SHA-256 of the domain and the opening is the
// commitment, and the opening (after its 32-byte salt) is JSON whose time
// is the leaf's to the second.
func openLeaf(t *testing.T, leaf, opening []byte) ledgerRecord {
	t.Helper()
	var rec ledgerRecord
	if err := json.Unmarshal(leaf, &rec); err != nil {
		t.Fatalf("a leaf is not JSON: %s", leaf)
	}
	var fields map[string]json.RawMessage
	json.Unmarshal(leaf, &fields)
	for f := range fields {
		if !slices.Contains(leafFields, f) {
			t.Fatalf("a leaf shows %q: %s", f, leaf)
		}
	}
	if opening == nil {
		return rec
	}
	h := sha256.Sum256(append([]byte("ehrledger record opening v2\x00"), opening...))
	if len(opening) < 32 || base64.RawURLEncoding.EncodeToString(h[:]) != rec.Commitment {
		t.Fatalf("the opening is not the one the leaf commits to: %s", leaf)
	}
	leafTime, commitment := rec.Time, rec.Commitment
	if err := json.Unmarshal(opening[32:], &rec); err != nil {
		t.Fatalf("an opening is not JSON: %s", opening[32:])
	}
	if len(rec.Time) < 19 || rec.Time[:19]+"Z" != leafTime {
		t.Fatalf("the opening's time %s is not the leaf's %s", rec.Time, leafTime)
	}
	rec.Commitment = commitment
	return rec
}

// consentRefs lists the consent versions a record cites.
func (r ledgerRecord) consentRefs() []string {
	var out []string
	for _, c := range r.Consents {
		out = append(out, c.Ref)
	}
	return out
}

// ledgerIndexes reads a response's Ledger-Index header.
func ledgerIndexes(t *testing.T, r *response) []int64 {
	t.Helper()
	h := r.Header.Get("Ledger-Index")
	if h == "" {
		return nil
	}
	var out []int64
	for _, p := range strings.Split(h, ",") {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			t.Fatalf("Ledger-Index %q: %v", h, err)
		}
		out = append(out, n)
	}
	return out
}

// checkpoint waits for a signed checkpoint covering index n, verifies it
// with the log's key and returns it.
func (c *client) checkpoint(t *testing.T, n int64) *log.Checkpoint {
	t.Helper()
	key := strings.TrimSpace(string(c.do(http.MethodGet, "/ledger/key", nil).want(t, http.StatusOK).body))
	v, err := note.NewVerifier(key)
	if err != nil {
		t.Fatalf("/ledger/key: %v", err)
	}
	// The server signs one on demand when the newest does not hold record
	// n, and answers 404 while record n waits to be integrated.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := c.do(http.MethodGet, "/ledger/checkpoint?covers="+strconv.FormatInt(n, 10), nil)
		if r.StatusCode == http.StatusNotFound && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		raw := r.want(t, http.StatusOK).body
		cp, _, _, err := log.ParseCheckpoint(raw, v.Name(), v)
		if err != nil {
			t.Fatalf("/ledger/checkpoint does not verify with /ledger/key: %v\n%s", err, raw)
		}
		if int64(cp.Size) > n {
			return cp
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint covers record %d after 10 s (size %d)", n, cp.Size)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// record fetches record n from its entry bundle, checks its inclusion
// proof against cp, and opens it (the client must be allowed its
// opening).
func (c *client) record(t *testing.T, cp *log.Checkpoint, n int64) (ledgerRecord, []byte) {
	t.Helper()
	data := c.leaf(t, cp, n)
	return openLeaf(t, data, c.opening(t, n, data)), data
}

// leaf fetches record n's leaf from its entry bundle, as anyone can, and
// checks its inclusion proof against cp.
func (c *client) leaf(t *testing.T, cp *log.Checkpoint, n int64) []byte {
	t.Helper()
	tile := tlog.Tile{H: 8, L: -1, N: n / 256, W: int(min(256, int64(cp.Size)-n/256*256))}
	path := "/ledger/" + strings.Replace(tile.Path(), "tile/8/data/", "tile/entries/", 1)
	bundle := c.do(http.MethodGet, path, nil).want(t, http.StatusOK).body
	var data []byte
	for i := int64(0); len(bundle) >= 2; i++ {
		l := int(bin.BigEndian.Uint16(bundle))
		if i == n%256 {
			data = bundle[2 : 2+l]
			break
		}
		bundle = bundle[2+l:]
	}
	if data == nil {
		t.Fatalf("record %d is not in bundle %s", n, path)
	}
	var p struct {
		Proof []string `json:"proof"`
	}
	raw := c.do(http.MethodGet, fmt.Sprintf("/ledger/proof/inclusion?index=%d&size=%d", n, cp.Size), nil).want(t, http.StatusOK).body
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	proof := make(tlog.RecordProof, len(p.Proof))
	for i, h := range p.Proof {
		b, _ := base64.StdEncoding.DecodeString(h)
		copy(proof[i][:], b)
	}
	if err := tlog.CheckRecord(proof, int64(cp.Size), tlog.Hash(cp.Hash), n, tlog.RecordHash(data)); err != nil {
		t.Fatalf("record %d's inclusion proof does not lead to the checkpoint: %v", n, err)
	}
	return data
}

// opening fetches the opening of record n (the client must be allowed
// it), nil when the record commits to nothing.
func (c *client) opening(t *testing.T, n int64, leaf []byte) []byte {
	t.Helper()
	var l struct{ Commitment string }
	json.Unmarshal(leaf, &l)
	if l.Commitment == "" {
		return nil
	}
	var o struct {
		Index   int64  `json:"index"`
		Record  string `json:"record"`
		Opening string `json:"opening"`
	}
	if err := json.Unmarshal(c.do(http.MethodGet, fmt.Sprintf("/ledger/opening/%d", n), nil).want(t, http.StatusOK).body, &o); err != nil {
		t.Fatal(err)
	}
	got, _ := base64.StdEncoding.DecodeString(o.Record)
	opening, _ := base64.StdEncoding.DecodeString(o.Opening)
	if o.Index != n || string(got) != string(leaf) {
		t.Fatalf("/ledger/opening/%d answers record %d: %s", n, o.Index, got)
	}
	return opening
}

// testLedger checks, as a client can, that disclosures are recorded
// before the data arrives: each read names its record, which is in the
// signed log and carries the SHA-256 of the very bytes received.
func testLedger(t *testing.T, c *client, run string) {
	p1, p2 := "ledger-a-"+run, "ledger-b-"+run
	for _, p := range []string{p1, p2} {
		c.do(http.MethodPut, "/Patient/"+p, fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"family":"Ledgered"}]}`, p)).want(t, http.StatusCreated)
		c.do(http.MethodPut, "/Observation/"+p+"-o", fmt.Sprintf(`{"resourceType":"Observation","id":"%s-o","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, p, p)).want(t, http.StatusCreated)
	}
	c.do(http.MethodPut, "/Organization/ledger-org-"+run, `{"resourceType":"Organization","id":"ledger-org-`+run+`","name":"Clinic"}`).want(t, http.StatusCreated)

	read := c.do(http.MethodGet, "/Observation/"+p1+"-o", nil).want(t, http.StatusOK)
	idx := ledgerIndexes(t, read)
	if len(idx) != 1 {
		t.Fatalf("a read names %v in Ledger-Index, want one record", idx)
	}
	// A checkpoint whose tree holds the record is signed on demand, at
	// once (the periodic one comes every second).
	lines := strings.Split(string(c.do(http.MethodGet, "/ledger/checkpoint?covers="+strconv.FormatInt(idx[0], 10), nil).want(t, http.StatusOK).body), "\n")
	if size, err := strconv.ParseInt(lines[min(1, len(lines)-1)], 10, 64); err != nil || size <= idx[0] {
		t.Fatalf("GET /ledger/checkpoint?covers=%d answers a tree of size %q", idx[0], lines[min(1, len(lines)-1)])
	}
	c.do(http.MethodGet, "/ledger/checkpoint?covers=999999999999", nil).want(t, http.StatusNotFound)
	c.do(http.MethodGet, "/ledger/checkpoint?covers=x", nil).want(t, http.StatusBadRequest)
	cp := c.checkpoint(t, idx[0])
	rec, data := c.record(t, cp, idx[0])
	sum := sha256.Sum256(read.body)
	if rec.Type != "disclosure" || rec.Interaction != "read" || len(rec.Resources) != 1 ||
		rec.Resources[0].Ref != "Observation/"+p1+"-o/_history/1" || rec.Resources[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("record %d does not describe the read (the SHA-256 of the body received is %x): %s", idx[0], sum, data)
	}
	if rec.Patient != "Patient/"+p1 {
		t.Fatalf("record %d opens as about %q, not Patient/%s", idx[0], rec.Patient, p1)
	}
	if strings.Contains(string(data), p1) || strings.Contains(string(data), hex.EncodeToString(sum[:])) || strings.Contains(string(data), "Ledgered") {
		t.Fatalf("record %d's leaf names the patient, the resource or its digest: %s", idx[0], data)
	}

	// One record per patient a response discloses; none for the
	// provider's own resources or for a count.
	search := c.do(http.MethodGet, "/Observation?subject=Patient/"+p1+",Patient/"+p2, nil).want(t, http.StatusOK)
	both := ledgerIndexes(t, search)
	if len(both) != 2 || both[0] == both[1] {
		t.Fatalf("a search over two patients names %v", both)
	}
	cp = c.checkpoint(t, slices.Max(both))
	seen := map[string]bool{}
	for _, n := range both {
		r, _ := c.record(t, cp, n)
		seen[r.Patient] = true
		if r.Interaction != "search" || len(r.Resources) != 1 {
			t.Fatalf("search record %d: %+v", n, r)
		}
	}
	if len(seen) != 2 || !seen[rec.Patient] {
		t.Fatalf("the two search records do not name the two patients: %v", seen)
	}
	if got := ledgerIndexes(t, c.do(http.MethodGet, "/Organization/ledger-org-"+run, nil).want(t, http.StatusOK)); got != nil {
		t.Fatalf("reading the provider's own Organization was recorded as a disclosure: %v", got)
	}
	if got := ledgerIndexes(t, c.do(http.MethodGet, "/Observation?subject=Patient/"+p1+"&_summary=count", nil).want(t, http.StatusOK)); got != nil {
		t.Fatalf("_summary=count disclosed %v", got)
	}
	for _, path := range []string{"/Patient/" + p1 + "/_history", "/Patient/" + p1 + "/_history/1", "/Patient/" + p1 + "/$everything", "/Patient/" + p1 + "/Observation"} {
		if got := ledgerIndexes(t, c.do(http.MethodGet, path, nil).want(t, http.StatusOK)); len(got) != 1 {
			t.Fatalf("GET %s names %v", path, got)
		}
	}

	// A write's answer that shows data the client did not send is a
	// disclosure: a patched resource, the match of a conditional create.
	patched := c.do(http.MethodPatch, "/Observation/"+p1+"-o", `[{"op":"replace","path":"/status","value":"amended"}]`,
		"Content-Type", "application/json-patch+json").want(t, http.StatusOK)
	if got := ledgerIndexes(t, patched); len(got) != 1 {
		t.Fatalf("a PATCH answered with the resource names %v", got)
	}
	matched := c.do(http.MethodPost, "/Patient", fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":"Other"}]}`),
		"If-None-Exist", "_id="+p1).want(t, http.StatusOK)
	if got := ledgerIndexes(t, matched); len(got) != 1 {
		t.Fatalf("a conditional create answered with the match names %v", got)
	}

	// A batch's reads are recorded too; the Bundle names their records.
	batch := c.do(http.MethodPost, "/", fmt.Sprintf(`{"resourceType":"Bundle","type":"batch","entry":[
		{"request":{"method":"GET","url":"Patient/%s"}},{"request":{"method":"GET","url":"Organization/ledger-org-%s"}},
		{"request":{"method":"GET","url":"Observation?subject=Patient/%s"}}]}`, p2, run, p2)).want(t, http.StatusOK)
	if got := ledgerIndexes(t, batch); len(got) != 2 {
		t.Fatalf("a batch with two reads of patient data names %v", got)
	}

	// The ledger's tiles are immutable once full; proofs for records the
	// log does not have are 404.
	c.do(http.MethodGet, fmt.Sprintf("/ledger/proof/inclusion?index=%d&size=%d", cp.Size, cp.Size), nil).want(t, http.StatusNotFound)
	c.do(http.MethodGet, "/ledger/tile/0/x999/999", nil).want(t, http.StatusNotFound)
	c.do(http.MethodGet, "/ledger/proof/inclusion?index=x", nil).want(t, http.StatusBadRequest)
}

// writeAuditEventsWait bounds the wait for stored write AuditEvents: the
// server stores them in log order, so a test waits for those of every
// write the suite made before it (thousands: slow under the race
// detector, which instruments the pure-Go SQLite too).
const writeAuditEventsWait = 2 * time.Minute

// auditEventOf is what testAuditEvents reads of an AuditEvent.
type auditEventOf struct {
	ResourceType string `json:"resourceType"`
	Meta         struct {
		Profile []string `json:"profile"`
	} `json:"meta"`
	Extension []struct {
		ValueInteger int64 `json:"valueInteger"`
	} `json:"extension"`
	Action string `json:"action"`
	Entity []struct {
		What struct {
			Reference string `json:"reference"`
		} `json:"what"`
	} `json:"entity"`
}

// testAuditEvents checks the ledger's AuditEvent view: a patient's reads
// come back as BALP PrivacyDisclosure AuditEvents citing the records the
// reads named, filtered by date and paged.
func testAuditEvents(t *testing.T, c *client, run string) {
	p := "audit-" + run
	c.do(http.MethodPut, "/Patient/"+p, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, p)).want(t, http.StatusCreated)
	var named []string
	for range 3 {
		named = append(named, c.do(http.MethodGet, "/Patient/"+p, nil).want(t, http.StatusOK).Header.Get("Ledger-Index"))
	}
	type page struct {
		Entry []struct {
			Resource auditEventOf `json:"resource"`
		} `json:"entry"`
		Link []struct{ Relation, URL string } `json:"link"`
	}
	// Each view of the trail is a disclosure about the patient, so the
	// trail grows by one record with every look that shows something: a
	// view is told by what it disclosed, AuditEvents only.
	isView := func(ae auditEventOf) bool {
		if !strings.HasSuffix(ae.Meta.Profile[0], "PrivacyDisclosure.Source") || len(ae.Entity) < 2 {
			return false
		}
		for _, e := range ae.Entity[1:] {
			if !strings.HasPrefix(e.What.Reference, "AuditEvent/") {
				return false
			}
		}
		return true
	}
	// The create's record reaches the log through the queue, behind the
	// records of every write the suite made before (minutes under the
	// race detector). Its stored AuditEvent says it has: wait for that
	// rather than look at the trail again and again, since each look
	// that shows something is itself recorded (a view of the trail).
	deadline := time.Now().Add(writeAuditEventsWait)
	for {
		var stored struct {
			Entry []json.RawMessage `json:"entry"`
		}
		json.Unmarshal(c.do(http.MethodGet, "/Patient/"+p+"/AuditEvent", nil).want(t, http.StatusOK).body, &stored)
		if len(stored.Entry) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the create's AuditEvent is not stored after %v", writeAuditEventsWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The trail lists a record a moment after it is integrated (the
	// lookup table is filled beside the appends). The create and the
	// reads come before any look in the log, so they are on the first
	// page however many looks are listed after them.
	var got page
	var own []auditEventOf // the trail without its views
	looks, views := 0, 0
	for {
		got = page{}
		json.Unmarshal(c.do(http.MethodGet, "/AuditEvent?patient=Patient/"+p, nil).want(t, http.StatusOK).body, &got)
		looks++
		own, views = own[:0], 0
		for _, e := range got.Entry {
			if isView(e.Resource) {
				views++
			} else {
				own = append(own, e.Resource)
			}
		}
		if len(own) >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(own) != 4 || views > looks { // looks, and the view of the stored AuditEvent
		t.Fatalf("AuditEvent?patient= lists %d events and %d views of AuditEvents after %d looks, want the create and 3 reads", len(own), views, looks)
	}
	var disclosures []string
	for _, ae := range own {
		if ae.ResourceType != "AuditEvent" || len(ae.Extension) != 1 || len(ae.Entity) < 2 || ae.Entity[0].What.Reference != "Patient/"+p {
			t.Fatalf("not a BALP AuditEvent about the patient: %+v", ae)
		}
		if strings.HasSuffix(ae.Meta.Profile[0], "PrivacyDisclosure.Source") {
			disclosures = append(disclosures, strconv.FormatInt(ae.Extension[0].ValueInteger, 10))
		}
	}
	if !slices.Equal(disclosures, named) {
		t.Fatalf("the PrivacyDisclosure AuditEvents cite records %v, the reads named %v", disclosures, named)
	}
	// The look is in the trail too, as a view, once the log has
	// integrated its record.
	for seen := views; seen <= views; {
		if time.Now().After(deadline) {
			t.Fatalf("the trail does not list the look at it")
		}
		time.Sleep(50 * time.Millisecond)
		var again page
		json.Unmarshal(c.do(http.MethodGet, "/AuditEvent?patient=Patient/"+p, nil).want(t, http.StatusOK).body, &again)
		seen = 0
		for _, e := range again.Entry {
			if isView(e.Resource) {
				seen++
			}
		}
	}
	var two page
	json.Unmarshal(c.do(http.MethodGet, "/AuditEvent?patient=Patient/"+p+"&_count=2", nil).want(t, http.StatusOK).body, &two)
	if len(two.Entry) != 2 || len(two.Link) < 2 || two.Link[1].Relation != "next" {
		t.Fatalf("_count=2 gives %d events and links %+v", len(two.Entry), two.Link)
	}
	var none page
	json.Unmarshal(c.do(http.MethodGet, "/AuditEvent?patient=Patient/"+p+"&date=lt2000-01-01", nil).want(t, http.StatusOK).body, &none)
	if len(none.Entry) != 0 {
		t.Fatalf("date=lt2000 finds %d events", len(none.Entry))
	}
	c.do(http.MethodGet, "/AuditEvent", nil).want(t, http.StatusBadRequest)

	// Writes are also stored as AuditEvent resources, in the patient's
	// compartment, shortly after their records are integrated: the
	// create above, and the deletion of an Observation of the patient.
	var created int64 = -1
	for _, e := range got.Entry {
		if strings.HasSuffix(e.Resource.Meta.Profile[0], "PatientCreate") {
			created = e.Resource.Extension[0].ValueInteger
		}
	}
	if created < 0 {
		t.Fatalf("no PatientCreate AuditEvent among %+v", got.Entry)
	}
	obs := "/Observation/" + p + "-o"
	c.do(http.MethodPut, obs, fmt.Sprintf(`{"resourceType":"Observation","id":"%s-o","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, p, p)).want(t, http.StatusCreated)
	c.do(http.MethodDelete, obs, nil).want(t, http.StatusNoContent)
	type stored struct {
		Entry []struct {
			Resource struct {
				ID   string `json:"id"`
				Meta struct {
					VersionID string   `json:"versionId"`
					Profile   []string `json:"profile"`
				} `json:"meta"`
				Extension []struct {
					ValueInteger int64 `json:"valueInteger"`
				} `json:"extension"`
				Entity []struct {
					What struct{ Reference string } `json:"what"`
				} `json:"entity"`
			} `json:"resource"`
		} `json:"entry"`
	}
	var compartment stored
	deadline = time.Now().Add(writeAuditEventsWait)
	for {
		compartment = stored{}
		json.Unmarshal(c.do(http.MethodGet, "/Patient/"+p+"/AuditEvent", nil).want(t, http.StatusOK).body, &compartment)
		if len(compartment.Entry) == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var profiles []string
	for _, e := range compartment.Entry {
		ae := e.Resource
		if len(ae.Extension) != 1 || ae.ID != "ledger-"+strconv.FormatInt(ae.Extension[0].ValueInteger, 10) || ae.Meta.VersionID != "1" ||
			len(ae.Entity) < 2 || ae.Entity[0].What.Reference != "Patient/"+p {
			t.Fatalf("not a stored BALP AuditEvent about the patient citing its record: %+v", ae)
		}
		profile := ae.Meta.Profile[0]
		profiles = append(profiles, profile[strings.LastIndex(profile, ".")+1:]+" "+ae.Entity[1].What.Reference)
	}
	slices.Sort(profiles)
	want := []string{"PatientCreate Observation/" + p + "-o/_history/1", "PatientCreate Patient/" + p + "/_history/1", "PatientDelete Observation/" + p + "-o/_history/2"}
	if !slices.Equal(profiles, want) {
		t.Fatalf("the patient's compartment holds the write AuditEvents %v, want %v", profiles, want)
	}
	var one struct {
		ResourceType string `json:"resourceType"`
		Extension    []struct {
			ValueInteger int64 `json:"valueInteger"`
		} `json:"extension"`
	}
	json.Unmarshal(c.do(http.MethodGet, "/AuditEvent/ledger-"+strconv.FormatInt(created, 10), nil).want(t, http.StatusOK).body, &one)
	if one.ResourceType != "AuditEvent" || len(one.Extension) != 1 || one.Extension[0].ValueInteger != created {
		t.Fatalf("GET /AuditEvent/ledger-%d: %+v", created, one)
	}
}
