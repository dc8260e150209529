package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
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
		{"stray argument", []string{"extra"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := loadServeConfig(tc.args, func(string) string { return "" }, io.Discard); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
