package conformance

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The hostile client (docs/api.md, "Limits"): inputs made to cost the
// server out of proportion, or to find an answer it did not plan for.
// Each must be answered with the right status (a 4xx OperationOutcome
// naming the problem, or a success when the input is merely large)
// within a time bound, never a 5xx, and the server's heap must not grow
// out of proportion across them.

// hostileCase is one input and what must come of it.
type hostileCase struct {
	name    string
	method  string
	path    string
	body    func() io.Reader // nil for none
	headers []string
	want    int
	within  time.Duration
	// check, when set, looks further at the answer.
	check func(t *testing.T, r *response)
}

// repeated is a reader of n bytes made of s again and again, so that a
// huge body costs the client nothing to hold.
type repeated struct {
	s    string
	n, i int64
}

func (r *repeated) Read(p []byte) (int, error) {
	if r.i >= r.n {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && r.i < r.n {
		p[k] = r.s[r.i%int64(len(r.s))]
		k++
		r.i++
	}
	return k, nil
}

func joined(n int, f func(i int) string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = f(i)
	}
	return strings.Join(parts, ",")
}

func stringBody(s string) func() io.Reader { return func() io.Reader { return strings.NewReader(s) } }

// heapInUse reads the server's heap in use from /metrics.
func (c *client) heapInUse(t *testing.T) float64 {
	t.Helper()
	r := c.do(http.MethodGet, "/metrics", nil).want(t, http.StatusOK)
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("/metrics: %v", err)
			}
			return f
		}
	}
	t.Fatal("/metrics has no go_memstats_heap_inuse_bytes")
	return 0
}

