package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const testOrigin = "test.example/ehrledger/main"

// testKey is a fresh note key named after the test log's origin.
func testKey(t *testing.T) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return signer, vkey
}

// testRecords is n distinct, ledger-like records of varying length.
func testRecords(n int) [][]byte {
	records := make([][]byte, n)
	for i := range records {
		records[i] = fmt.Appendf(nil, `{"v":1,"type":"disclosure","time":"2025-01-01T00:00:%02d.000000Z","patient":"p%d","resources":[{"ref":"Observation/%d/_history/1"}]}`, i%60, i*7919, i)
	}
	return records
}

// fakeLog is an in-memory ledger served as docs/ledger.md describes. Its
// hashes are computed once, when it is built: changing records afterwards
// makes it serve records that do not match its tree.
type fakeLog struct {
	records     [][]byte    // served in the entry bundles
	hashes      []tlog.Hash // tlog's stored hashes of the original records
	size        int64
	signer      note.Signer
	vkey        string
	note        []byte // the served checkpoint
	tamperProof bool   // flip a bit of every inclusion proof
	tamperTile  string // flip a bit of the tile at this path
}

func newFakeLog(t *testing.T, signer note.Signer, vkey string, records [][]byte) *fakeLog {
	t.Helper()
	l := &fakeLog{records: records, size: int64(len(records)), signer: signer, vkey: vkey}
	for i, r := range records {
		hs, err := tlog.StoredHashes(int64(i), r, l.reader())
		if err != nil {
			t.Fatal(err)
		}
		l.hashes = append(l.hashes, hs...)
	}
	l.note = l.sign(t, l.size)
	return l
}

func (l *fakeLog) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x >= int64(len(l.hashes)) {
				return nil, fmt.Errorf("no stored hash %d", x)
			}
			out[i] = l.hashes[x]
		}
		return out, nil
	})
}

// sign is a checkpoint note of the tree of the given size.
func (l *fakeLog) sign(t *testing.T, size int64) []byte {
	t.Helper()
	root, err := tlog.TreeHash(size, l.reader())
	if err != nil {
		t.Fatal(err)
	}
	body := log.Checkpoint{Origin: testOrigin, Size: uint64(size), Hash: root[:]}.Marshal()
	msg, err := note.Sign(&note.Note{Text: string(body)}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// serve starts an HTTP server for the log.
func (l *fakeLog) serve(t *testing.T) string {
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	return srv.URL
}

func (l *fakeLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/ledger/checkpoint":
		w.Write(l.note)
	case p == "/ledger/key":
		io.WriteString(w, l.vkey+"\n")
	case p == "/ledger/proof/inclusion":
		index, err1 := strconv.ParseInt(r.FormValue("index"), 10, 64)
		size, err2 := strconv.ParseInt(r.FormValue("size"), 10, 64)
		b, err := l.inclusionProof(index, size)
		if err1 != nil || err2 != nil || err != nil {
			http.Error(w, "bad proof request", http.StatusBadRequest)
			return
		}
		w.Write(b)
	case p == "/ledger/proof/consistency":
		from, err1 := strconv.ParseInt(r.FormValue("from"), 10, 64)
		to, err2 := strconv.ParseInt(r.FormValue("to"), 10, 64)
		if err1 != nil || err2 != nil || from < 1 || from > to || to > l.size {
			http.Error(w, "bad proof request", http.StatusBadRequest)
			return
		}
		proof, err := tlog.ProveTree(to, from, l.reader())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"from": from, "to": to, "proof": proof})
	case strings.HasPrefix(p, "/ledger/tile/"):
		l.serveTile(w, r, strings.TrimPrefix(p, "/ledger/"))
	default:
		http.NotFound(w, r)
	}
}

// inclusionProof is the JSON of /ledger/proof/inclusion.
func (l *fakeLog) inclusionProof(index, size int64) ([]byte, error) {
	if size < 1 || size > l.size || index < 0 || index >= size {
		return nil, errors.New("out of range")
	}
	proof, err := tlog.ProveRecord(size, index, l.reader())
	if err != nil {
		return nil, err
	}
	if l.tamperProof {
		proof[0][0] ^= 1
	}
	leaf := l.hashes[tlog.StoredHashIndex(0, index)]
	return json.Marshal(map[string]any{"index": index, "size": size, "leaf_hash": leaf, "proof": proof})
}

