package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/audit/mirror"
	"github.com/ehrledger/ehrledger/audit/witness"
	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// witnessName is the name of this provider's witness key: the configured
// one, or the ledger origin's domain followed by /ehrledger/witness.
func (c *serveConfig) witnessName() string {
	if c.Witness.Name != "" {
		return c.Witness.Name
	}
	domain, _, _ := strings.Cut(c.LedgerOrigin, "/")
	return domain + "/ehrledger/witness"
}

func (c *serveConfig) witnessKeyFile() string {
	if c.Witness.KeyFile != "" {
		return c.Witness.KeyFile
	}
	return filepath.Join(c.Data, "witness-key.json")
}

// loadWitnessKey reads the witness's cosigning key at path, creating it
// for name on first start, and returns the signer and its cosignature/v1
// verifier key.
func loadWitnessKey(path, name string) (note.Signer, string, error) {
	b, err := readKeyFile(path, func() ([]byte, error) {
		skey, vkey, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			return nil, err
		}
		return json.Marshal(ledgerKeyFile{Signer: skey, Verifier: vkey})
	})
	if err != nil {
		return nil, "", fmt.Errorf("witness key: %w", err)
	}
	var k ledgerKeyFile
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, "", fmt.Errorf("witness key %s: not a key file", path)
	}
	signer, err := fnote.NewSignerForCosignatureV1(k.Signer)
	if err != nil {
		return nil, "", fmt.Errorf("witness key %s: %w", path, err)
	}
	if signer.Name() != name {
		return nil, "", fmt.Errorf("witness key %s is named %q, but the configured witness name is %q", path, signer.Name(), name)
	}
	vkey, err := fnote.VKeyToCosignatureV1(k.Verifier)
	if err != nil {
		return nil, "", fmt.Errorf("witness key %s: %w", path, err)
	}
	return signer, vkey, nil
}

// peers is this provider among its peers: the witness of their logs, the
// publisher of its own log's checkpoints to them and the mirror of their
// logs (both nil without peers; the caller runs them), and the witness's
// verifier key.
type peers struct {
	witness    *witness.Witness
	publisher  *witness.Publisher
	mirror     *mirror.Mirror
	witnessKey string
}

func openPeers(cfg serveConfig, st *store.Store, ledger *audit.Log, metrics *server.Metrics, log *slog.Logger) (*peers, error) {
	signer, vkey, err := loadWitnessKey(cfg.witnessKeyFile(), cfg.witnessName())
	if err != nil {
		return nil, err
	}
	own, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		return nil, err
	}
	cosigners := []note.Verifier{own}
	var logs []witness.Log
	var mirrored []mirror.Peer
	var witnesses []witness.Peer
	for _, p := range cfg.Peers {
		lv, err := note.NewVerifier(p.LogKey)
		if err != nil || lv.Name() != p.Origin {
			return nil, fmt.Errorf("peer %s: log_key must be the note verifier key of origin %q (its /ledger/key)", p.Name, p.Origin)
		}
		wv, err := fnote.NewVerifierForCosignatureV1(p.WitnessKey)
		if err != nil {
			return nil, fmt.Errorf("peer %s: witness_key must be a cosignature/v1 verifier key (its /witness/key): %v", p.Name, err)
		}
		logs = append(logs, witness.Log{Origin: p.Origin, Verifier: lv, URL: p.URL})
		mirrored = append(mirrored, mirror.Peer{Origin: p.Origin, Verifier: lv, URL: p.URL})
		witnesses = append(witnesses, witness.Peer{Name: wv.Name(), URL: p.URL, Verifier: wv})
		cosigners = append(cosigners, wv)
	}
	out := &peers{witness: witness.New(st, signer, logs, log), witnessKey: vkey}
	out.witness.OnEvidence = metrics.Evidence
	if len(witnesses) == 0 {
		return out, nil
	}
	required := len(witnesses)
	if cfg.Witness.Required != nil {
		required = *cfg.Witness.Required
	}
	if out.publisher, err = witness.NewPublisher(st, ledger, witnesses, required, log); err != nil {
		return nil, err
	}
	out.publisher.OnPublished = metrics.Published
	out.mirror = mirror.New(st, mirrored, cosigners, log)
	out.mirror.OnEvidence = metrics.Evidence
	return out, nil
}
