package conformance

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Server is a server under test: its FHIR base URL and how to get access
// tokens of its embedded authorization server.
type Server struct {
	URL string
	// Mint returns an access token for a registered client, as
	// "ehrledger token" mints them (valid for an hour).
	Mint func(t testing.TB, req TokenRequest) string
	// Issuer is an external authorization server the server trusts.
	Issuer *Issuer
}

// TokenRequest asks Server.Mint for a token.
type TokenRequest struct {
	Client, Scope, Patient string
	Purposes               []string
}

// adminScope is what the suite's own client works with: every resource
// interaction and the administration.
const adminScope = "system/*.cruds ehrledger/admin"

// admin returns a client holding a token of the admin client, which the
// embedded mode registers on first start.
func (s Server) admin(t testing.TB) *client {
	t.Helper()
	return s.with(t, s.Mint(t, TokenRequest{Client: "admin", Scope: adminScope}))
}

// as returns a client holding a token of the registered client req names.
func (s Server) as(t testing.TB, req TokenRequest) *client {
	t.Helper()
	return s.with(t, s.Mint(t, req))
}

// with returns a client holding token.
func (s Server) with(t testing.TB, token string) *client {
	c := newClient(t, s.URL, token)
	c.srv = s
	return c
}

// client speaks to the server under test the way a FHIR client does,
// with its access token (none when empty).
type client struct {
	t     testing.TB
	base  string
	http  *http.Client
	token string
	srv   Server // the server, for clients with other tokens
}

func newClient(t testing.TB, base, token string) *client {
	return &client{t: t, base: strings.TrimSuffix(base, "/"), http: &http.Client{Timeout: 2 * time.Minute}, token: token}
}

// withT is the same client reporting to another test.
func (c *client) withT(t testing.TB) *client {
	cc := *c
	cc.t = t
	return &cc
}

// response is an answer with its body read.
type response struct {
	*http.Response
	body []byte
}

// json decodes the body keeping numbers as written.
func (r *response) json() map[string]any {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil
	}
	return m
}

// do sends a request; headers come as name, value pairs. A body that is a
// string or []byte is sent as is, an io.Reader is streamed, anything else is
// marshalled as JSON.
func (c *client) do(method, path string, body any, headers ...string) *response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.t.Fatalf("marshal request: %v", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatalf("request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return &response{Response: res, body: raw}
}

// want checks the status and, for errors, that the body is an
// OperationOutcome served as FHIR JSON.
func (r *response) want(t testing.TB, status int) *response {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body: %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, truncate(r.body))
	}
	if status >= 400 {
		wantOutcome(t, r)
	}
	return r
}

func wantOutcome(t testing.TB, r *response) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type %q, want application/fhir+json", ct)
	}
	m := r.json()
	if m["resourceType"] != "OperationOutcome" {
		t.Fatalf("body is not an OperationOutcome: %s", truncate(r.body))
	}
	issues, _ := m["issue"].([]any)
	if len(issues) == 0 {
		t.Fatalf("OperationOutcome without issues: %s", r.body)
	}
}

// issueExpressions lists the expressions of an OperationOutcome's issues.
func (r *response) issueExpressions() []string {
	var out []string
	issues, _ := r.json()["issue"].([]any)
	for _, is := range issues {
		m, _ := is.(map[string]any)
		exprs, _ := m["expression"].([]any)
		for _, e := range exprs {
			out = append(out, e.(string))
		}
	}
	return out
}

func truncate(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "..."
	}
	return string(b)
}

// sameJSON reports whether two JSON documents are equal as JSON, numbers
// compared by their digits (1.50 differs from 1.5).
func sameJSON(a, b []byte) bool {
	return reflect.DeepEqual(decode(a), decode(b))
}

func decode(b []byte) any {
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return nil
	}
	return v
}

// withoutServerMeta removes what the server sets (id, meta.versionId,
// meta.lastUpdated, and meta when nothing else is left in it).
func withoutServerMeta(b []byte) []byte {
	m, _ := decode(b).(map[string]any)
	delete(m, "id")
	if meta, ok := m["meta"].(map[string]any); ok {
		delete(meta, "versionId")
		delete(meta, "lastUpdated")
		if len(meta) == 0 {
			delete(m, "meta")
		}
	}
	out, _ := json.Marshal(m)
	return out
}