// serveTile serves a C2SP hash tile or entry bundle that exists in the
// tree: full, or partial when the tree ends inside it.
func (l *fakeLog) serveTile(w http.ResponseWriter, r *http.Request, path string) {
	rest := strings.TrimPrefix(path, "tile/")
	tlogPath := "tile/8/" + rest
	if bundle, ok := strings.CutPrefix(rest, "entries/"); ok {
		tlogPath = "tile/8/data/" + bundle
	}
	t, err := tlog.ParseTilePath(tlogPath)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	width := l.size // hashes at the tile's level
	if t.L >= 0 {
		width >>= 8 * t.L
	}
	start := t.N << 8
	if end := start + int64(t.W); end > width || (t.W < 256 && end != width) {
		http.NotFound(w, r)
		return
	}
	var data []byte
	if t.L == -1 {
		for _, rec := range l.records[start : start+int64(t.W)] {
			data = binary.BigEndian.AppendUint16(data, uint16(len(rec)))
			data = append(data, rec...)
		}
	} else if data, err = tlog.ReadTileData(t, l.reader()); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if path == l.tamperTile {
		data[len(data)-1] ^= 1
	}
	w.Write(data)
}

// verify runs "ehrledger verify args..." and returns its stdout and stderr.
func verify(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = runVerify(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// writeFile writes data to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantError fails unless err is non-nil and says each of wants.
func wantError(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("verified; want an error saying %q", wants)
	}
	t.Logf("error: %v", err)
	for _, want := range wants {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestVerifyInclusion(t *testing.T) {
	signer, vkey := testKey(t)
	l := newFakeLog(t, signer, vkey, testRecords(300))
	url := l.serve(t)
	keyFile := writeFile(t, t.TempDir(), "key", []byte(vkey+"\n"))
	for _, n := range []int64{0, 255, 256, 299} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			out, stderr, err := verify("--log", url, "--index", fmt.Sprint(n), "--key", vkey)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("%s\nrecord %d is in the log (size 300, root ", l.records[n], n)
			if !strings.HasPrefix(out, want) || !strings.HasSuffix(out, "checkpoint signed by "+testOrigin+"\n") {
				t.Errorf("stdout %q, want %q...", out, want)
			}
			if stderr != "" {
				t.Errorf("stderr %q with a given key", stderr)
			}
		})
	}
	t.Run("key file", func(t *testing.T) {
		if _, _, err := verify("--log", url, "--index", "3", "--key-file", keyFile, "--origin", testOrigin); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("key from the log", func(t *testing.T) {
		_, stderr, err := verify("--log", url, "--index", "3")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stderr, "warning") || !strings.Contains(stderr, "proves nothing") {
			t.Errorf("no warning about the log's own key: %q", stderr)
		}
	})
}

func TestVerifyInclusionFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, l *fakeLog)
		args   []string
		want   string
	}{
		{
			name:   "record changed in its bundle",
			tamper: func(t *testing.T, l *fakeLog) { l.records[7] = []byte(`{"v":1,"type":"write"}`) },
			args:   []string{"--index", "7"},
			want:   "record 7's inclusion proof does not lead to the checkpoint's root",
		},
		{
			name: "checkpoint signed by another key",
			tamper: func(t *testing.T, l *fakeLog) {
				l.signer, _ = testKey(t)
				l.note = l.sign(t, l.size)
			},
			args: []string{"--index", "7"},
			want: "bad signature",
		},
		{
			name:   "tampered proof",
			tamper: func(t *testing.T, l *fakeLog) { l.tamperProof = true },
			args:   []string{"--index", "256"},
			want:   "record 256's inclusion proof does not lead to the checkpoint's root",
		},
		{
			name:   "tampered hash tile",
			tamper: func(t *testing.T, l *fakeLog) { l.tamperTile = "tile/0/001.p/44" },
			args:   []string{"--index", "299"},
			want:   "the hash tiles do not lead to the checkpoint's root",
		},
		{
			name: "wrong origin",
			args: []string{"--index", "7", "--origin", "other.example/log"},
			want: `wrong origin "test.example/ehrledger/main", want "other.example/log"`,
		},
		{
			name: "record beyond the checkpoint",
			args: []string{"--index", "300"},
			want: "record 300 is not in the log: its checkpoint has size 300",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signer, vkey := testKey(t)
			l := newFakeLog(t, signer, vkey, testRecords(300))
			if tc.tamper != nil {
				tc.tamper(t, l)
			}
			_, _, err := verify(append([]string{"--log", l.serve(t), "--key", vkey}, tc.args...)...)
			wantError(t, err, tc.want)
		})
	}
}

