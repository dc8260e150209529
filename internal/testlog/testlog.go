// Package testlog helps the tests of the peers' packages: keys of logs
// and witnesses, and a log kept in memory that signs checkpoints, proves
// them and can be forked at will.
package testlog

import (
	"crypto/rand"
	"testing"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// LogKey makes a log's checkpoint key named name.
func LogKey(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// WitnessKey makes a witness's cosignature/v1 key named name.
func WitnessKey(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	cvkey, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := fnote.NewVerifierForCosignatureV1(cvkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// Tree is an RFC 6962 tree of records kept in memory. It is not safe for
// concurrent use.
type Tree struct {
	Records [][]byte
	Hashes  []tlog.Hash // tlog's stored hashes
}

// Size is the number of records.
func (m *Tree) Size() int64 { return int64(len(m.Records)) }

// Reader reads the stored hashes.
func (m *Tree) Reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = m.Hashes[x]
		}
		return out, nil
	})
}

// Add appends records.
func (m *Tree) Add(records ...[]byte) {
	for _, r := range records {
		hs, err := tlog.StoredHashes(m.Size(), r, m.Reader())
		if err != nil {
			panic(err)
		}
		m.Records = append(m.Records, r)
		m.Hashes = append(m.Hashes, hs...)
	}
}

// Root is the root of the tree of the first size records.
func (m *Tree) Root(size int64) tlog.Hash {
	h, err := tlog.TreeHash(size, m.Reader())
	if err != nil {
		panic(err)
	}
	return h
}

// Checkpoint signs the whole tree's checkpoint for origin with signers.
func (m *Tree) Checkpoint(origin string, signers ...note.Signer) []byte {
	root := m.Root(m.Size())
	body := log.Checkpoint{Origin: origin, Size: uint64(m.Size()), Hash: root[:]}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, signers...)
	if err != nil {
		panic(err)
	}
	return signed
}

// Proof proves the whole tree consistent with its first from records
// (none from 0 or from the whole size).
func (m *Tree) Proof(from int64) tlog.TreeProof {
	if from == 0 || from == m.Size() {
		return nil
	}
	p, err := tlog.ProveTree(m.Size(), from, m.Reader())
	if err != nil {
		panic(err)
	}
	return p
}
