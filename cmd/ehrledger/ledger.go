package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ehrledger/ehrledger/audit"
	"golang.org/x/mod/sumdb/note"
)

// ledgerKeyFile holds the checkpoint signing key as golang.org/x/mod/sumdb/note
// encodes it, and its verifier key.
type ledgerKeyFile struct {
	Signer   string `json:"signer"`
	Verifier string `json:"verifier"`
}

// loadLedgerKey reads the checkpoint key at path, creating it (mode 0600)
// for origin on first start. A key made for another origin is refused.
func loadLedgerKey(path, origin string) (note.Signer, note.Verifier, string, error) {
	b, err := readKeyFile(path, func() ([]byte, error) {
		skey, vkey, err := note.GenerateKey(rand.Reader, origin)
		if err != nil {
			return nil, err
		}
		return json.Marshal(ledgerKeyFile{Signer: skey, Verifier: vkey})
	})
	if err != nil {
		return nil, nil, "", fmt.Errorf("ledger key: %w", err)
	}
	var k ledgerKeyFile
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, nil, "", fmt.Errorf("ledger key %s: not a key file", path)
	}
	signer, err := note.NewSigner(k.Signer)
	if err != nil {
		return nil, nil, "", fmt.Errorf("ledger key %s: %w", path, err)
	}
	verifier, err := note.NewVerifier(k.Verifier)
	if err != nil {
		return nil, nil, "", fmt.Errorf("ledger key %s: %w", path, err)
	}
	if signer.Name() != origin {
		return nil, nil, "", fmt.Errorf("ledger key %s signs for origin %q, but the configured origin is %q", path, signer.Name(), origin)
	}
	return signer, verifier, k.Verifier, nil
}

// ledgerConfig is the ledger's configuration, with its checkpoint key
// (created on first start), and the key's verifier.
func ledgerConfig(cfg serveConfig, log *slog.Logger) (audit.Config, string, error) {
	signer, verifier, vkey, err := loadLedgerKey(cfg.ledgerKeyFile(), cfg.LedgerOrigin)
	if err != nil {
		return audit.Config{}, "", err
	}
	// The sequencer's name is this host and data directory: a server
	// restarted after a crash takes its lease back at once.
	host, _ := os.Hostname()
	data, _ := filepath.Abs(cfg.Data)
	return audit.Config{
		Origin: cfg.LedgerOrigin, Signer: signer, Verifier: verifier,
		CheckpointEvery: cfg.LedgerCheckpointEvery, MaxPending: cfg.LedgerMaxPending, Holder: host + ":" + data, Logger: log,
	}, vkey, nil
}
