// Package testvault gives integration tests the real Vault that
// scripts/test.sh starts (tools/vaultdev, its own module: the Vault server
// is never part of the product), and a switchable proxy in front of it to
// cut Vault off and count the requests that reach it.
//
// Without EHR_TEST_VAULT_ADDR the Vault tests are skipped with a message,
// except under CI=true where they fail.
package testvault

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Env is the running Vault as tools/vaultdev describes it.
type Env struct {
	Addr, TLSAddr, CACert string
	Token                 string
	RoleID, SecretID      string
}

// Get returns the test Vault, or skips (fails under CI=true) without one.
func Get(t testing.TB) Env {
	t.Helper()
	e := Env{
		Addr: os.Getenv("EHR_TEST_VAULT_ADDR"), TLSAddr: os.Getenv("EHR_TEST_VAULT_TLS_ADDR"),
		CACert: os.Getenv("EHR_TEST_VAULT_CACERT"), Token: os.Getenv("EHR_TEST_VAULT_TOKEN"),
		RoleID: os.Getenv("EHR_TEST_VAULT_ROLE_ID"), SecretID: os.Getenv("EHR_TEST_VAULT_SECRET_ID"),
	}
	if e.Addr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("EHR_TEST_VAULT_ADDR is not set under CI=true: run the tests with scripts/test.sh, which starts the Vault dev harness")
		}
		t.Skip("EHR_TEST_VAULT_ADDR is not set: Vault tests skipped (scripts/test.sh runs them)")
	}
	return e
}

// Proxy forwards HTTP to Vault on a loopback port that can be cut off
// (connections refused, as when Vault is down) and restored, and counts
// the requests it forwarded.
type Proxy struct {
	URL      string
	target   *url.URL
	addr     string
	mu       sync.Mutex
	srv      *http.Server
	Requests atomic.Int64
}

// NewProxy starts a proxy to Vault at target; it stops with the test.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{target: u, addr: ln.Addr().String()}
	p.URL = "http://" + p.addr
	p.serve(ln)
	t.Cleanup(p.Down)
	return p
}

func (p *Proxy) serve(ln net.Listener) {
	rp := httputil.NewSingleHostReverseProxy(p.target)
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.Requests.Add(1)
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go p.srv.Serve(ln)
}

// Down cuts Vault off: the port refuses connections.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		p.srv.Close()
		p.srv = nil
	}
}

// Up restores the route to Vault on the same port.
func (p *Proxy) Up(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		return
	}
	var ln net.Listener
	var err error
	for range 50 { // the closed port may linger a moment
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}
