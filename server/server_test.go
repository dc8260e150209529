package server_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/conformance"
	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/internal/testkeys"
	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
)

// testServer is a server on a loopback port with its embedded
// authorization server, built as "ehrledger serve" builds it.
type testServer struct {
	URL       string
	client    *http.Client
	st        *store.Store
	authority *server.Authority
	issuer    *conformance.Issuer
}

// newServer serves a fresh database on a loopback port.
func newServer(t *testing.T, dsn string) *testServer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	authority := testkeys.Authority(t)
	issuer := conformance.NewIssuer(t)
	// Under the race detector the suite's 5,000-entry transaction takes
	// over half a minute on SQLite, more when other packages' tests share
	// the cores: the request deadline is widened for it.
	n, base := testkeys.Node(t, dsn, server.Config{Authority: authority, Timeout: 5 * time.Minute,
		Issuers: []server.Issuer{{Issuer: auth.Issuer{URL: issuer.URL, JWKSURL: issuer.JWKSURL}}}}, log)
	return &testServer{URL: base, client: &http.Client{}, st: n.Store, authority: authority, issuer: issuer}
}

// suite is the server as the conformance suite drives it.
func (s *testServer) suite() conformance.Server {
	return conformance.Server{URL: s.URL, Issuer: s.issuer, Mint: func(t testing.TB, req conformance.TokenRequest) string {
		return s.token(t, auth.TokenRequest{Client: req.Client, Scope: req.Scope, Patient: req.Patient, Purposes: req.Purposes})
	}}
}

// token mints a token of the server's authorization server.
func (s *testServer) token(t testing.TB, req auth.TokenRequest) string {
	return testkeys.Token(t, s.st, s.authority, s.URL, req)
}

// admin is an HTTP client acting as the admin client.
func (s *testServer) admin(t testing.TB) *http.Client {
	return testkeys.Bearer(s.client, s.token(t, auth.TokenRequest{Client: "admin", Scope: testkeys.AdminScope}))
}

// serveAuthed serves cfg with an embedded authorization server on a
// loopback port, closed when the test ends, and returns it with a client
// acting as the admin client.
func serveAuthed(t testing.TB, cfg server.Config) (*httptest.Server, *http.Client) {
	t.Helper()
	if cfg.Authority == nil {
		cfg.Authority = testkeys.Authority(t)
	}
	hs := httptest.NewUnstartedServer(nil)
	cfg.BaseURL = "http://" + hs.Listener.Addr().String()
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv
	hs.Start()
	t.Cleanup(hs.Close)
	tok := testkeys.Token(t, cfg.Store, cfg.Authority, hs.URL, auth.TokenRequest{Client: "admin", Scope: testkeys.AdminScope})
	return hs, testkeys.Bearer(hs.Client(), tok)
}

// TestConformance runs the black-box suite in-process over every database.
func TestConformance(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		conformance.Run(t, newServer(t, dsn).suite())
	})
}

// TestSearch runs the search cases over every database, each on a fresh
// one.
func TestSearch(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		conformance.RunSearch(t, newServer(t, dsn).suite())
	})
}