func TestVerifyConsistency(t *testing.T) {
	signer, vkey := testKey(t)
	l := newFakeLog(t, signer, vkey, testRecords(300))
	url := l.serve(t)
	dir := t.TempDir()
	old100 := writeFile(t, dir, "old100", l.sign(t, 100))
	old300 := writeFile(t, dir, "old300", l.note)

	t.Run("grown", func(t *testing.T) {
		out, _, err := verify("--log", url, "--consistency", old100, "--key", vkey)
		if err != nil {
			t.Fatal(err)
		}
		if want := "checkpoint of size 300 is consistent with the one of size 100\n"; out != want {
			t.Errorf("stdout %q, want %q", out, want)
		}
	})
	t.Run("same size", func(t *testing.T) {
		if _, _, err := verify("--log", url, "--consistency", old300, "--key", vkey); err != nil {
			t.Fatal(err)
		}
	})

	forked := testRecords(300)
	forked[50] = []byte(`{"v":1,"type":"erasure"}`)
	forkURL := newFakeLog(t, signer, vkey, forked).serve(t)
	t.Run("forked after the old checkpoint", func(t *testing.T) {
		_, _, err := verify("--log", forkURL, "--consistency", old100, "--key", vkey)
		wantError(t, err, "checkpoint of size 300 is not consistent with the one of size 100")
	})
	t.Run("forked at the same size", func(t *testing.T) {
		_, _, err := verify("--log", forkURL, "--consistency", old300, "--key", vkey)
		wantError(t, err, "the log forked: two checkpoints of size 300")
	})
	t.Run("shrank", func(t *testing.T) {
		shortURL := newFakeLog(t, signer, vkey, testRecords(200)).serve(t)
		_, _, err := verify("--log", shortURL, "--consistency", old300, "--key", vkey)
		wantError(t, err, "the log shrank")
	})
	t.Run("old checkpoint signed by another key", func(t *testing.T) {
		other, _ := testKey(t)
		l2 := newFakeLog(t, other, vkey, testRecords(100))
		file := writeFile(t, dir, "other", l2.note)
		_, _, err := verify("--log", url, "--consistency", file, "--key", vkey)
		wantError(t, err, "bad signature")
	})
}

func TestVerifyFull(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(l *fakeLog)
		want   []string // what the error says; none for success
	}{
		{name: "intact"},
		{
			name: "record altered",
			tamper: func(l *fakeLog) {
				l.records[100] = bytes.Replace(l.records[100], []byte("disclosure"), []byte("write"), 1)
			},
			want: []string{"the 300 records recompute to root", "tile 0/000 differs from the recomputed hashes: record 100's leaf hash"},
		},
		{
			name:   "hash tile altered",
			tamper: func(l *fakeLog) { l.tamperTile = "tile/0/001.p/44" },
			want:   []string{"tile 0/001.p/44 differs from the recomputed hashes: record 299's leaf hash"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signer, vkey := testKey(t)
			l := newFakeLog(t, signer, vkey, testRecords(300))
			if tc.tamper != nil {
				tc.tamper(l)
			}
			out, _, err := verify("--log", l.serve(t), "--full", "--key", vkey)
			if tc.want != nil {
				wantError(t, err, tc.want...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := "all 300 records recompute to the signed root\n"; out != want {
				t.Errorf("stdout %q, want %q", out, want)
			}
		})
	}
}

func TestVerifyOffline(t *testing.T) {
	signer, vkey := testKey(t)
	l := newFakeLog(t, signer, vkey, testRecords(300)) // never served
	dir := t.TempDir()
	const n = 256
	proof, err := l.inclusionProof(n, l.size)
	if err != nil {
		t.Fatal(err)
	}
	checkpoint := writeFile(t, dir, "checkpoint", l.note)
	proofFile := writeFile(t, dir, "proof.json", proof)
	record := writeFile(t, dir, "record.json", l.records[n])
	args := func(record string) []string {
		return []string{"--checkpoint", checkpoint, "--record", record, "--proof", proofFile, "--index", fmt.Sprint(n), "--key", vkey}
	}

	out, _, err := verify(args(record)...)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("record %d is in the log (size 300, root ", n); !strings.Contains(out, want) {
		t.Errorf("stdout %q, want %q", out, want)
	}

	flipped := bytes.Clone(l.records[n])
	flipped[10] ^= 1
	_, _, err = verify(args(writeFile(t, dir, "flipped.json", flipped))...)
	wantError(t, err, "record 256's inclusion proof does not lead to the checkpoint's root")
}

func TestVerifyUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--log", "http://x", "--index", "1", "--full"},
		{"--log", "x", "--index", "1"},
		{"--index", "1"},
		{"--log", "http://x", "--index", "-1"},
		{"--log", "http://x", "--full", "--key", "k", "--key-file", "f"},
		{"--checkpoint", "c", "--record", "r", "--proof", "p", "--index", "0"},
		{"--checkpoint", "c", "--record", "r", "--index", "0", "--key", "k"},
		{"--log", "http://x", "--full", "extra"},
		{"--log", "http://x", "--version", "v.json"},
		{"--log", "http://x", "--index", "1", "--opening", "o.json"},
		{"--opening", "o.json", "--key", "k"},
		{"--accounting", "a.json", "--opening", "o.json", "--key", "k"},
	} {
		if _, _, err := verify(args...); !errors.Is(err, errUsage) {
			t.Errorf("%q: got %v, want errUsage", args, err)
		}
	}
}
