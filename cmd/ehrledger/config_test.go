package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/consent"
)

func TestServeConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ehrledger.yaml")
	os.WriteFile(file, []byte("addr: 127.0.0.1:7000\ndata: /from/file\nmax_body_bytes: 1024\nrequest_timeout: 5s\nlog_format: json\n"), 0o600)
	env := map[string]string{"EHR_CONFIG": file, "EHR_DATA": "/from/env", "EHR_MAX_BODY_BYTES": "2048"}
	cfg, err := loadServeConfig([]string{"--max-body-bytes", "4096"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"file beats default", cfg.Addr, "127.0.0.1:7000"},
		{"env beats file", cfg.Data, "/from/env"},
		{"flag beats env", cfg.MaxBodyBytes, int64(4096)},
		{"durations from YAML", cfg.RequestTimeout, 5 * time.Second},
		{"default stays", cfg.LogLevel, "info"},
		{"export retention by default", cfg.ExportRetention, 24 * time.Hour},
		{"ledger's pending bound by default", cfg.LedgerMaxPending, 16384},
		{"embedded database under data", cfg.dsn(), "sqlite:/from/env/ehrledger.db"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestServeConfigRejects(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(file, []byte("adr: typo\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"misspelt YAML key", []string{"--config", file}},
		{"missing file", []string{"--config", file + ".nope"}},
		{"bad number", []string{"--max-body-bytes", "lots"}},
		{"bad level", []string{"--log-level", "loud"}},
		{"zero limit", []string{"--max-json-depth", "0"}},
		{"zero index rows", []string{"--max-index-rows", "0"}},
		{"bad body timeout", []string{"--body-timeout", "soon"}},
		{"zero export retention", []string{"--export-retention", "0s"}},
		{"bad export retention", []string{"--export-retention", "a day"}},
		{"stray argument", []string{"extra"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := loadServeConfig(tc.args, func(string) string { return "" }, io.Discard); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestAuthConfig(t *testing.T) {
	none := func(string) string { return "" }
	cfg, err := loadServeConfig(nil, none, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Auth.Server || cfg.InsecureNoAuth || cfg.Auth.TokenLifetime != 5*time.Minute || cfg.authKeyFile() != filepath.Join("data", "auth-key.json") {
		t.Fatalf("defaults: %+v", cfg.Auth)
	}
	file := filepath.Join(t.TempDir(), "auth.yaml")
	os.WriteFile(file, []byte("base_url: https://fhir.example\nauth:\n  server: false\n  issuers:\n    - url: https://idp.example\n      jwks_url: https://idp.example/jwks\n      token_url: https://idp.example/token\n"), 0o600)
	cfg, err = loadServeConfig([]string{"--config", file}, none, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.Server || len(cfg.issuers()) != 1 || cfg.issuers()[0].TokenURL != "https://idp.example/token" {
		t.Fatalf("issuers from YAML: %+v", cfg.Auth)
	}
	cfg, err = loadServeConfig([]string{"--auth-issuer", "https://a.example", "--auth-jwks-url", "https://a.example/jwks", "--insecure-no-auth", "--base-url", "https://fhir.example"}, none, io.Discard)
	if err != nil || !cfg.InsecureNoAuth || cfg.Auth.Issuers[0].URL != "https://a.example" {
		t.Fatalf("issuer flags: %+v %v", cfg, err)
	}
	for name, args := range map[string][]string{
		"issuer without JWKS":        {"--auth-issuer", "https://a.example"},
		"issuer without a base URL":  {"--auth-issuer", "https://a.example", "--auth-jwks-url", "https://a.example/jwks"},
		"nobody can get a token":     {"--auth-server=false"},
		"lifetime over an hour":      {"--auth-token-lifetime", "2h"},
		"not a boolean":              {"--insecure-no-auth=maybe"},
		"lifetime is not a duration": {"--auth-token-lifetime", "long"},
	} {
		if _, err := loadServeConfig(args, none, io.Discard); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := loadServeConfig([]string{"--auth-server=false", "--insecure-no-auth"}, none, io.Discard); err != nil {
		t.Errorf("authentication off without an authorization server: %v", err)
	}
}

func TestConsentConfig(t *testing.T) {
	none := func(string) string { return "" }
	cfg, err := loadServeConfig(nil, none, io.Discard)
	if err != nil || cfg.consent().Default != consent.Permit || len(cfg.consent().ExplicitPurposes) != 0 {
		t.Fatalf("default: %+v %v", cfg.consent(), err)
	}
	cfg, err = loadServeConfig([]string{"--consent-default", "opt-in", "--consent-explicit-purposes", "HRESCH,PUBHLTH",
		"--consent-redact", "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R,HIV"}, none, io.Discard)
	if err != nil || cfg.consent().Default != consent.Deny || strings.Join(cfg.consent().ExplicitPurposes, " ") != "HRESCH PUBHLTH" {
		t.Fatalf("flags: %+v %v", cfg.consent(), err)
	}
	if r := cfg.consent().Redact; len(r) != 2 || r[0] != (consent.Coding{System: "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", Code: "R"}) || r[1] != (consent.Coding{Code: "HIV"}) {
		t.Fatalf("redacted labels: %+v", r)
	}
	if _, err := loadServeConfig([]string{"--consent-default", "maybe"}, none, io.Discard); err == nil {
		t.Fatal("an unknown default was accepted")
	}
	file := filepath.Join(t.TempDir(), "labels.yaml")
	os.WriteFile(file, []byte("consent:\n  labels:\n    - label: http://terminology.hl7.org/CodeSystem/v3-ActCode|HIV\n      codes: [\"http://snomed.info/sct|86406008\", \"B20\"]\n"), 0o600)
	cfg, err = loadServeConfig([]string{"--config", file}, none, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rules := cfg.labelRules()
	if len(rules) != 1 || rules[0].Label.Code != "HIV" || len(rules[0].Codes) != 2 || rules[0].Codes[1] != (consent.Coding{Code: "B20"}) {
		t.Fatalf("label rules: %+v", rules)
	}
	os.WriteFile(file, []byte("consent:\n  labels:\n    - label: HIV\n"), 0o600)
	if _, err := loadServeConfig([]string{"--config", file}, none, io.Discard); err == nil {
		t.Fatal("a label without codes was accepted")
	}
}

func TestPeersConfig(t *testing.T) {
	none := func(string) string { return "" }
	dir := t.TempDir()
	load := func(yaml string) (serveConfig, error) {
		file := filepath.Join(dir, "peers.yaml")
		os.WriteFile(file, []byte(yaml), 0o600)
		return loadServeConfig([]string{"--config", file, "--data", dir}, none, io.Discard)
	}
	peer := func(name, origin string) string {
		return fmt.Sprintf("  - name: %s\n    url: http://%s.test\n    origin: %s\n    log_key: %s+00000000+AAAA\n    witness_key: %s+00000000+AAAA\n", name, name, origin, origin, name)
	}
	cfg, err := load("ledger_origin: a.test/ehrledger/main\npeers:\n" + peer("b", "b.test/ehrledger/main") + peer("c", "c.test/ehrledger/main"))
	if err != nil || len(cfg.Peers) != 2 || cfg.witnessName() != "a.test/ehrledger/witness" || cfg.Witness.Interval != time.Second {
		t.Fatalf("two peers: %+v %v", cfg, err)
	}
	for name, yaml := range map[string]string{
		"a peer without keys":       "peers:\n  - name: b\n    url: http://b.test\n    origin: b.test/ehrledger/main\n",
		"one name twice":            "peers:\n" + peer("b", "b.test/x") + peer("b", "c.test/x"),
		"this provider's origin":    "ledger_origin: a.test/x\npeers:\n" + peer("b", "a.test/x"),
		"more required than peers":  "witness:\n  required: 2\npeers:\n" + peer("b", "b.test/x"),
		"a negative interval":       "witness:\n  interval: -1s\n",
		"required without any peer": "witness:\n  required: 1\n",
	} {
		if _, err := load(yaml); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Keys that do not parse stop the server at start, naming the peer.
	cfg, _ = load("ledger_origin: a.test/ehrledger/main\npeers:\n" + peer("b", "b.test/ehrledger/main"))
	if _, err := peersConfig(cfg); err == nil || !strings.Contains(err.Error(), "peer b") {
		t.Fatalf("a peer with a malformed key: %v", err)
	}
}

func TestAccountingExemptConfig(t *testing.T) {
	none := func(string) string { return "" }
	for _, c := range []struct {
		args []string
		want []string
	}{
		{nil, nil}, // the server's default
		{[]string{"--accounting-exempt", "none"}, []string{}},
		{[]string{"--accounting-exempt", "HPAYMT,HOPERAT"}, []string{"HPAYMT", "HOPERAT"}},
	} {
		cfg, err := loadServeConfig(c.args, none, io.Discard)
		if got := cfg.accountingExempt(); err != nil || (got == nil) != (c.want == nil) || strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%v: %v %v, want %v", c.args, got, err, c.want)
		}
	}
}
