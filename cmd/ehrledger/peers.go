package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ehrledger/ehrledger/audit/witness"
	"github.com/ehrledger/ehrledger/node"
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

// peersConfig is this provider among its peers: its witness's key
// (created on first start) and the peers' logs and witnesses, checked.
func peersConfig(cfg serveConfig) (*node.Peers, error) {
	signer, vkey, err := loadWitnessKey(cfg.witnessKeyFile(), cfg.witnessName())
	if err != nil {
		return nil, err
	}
	own, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		return nil, err
	}
	p := &node.Peers{WitnessSigner: signer, WitnessKey: vkey, Cosigners: []note.Verifier{own}, Interval: cfg.Witness.Interval}
	for _, peer := range cfg.Peers {
		lv, err := note.NewVerifier(peer.LogKey)
		if err != nil || lv.Name() != peer.Origin {
			return nil, fmt.Errorf("peer %s: log_key must be the note verifier key of origin %q (its /ledger/key)", peer.Name, peer.Origin)
		}
		wv, err := fnote.NewVerifierForCosignatureV1(peer.WitnessKey)
		if err != nil {
			return nil, fmt.Errorf("peer %s: witness_key must be a cosignature/v1 verifier key (its /witness/key): %v", peer.Name, err)
		}
		p.Logs = append(p.Logs, witness.Log{Origin: peer.Origin, Verifier: lv, URL: peer.URL})
		p.Witnesses = append(p.Witnesses, witness.Peer{Name: wv.Name(), URL: peer.URL, Verifier: wv})
		p.Cosigners = append(p.Cosigners, wv)
	}
	p.Required = len(p.Witnesses)
	if cfg.Witness.Required != nil {
		p.Required = *cfg.Witness.Required
	}
	return p, nil
}
