package conformance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TestNodeBackendServicesClient runs a SMART Backend Services client made
// of public npm packages (fhir-kit-client, jose; conformance/node) against
// the binary: it discovers the token endpoint, gets a token with its own
// signed assertion, and reads and searches with it, as a third party's
// code would. scripts/test.sh installs the packages (npm ci).
func TestNodeBackendServicesClient(t *testing.T) {
	dir, _ := filepath.Abs("node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "fhir-kit-client")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the npm packages are not installed (npm ci --prefix conformance/node): %v", err)
		}
		t.Skip("the npm packages are not installed: run npm ci --prefix conformance/node")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed: %v", err)
	}
	p := serve(t, binary(t), "--data", t.TempDir())
	c := p.client(t)
	pid := "node-patient"
	c.do(http.MethodPut, "/Patient/"+pid, `{"resourceType":"Patient","id":"node-patient","name":[{"family":"Node"}]}`).want(t, http.StatusCreated)
	for _, o := range []string{"node-obs-1", "node-obs-2"} {
		c.do(http.MethodPut, "/Observation/"+o, fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, o, pid)).want(t, http.StatusCreated)
	}

	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := json.Marshal(jose.JSONWebKey{Key: key, KeyID: "node-1", Algorithm: "ES384", Use: "sig"})
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "node-1", Algorithm: "ES384", Use: "sig"}
	const id = "node-backend"
	const scope = "system/Patient.rs system/Observation.rs"
	c.register(t, id, map[string]any{"actor": "Organization/node-clinic", "purposes": []string{"TREAT"}, "scope": scope,
		"jwks": jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}})

	cmd := exec.Command(node, filepath.Join(dir, "backend.mjs"))
	cmd.Env = append(os.Environ(), "FHIR_BASE="+p.url, "CLIENT_ID="+id, "CLIENT_JWK="+string(priv), "SCOPE="+scope, "PATIENT="+pid)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node backend.mjs: %v\n%s", err, stderr.String())
	}
	var got struct {
		Anonymous    any      `json:"anonymous"`
		TokenURL     string   `json:"tokenUrl"`
		TokenStatus  int      `json:"tokenStatus"`
		ReplayStatus int      `json:"replayStatus"`
		Scope        string   `json:"scope"`
		Patient      string   `json:"patient"`
		Observations []string `json:"observations"`
		Total        int      `json:"total"`
		Create       any      `json:"create"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node printed %s: %v", out, err)
	}
	for _, check := range []struct {
		name      string
		got, want any
	}{
		{"anonymous read", got.Anonymous, float64(401)},
		{"discovered token endpoint", got.TokenURL, p.url + "/auth/token"},
		{"token request", got.TokenStatus, 200},
		{"replayed assertion", got.ReplayStatus, 401},
		{"granted scope", got.Scope, scope},
		{"patient read", got.Patient, pid},
		{"search total", got.Total, 2},
		{"create outside the scopes", got.Create, float64(403)},
	} {
		if check.got != check.want {
			t.Errorf("%s: got %v, want %v (node printed %s)", check.name, check.got, check.want, out)
		}
	}
	if !slices.Equal(got.Observations, []string{"node-obs-1", "node-obs-2"}) {
		t.Errorf("search found %q", got.Observations)
	}
	// The server recorded the client's reads as disclosures to it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := c.do(http.MethodGet, "/AuditEvent?patient=Patient/"+pid+"&agent="+url.QueryEscape("Organization/node-clinic"), nil).want(t, http.StatusOK)
		if n := len(bundleIDs(r, "AuditEvent", "")); n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node client's disclosures are not in the patient's AuditEvents: %s", truncate(r.body))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