func testHostile(t *testing.T, c *client, run string) {
	// An Observation with 20,000 members, for the repeated include.
	panel := "hostile-panel-" + run
	members := joined(20_000, func(i int) string { return fmt.Sprintf(`{"reference":"Observation/m%d-%s"}`, i, run) })
	c.do(http.MethodPut, "/Observation/"+panel, fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"text":"panel"},"hasMember":[%s]}`, panel, members)).want(t, http.StatusCreated)
	identifiers := func(n int) string {
		return `{"resourceType":"Patient","identifier":[` + joined(n, func(i int) string {
			return fmt.Sprintf(`{"system":"http://hostile.example/mrn","value":"%s-%d"}`, run, i)
		}) + `]}`
	}
	molecular := `{"resourceType":"MolecularSequence","type":"dna","coordinateSystem":0,"referenceSeq":{"referenceSeqId":{"coding":[{"system":"http://www.ncbi.nlm.nih.gov/nuccore","code":"NC_000009.11"}]},` +
		`"strand":"watson","windowStart":22125500,"windowEnd":22125510},"variant":[{"start":22125503,"end":22125504,"observedAllele":"C","referenceAllele":"G"}]}`
	includes := strings.Repeat("&_include=Observation:has-member", 2_000)
	var distinctIncludes string
	for _, p := range []string{"based-on", "derived-from", "device", "encounter", "focus", "has-member", "part-of", "patient", "performer", "specimen", "subject"} {
		distinctIncludes += "&_include=Observation:" + p + "&_include:iterate=Observation:" + p
	}
	cases := []hostileCase{
		{name: "a Patient with 20,000 identifiers is indexed in time", method: http.MethodPost, path: "/Patient",
			body: stringBody(identifiers(20_000)), want: http.StatusCreated, within: 30 * time.Second},
		{name: "a Patient with 2,000 long given names would store too many index rows", method: http.MethodPost, path: "/Patient",
			body: stringBody(`{"resourceType":"Patient","name":[{"given":[` + joined(2_000, func(i int) string {
				return fmt.Sprintf(`"%s%06d"`, strings.Repeat("Maximiliana", 5), i)
			}) + `]}]}`), want: http.StatusUnprocessableEntity, within: 20 * time.Second},
		{name: "a repeated include is one include", method: http.MethodGet, path: "/Observation?_id=" + panel + includes,
			want: http.StatusOK, within: 20 * time.Second, check: func(t *testing.T, r *response) {
				if n := len(bundleIDs(r, "Observation", "match")); n != 1 {
					t.Fatalf("%d matches, want the panel", n)
				}
			}},
		{name: "more distinct includes than are taken", method: http.MethodGet, path: "/Observation?_id=" + panel + distinctIncludes,
			want: http.StatusBadRequest, within: 5 * time.Second},
		{name: "a tile past any tree", method: http.MethodGet, path: "/ledger/tile/0/x001/x002/x003/x004/x005/x006/007",
			want: http.StatusNotFound, within: 5 * time.Second},
		{name: "500 values of one parameter", method: http.MethodGet, path: "/Observation?code=" + joined(500, func(i int) string { return fmt.Sprintf("c%d", i) }),
			want: http.StatusOK, within: 10 * time.Second},
		{name: "1,000 values of a token with system", method: http.MethodGet, path: "/Observation?code=" + joined(1_000, func(i int) string { return fmt.Sprintf("http://loinc.org%%7Cc%d", i) }),
			want: http.StatusOK, within: 10 * time.Second},
		{name: "more values than a query takes", method: http.MethodGet, path: "/Observation?code=" + joined(1_001, func(i int) string { return fmt.Sprintf("c%d", i) }),
			want: http.StatusBadRequest, within: 5 * time.Second},
		{name: "1,000 criteria", method: http.MethodGet, path: "/Observation?" + strings.Repeat("code=c&", 999) + "code=c",
			want: http.StatusBadRequest, within: 5 * time.Second},
		{name: "2,000 :missing criteria", method: http.MethodGet, path: "/Observation?" + strings.Repeat("code:missing=true&", 1_999) + "code:missing=true",
			want: http.StatusBadRequest, within: 5 * time.Second},
		{name: "a JSON Patch test without a value", method: http.MethodPatch, path: "/Observation/" + panel,
			body: stringBody(`[{"op":"test","path":""}]`), headers: []string{"Content-Type", "application/json-patch+json"},
			want: http.StatusBadRequest, within: 5 * time.Second},
		{name: "a malformed query string", method: http.MethodGet, path: "/Patient?name=a%zz", want: http.StatusBadRequest, within: 5 * time.Second},
		{name: "a body over the size limit, with its length", method: http.MethodPost, path: "/Patient",
			body: func() io.Reader { return bytes.NewReader(bytes.Repeat([]byte(" "), 35<<20)) }, want: http.StatusRequestEntityTooLarge, within: 30 * time.Second},
		{name: "a body over the size limit, chunked", method: http.MethodPost, path: "/Patient",
			body: func() io.Reader { return &repeated{s: " ", n: 35 << 20} }, want: http.StatusRequestEntityTooLarge, within: 30 * time.Second},
		{name: "a decimal past a double's range", method: http.MethodPost, path: "/Observation",
			body: stringBody(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1e400}}`), want: http.StatusBadRequest, within: 5 * time.Second},
		{name: "a NUL in a string", method: http.MethodPost, path: "/Patient",
			body: stringBody(`{"resourceType":"Patient","name":[{"family":"a\u0000b"}]}`), want: http.StatusBadRequest, within: 5 * time.Second},
		{name: "a lone surrogate in a string", method: http.MethodPost, path: "/Patient",
			body: stringBody(`{"resourceType":"Patient","name":[{"family":"a\ud800b"}]}`), want: http.StatusBadRequest, within: 5 * time.Second},
		{name: "a MolecularSequence (three-part composites) is stored and found", method: http.MethodPost, path: "/MolecularSequence",
			body: stringBody(molecular), want: http.StatusCreated, within: 5 * time.Second, check: func(t *testing.T, r *response) {
				id, _ := r.json()["id"].(string)
				found := c.do(http.MethodGet, "/MolecularSequence?_id="+id+"&referenceseqid-variant-coordinate=NC_000009.11$22125503$22125504", nil).want(t, http.StatusOK)
				if got := bundleIDs(found, "MolecularSequence", "match"); len(got) != 1 {
					t.Fatalf("the sequence's variant coordinate finds %v", got)
				}
			}},
		{name: "a batch entry that is not a FHIR interaction", method: http.MethodPost, path: "/",
			body: stringBody(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"ledger/checkpoint"}},{"request":{"method":"GET","url":"auth/jwks"}}]}`),
			want: http.StatusOK, within: 5 * time.Second, check: func(t *testing.T, r *response) {
				if got := strings.Count(string(r.body), `"status":"400 Bad Request"`); got != 2 {
					t.Fatalf("%d entries answered 400, want 2: %s", got, truncate(r.body))
				}
			}},
		{name: "a Bundle of more entries than are taken", method: http.MethodPost, path: "/",
			body: stringBody(`{"resourceType":"Bundle","type":"batch","entry":[` + joined(10_001, func(int) string { return `{"request":{"method":"GET","url":"metadata"}}` }) + `]}`),
			want: http.StatusBadRequest, within: 10 * time.Second},
	}
	before := c.heapInUse(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != nil {
				body = tc.body()
			}
			start := time.Now()
			r := c.do(tc.method, tc.path, body, tc.headers...)
			took := time.Since(start)
			if r.StatusCode >= 500 {
				t.Fatalf("%d: %s", r.StatusCode, truncate(r.body))
			}
			r.want(t, tc.want)
			if took > tc.within {
				t.Fatalf("answered in %v, more than %v", took, tc.within)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
	if grew := c.heapInUse(t) - before; grew > 512<<20 {
		t.Fatalf("the server's heap grew by %.0f MB across the hostile inputs", grew/(1<<20))
	}
	// The query string of a search over POST is checked like a GET's.
	c.do(http.MethodPost, "/Patient/_search", url.Values{"name": {"x"}}.Encode()+"&bad=%zz",
		"Content-Type", "application/x-www-form-urlencoded").want(t, http.StatusBadRequest)
}
