package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const verifyUsage = `Usage:
  ehrledger verify --log URL --index N [--key VKEY | --key-file FILE] [--origin ORIGIN]
      Check that record N is in the log: the checkpoint's signature, the
      record's inclusion proof and the hash tiles, all against the signed root.
      URL may be a provider's mirror of another's log
      (https://host/mirror/<origin>): the proof then comes from its tiles.
  ehrledger verify --log URL --consistency FILE [key flags]
      Check that the log's newest checkpoint extends the signed checkpoint
      saved earlier in FILE.
  ehrledger verify --log URL --full [key flags]
      Download every record, recompute the signed root and compare the log's
      hash tiles with the recomputed hashes.
  ehrledger verify --log URL --opening FILE [--version FILE] [key flags]
      Check that the record the opening FILE names (the answer of
      /ledger/opening/N or /ledger/written/TYPE/ID/VID) is in the log, as
      --index does, and that the opening is the one its leaf commits to; say
      whom and what it is about. With --version (a stored version's JSON, as
      a read of TYPE/ID/_history/VID serves it), also check that the record
      names exactly that version with the SHA-256 of those bytes: the proof
      that the stored version is the one its write record committed to.
  ehrledger verify --accounting FILE [key flags]
      Check offline an accounting of disclosures (GET /Patient/ID/$disclosures):
      its checkpoint, each disclosure's inclusion proof, and each AuditEvent's
      fields against the ledger record it carries; every entry that fails is
      named.
  ehrledger verify --checkpoint FILE --record FILE --proof FILE --index N [key flags]
      Check offline that the record is record N of the checkpoint's tree, with
      an inclusion proof saved from /ledger/proof/inclusion.

Without --key or --key-file, the key is fetched from the log itself, which
proves nothing about who runs it. The origin defaults to the key's name.

With --witness (repeated, each a witness's cosignature/v1 verifier key), the
checkpoint must also carry valid cosignatures of --witnesses of them (default:
all); online, the log's cosigned checkpoint (/ledger/checkpoint/cosigned) is
checked instead of its newest one.

Flags:
`

const (
	tileHeight  = 8                // C2SP tiles: 256 hashes or records each
	bundleWidth = 1 << tileHeight  // records per full entry bundle
	httpTimeout = 30 * time.Second // per request
	maxBody     = 64 << 20         // a full bundle of maximal records is ~16 MiB
)

// verifyFlags is the command line of "ehrledger verify".
type verifyFlags struct {
	log, key, keyFile, origin string
	consistency               string
	checkpoint, record, proof string
	accounting                string
	opening, version          string
	index                     int64
	full                      bool
	witnessKeys               stringList
	witnesses                 int
	given                     map[string]bool // flags set on the command line
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// runVerify is "ehrledger verify": it checks the ledger's signed
// checkpoints, proofs and tiles with tlog and note, not with the server's
// code.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseVerifyFlags(args, stderr)
	if err != nil {
		return err
	}
	cosigners, err := f.cosigners()
	if err != nil {
		return err
	}
	var c *ledgerClient
	if f.log != "" {
		c = newLedgerClient(f.log)
		c.cosigners = cosigners
	}
	v, err := f.verifier(ctx, c, stderr)
	if err != nil {
		return err
	}
	origin := f.origin
	if origin == "" {
		origin = v.Name()
	}
	switch {
	case f.accounting != "":
		return verifyAccounting(f.accounting, v, cosigners, origin, stdout)
	case c == nil:
		return verifyOffline(f, v, cosigners, origin, stdout)
	case f.given["index"]:
		return verifyInclusion(ctx, c, v, origin, f.index, stdout)
	case f.given["opening"]:
		return verifyOpening(ctx, c, v, origin, f.opening, f.version, stdout)
	case f.given["consistency"]:
		return verifyConsistency(ctx, c, v, origin, f.consistency, stdout)
	default:
		return verifyFull(ctx, c, v, origin, stdout)
	}
}

// parseVerifyFlags parses and checks the command line; errUsage means it
// has already said what is wrong.
func parseVerifyFlags(args []string, stderr io.Writer) (*verifyFlags, error) {
	f := &verifyFlags{given: map[string]bool{}}
	fs := flag.NewFlagSet("ehrledger verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, verifyUsage); fs.PrintDefaults() }
	fs.StringVar(&f.log, "log", "", "base URL of the ledger's server (https://host)")
	fs.Int64Var(&f.index, "index", 0, "index of the record to check")
	fs.StringVar(&f.key, "key", "", "checkpoint verifier key (name+hash+base64 key)")
	fs.StringVar(&f.keyFile, "key-file", "", "file holding the checkpoint verifier key")
	fs.StringVar(&f.origin, "origin", "", "expected checkpoint origin (default: the key's name)")
	fs.StringVar(&f.consistency, "consistency", "", "file holding an earlier signed checkpoint")
	fs.BoolVar(&f.full, "full", false, "recompute the whole tree from every record")
	fs.StringVar(&f.checkpoint, "checkpoint", "", "offline: file holding the signed checkpoint")
	fs.StringVar(&f.record, "record", "", "offline: file holding the record's bytes")
	fs.StringVar(&f.proof, "proof", "", "offline: file holding the inclusion proof JSON")
	fs.StringVar(&f.opening, "opening", "", "file holding a record's opening (/ledger/opening/N, /ledger/written/...)")
	fs.StringVar(&f.version, "version", "", "with --opening: file holding a stored version's JSON")
	fs.StringVar(&f.accounting, "accounting", "", "offline: file holding an accounting of disclosures (a Bundle)")
	fs.Var(&f.witnessKeys, "witness", "a witness's cosignature/v1 verifier key (repeat for several)")
	fs.IntVar(&f.witnesses, "witnesses", -1, "how many of the --witness keys must have cosigned (default: all)")
	if err := fs.Parse(args); err != nil {
		return nil, errUsage
	}
	fs.Visit(func(fl *flag.Flag) { f.given[fl.Name] = true })
	if msg := f.problem(fs); msg != "" {
		fmt.Fprintf(stderr, "%s: %s\n", fs.Name(), msg)
		return nil, errUsage
	}
	return f, nil
}

// problem says what is wrong with the command line, or "".
func (f *verifyFlags) problem(fs *flag.FlagSet) string {
	g := f.given
	offline := g["checkpoint"] || g["record"] || g["proof"]
	switch {
	case fs.NArg() > 0:
		return fmt.Sprintf("unexpected argument %q", fs.Arg(0))
	case g["key"] && g["key-file"]:
		return "give --key or --key-file, not both"
	case g["index"] && f.index < 0:
		return "--index must not be negative"
	case g["witnesses"] && (f.witnesses < 1 || f.witnesses > len(f.witnessKeys)):
		return fmt.Sprintf("--witnesses %d needs at least as many --witness keys (%d given)", f.witnesses, len(f.witnessKeys))
	case g["version"] && !g["opening"]:
		return "--version is checked against a record's opening: give --opening too"
	case g["accounting"] && (offline || g["log"] || g["index"] || g["consistency"] || g["full"] || g["opening"]):
		return "--accounting checks a file alone: no --log, --index, --consistency, --full, --opening, --checkpoint, --record or --proof"
	case g["accounting"] && !g["key"] && !g["key-file"]:
		return "--accounting needs --key or --key-file (the log's key, obtained out of band)"
	case g["accounting"]:
		return ""
	case strings.Contains(f.log, "/mirror/") && !g["key"] && !g["key-file"]:
		return "a mirror serves no key: give the mirrored log's key with --key or --key-file"
	case offline && (g["log"] || g["consistency"] || g["full"] || g["opening"]):
		return "--checkpoint, --record and --proof check offline: no --log, --consistency, --full or --opening"
	case offline && !(g["checkpoint"] && g["record"] && g["proof"] && g["index"]):
		return "offline checks need --checkpoint, --record, --proof and --index"
	case offline && !g["key"] && !g["key-file"]:
		return "offline checks need --key or --key-file"
	case offline:
		return ""
	case f.log == "":
		return "--log is required (or --checkpoint, --record and --proof offline)"
	case count(g["index"], g["consistency"], g["full"], g["opening"]) != 1:
		return "give exactly one of --index, --consistency, --full and --opening"
	}
	if u, err := url.Parse(f.log); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Sprintf("--log %q is not an http(s) URL", f.log)
	}
	return ""
}

// count is the number of true arguments.
func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// verifier is the checkpoint verifier from --key or --key-file or, failing
// both, from the log itself, with a warning.
func (f *verifyFlags) verifier(ctx context.Context, c *ledgerClient, stderr io.Writer) (note.Verifier, error) {
	vkey, from := f.key, "--key"
	switch {
	case f.keyFile != "":
		b, err := os.ReadFile(f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("reading the verifier key: %w", err)
		}
		vkey, from = strings.TrimSpace(string(b)), f.keyFile
	case vkey == "":
		b, err := c.get(ctx, "key")
		if err != nil {
			return nil, fmt.Errorf("fetching the verifier key: %w", err)
		}
		vkey, from = strings.TrimSpace(string(b)), c.url("key")
		fmt.Fprintf(stderr, "warning: the verifier key %s was taken from the log itself (%s): it proves nothing about who runs the log; pass --key or --key-file with a key obtained elsewhere\n", vkey, from)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("verifier key from %s: %w", from, err)
	}
	return v, nil
}

// openCheckpoint checks a checkpoint note's signature and origin and
// returns the tree it signs; from says where the note came from.
func openCheckpoint(msg []byte, v note.Verifier, origin, from string) (tlog.Tree, error) {
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return tlog.Tree{}, fmt.Errorf("checkpoint %s: bad signature: not signed by the key %s+%08x (%v)", from, v.Name(), v.KeyHash(), err)
		}
		return tlog.Tree{}, fmt.Errorf("checkpoint %s is not a signed note: %w", from, err)
	}
	cp, _, _, err := log.ParseCheckpoint(msg, origin, v)
	if err != nil {
		if got, _, _ := strings.Cut(string(msg), "\n"); got != origin {
			return tlog.Tree{}, fmt.Errorf("checkpoint %s: wrong origin %q, want %q", from, got, origin)
		}
		return tlog.Tree{}, fmt.Errorf("checkpoint %s: %w", from, err)
	}
	if len(cp.Hash) != tlog.HashSize {
		return tlog.Tree{}, fmt.Errorf("checkpoint %s: root hash has %d bytes, want %d", from, len(cp.Hash), tlog.HashSize)
	}
	if cp.Size > math.MaxInt64 {
		return tlog.Tree{}, fmt.Errorf("checkpoint %s: size %d is too large", from, cp.Size)
	}
	return tlog.Tree{N: int64(cp.Size), Hash: tlog.Hash(cp.Hash)}, nil
}

// verifyInclusion is form 1: record n against the log's signed checkpoint,
// by its inclusion proof and by the hash tiles.
func verifyInclusion(ctx context.Context, c *ledgerClient, v note.Verifier, origin string, n int64, stdout io.Writer) error {
	record, tree, err := proveInclusion(ctx, c, v, origin, n)
	if err != nil {
		return err
	}
	printRecord(stdout, record)
	fmt.Fprintf(stdout, "record %d is in the log (size %d, root %s), checkpoint signed by %s\n", n, tree.N, tree.Hash, v.Name())
	return nil
}

// proveInclusion returns record n of the log and the signed tree it was
// checked against, by its inclusion proof and by the hash tiles.
func proveInclusion(ctx context.Context, c *ledgerClient, v note.Verifier, origin string, n int64) ([]byte, tlog.Tree, error) {
	tree, err := c.checkpoint(ctx, v, origin)
	if err != nil {
		return nil, tree, err
	}
	if n >= tree.N && c.cosigners != nil {
		return nil, tree, fmt.Errorf("record %d is not in the log's cosigned checkpoint (size %d): its witnesses have not cosigned it (yet)", n, tree.N)
	}
	if n >= tree.N {
		return nil, tree, fmt.Errorf("record %d is not in the log: its checkpoint has size %d", n, tree.N)
	}
	records, err := c.bundle(ctx, n/bundleWidth, tree.N)
	if err != nil {
		return nil, tree, err
	}
	record := records[n%bundleWidth]
	h := tlog.RecordHash(record)
	var p inclusionProof
	if c.mirror {
		// A mirror serves tiles, not proofs: the proof comes from them.
		proof, err := tlog.ProveRecord(tree.N, n, tlog.TileHashReader(tree, &tileReader{ctx: ctx, c: c}))
		if err != nil {
			return nil, tree, fmt.Errorf("proving record %d from the mirror's hash tiles: %w", n, err)
		}
		p = inclusionProof{Index: n, Size: tree.N, Proof: proof}
	} else if p, err = c.inclusionProof(ctx, n, tree.N); err != nil {
		return nil, tree, err
	}
	if err := checkInclusion(p, tree, n, h); err != nil {
		return nil, tree, err
	}
	if err := checkTileHashes(ctx, c, tree, n, h); err != nil {
		return nil, tree, err
	}
	return record, tree, nil
}

// checkTileHashes recomputes the root and record n's leaf hash h from the
// log's hash tiles; tlog.TileHashReader authenticates every tile it reads
// against the signed tree.
func checkTileHashes(ctx context.Context, c *ledgerClient, tree tlog.Tree, n int64, h tlog.Hash) error {
	tiles := tlog.TileHashReader(tree, &tileReader{ctx: ctx, c: c})
	root, err := tlog.TreeHash(tree.N, tiles)
	if err != nil {
		return fmt.Errorf("the hash tiles do not lead to the checkpoint's root: %w", err)
	}
	if root != tree.Hash {
		return fmt.Errorf("the hash tiles lead to root %s, the checkpoint signs %s", root, tree.Hash)
	}
	leaf, err := tiles.ReadHashes([]int64{tlog.StoredHashIndex(0, n)})
	if err != nil {
		return fmt.Errorf("reading record %d's leaf hash from the hash tiles: %w", n, err)
	}
	if leaf[0] != h {
		return fmt.Errorf("record %d hashes to %s, but the hash tiles hold %s", n, h, leaf[0])
	}
	return nil
}

// verifyConsistency is form 2: the log's newest checkpoint must extend the
// earlier one saved in file.
func verifyConsistency(ctx context.Context, c *ledgerClient, v note.Verifier, origin, file string, stdout io.Writer) error {
	msg, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading the earlier checkpoint: %w", err)
	}
	old, err := openCheckpoint(msg, v, origin, file)
	if err != nil {
		return err
	}
	cur, err := c.checkpoint(ctx, v, origin)
	if err != nil {
		return err
	}
	switch {
	case old.N > cur.N:
		return fmt.Errorf("the log shrank: its checkpoint has size %d, the one in %s has size %d", cur.N, file, old.N)
	case old.N == cur.N && old.Hash != cur.Hash:
		return fmt.Errorf("the log forked: two checkpoints of size %d with different roots, %s in %s and %s now", old.N, old.Hash, file, cur.Hash)
	case old.N > 0 && old.N < cur.N:
		p, err := c.consistencyProof(ctx, old.N, cur.N)
		if err != nil {
			return err
		}
		if err := tlog.CheckTree(p, cur.N, cur.Hash, old.N, old.Hash); err != nil {
			return fmt.Errorf("checkpoint of size %d is not consistent with the one of size %d: the consistency proof does not lead from root %s to root %s (%v)", cur.N, old.N, old.Hash, cur.Hash, err)
		}
	}
	fmt.Fprintf(stdout, "checkpoint of size %d is consistent with the one of size %d\n", cur.N, old.N)
	return nil
}

// verifyFull is form 3: every record, recomputed into the signed root and
// into the log's hash tiles.
func verifyFull(ctx context.Context, c *ledgerClient, v note.Verifier, origin string, stdout io.Writer) error {
	tree, err := c.checkpoint(ctx, v, origin)
	if err != nil {
		return err
	}
	hashes, err := recomputeHashes(ctx, c, tree.N)
	if err != nil {
		return err
	}
	root, err := tlog.TreeHash(tree.N, hashes)
	if err != nil {
		return fmt.Errorf("recomputing the root: %w", err)
	}
	tileErr := compareTiles(ctx, c, tree.N, hashes)
	if root != tree.Hash {
		err := fmt.Errorf("the %d records recompute to root %s, but the checkpoint signs %s", tree.N, root, tree.Hash)
		if tileErr != nil {
			err = fmt.Errorf("%w; %v", err, tileErr)
		}
		return err
	}
	if tileErr != nil {
		return tileErr
	}
	fmt.Fprintf(stdout, "all %d records recompute to the signed root\n", tree.N)
	return nil
}

// recomputeHashes downloads every record of a tree of the given size and
// returns all its stored hashes.
func recomputeHashes(ctx context.Context, c *ledgerClient, size int64) (*hashList, error) {
	hashes := &hashList{}
	for b := int64(0); b*bundleWidth < size; b++ {
		records, err := c.bundle(ctx, b, size)
		if err != nil {
			return nil, err
		}
		for i, r := range records {
			hs, err := tlog.StoredHashes(b*bundleWidth+int64(i), r, hashes)
			if err != nil {
				return nil, fmt.Errorf("hashing record %d: %w", b*bundleWidth+int64(i), err)
			}
			*hashes = append(*hashes, hs...)
		}
	}
	return hashes, nil
}

// compareTiles fetches every hash tile of a tree of the given size and
// compares it with the one made of the recomputed hashes; it reports the
// first that differs.
func compareTiles(ctx context.Context, c *ledgerClient, size int64, hashes tlog.HashReader) error {
	for _, t := range tlog.NewTiles(tileHeight, 0, size) {
		want, err := tlog.ReadTileData(t, hashes)
		if err != nil {
			return fmt.Errorf("tile %s: %w", tileName(t), err)
		}
		got, err := c.get(ctx, tilePath(t))
		if err != nil {
			return err
		}
		if bytes.Equal(got, want) {
			continue
		}
		if len(got) != len(want) {
			return fmt.Errorf("tile %s differs: %d bytes, want %d", tileName(t), len(got), len(want))
		}
		i := 0 // the first hash that differs
		for bytes.Equal(got[i*tlog.HashSize:(i+1)*tlog.HashSize], want[i*tlog.HashSize:(i+1)*tlog.HashSize]) {
			i++
		}
		first := (t.N<<tileHeight + int64(i)) << (tileHeight * t.L) // first record under the hash
		last := first + 1<<(tileHeight*t.L) - 1
		if t.L == 0 {
			return fmt.Errorf("tile %s differs from the recomputed hashes: record %d's leaf hash", tileName(t), first)
		}
		return fmt.Errorf("tile %s differs from the recomputed hashes: the hash of records %d to %d", tileName(t), first, last)
	}
	return nil
}

// verifyOffline is form 4: a saved checkpoint, record and inclusion proof,
// checked without the network.
func verifyOffline(f *verifyFlags, v note.Verifier, cs *cosigners, origin string, stdout io.Writer) error {
	msg, err := os.ReadFile(f.checkpoint)
	if err != nil {
		return fmt.Errorf("reading the checkpoint: %w", err)
	}
	tree, err := openCheckpoint(msg, v, origin, f.checkpoint)
	if err != nil {
		return err
	}
	if err := cs.check(msg, f.checkpoint); err != nil {
		return err
	}
	record, err := os.ReadFile(f.record)
	if err != nil {
		return fmt.Errorf("reading the record: %w", err)
	}
	b, err := os.ReadFile(f.proof)
	if err != nil {
		return fmt.Errorf("reading the inclusion proof: %w", err)
	}
	var p inclusionProof
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("inclusion proof %s: %w", f.proof, err)
	}
	if f.index >= tree.N {
		return fmt.Errorf("record %d is not in the checkpoint's tree of size %d", f.index, tree.N)
	}
	if err := checkInclusion(p, tree, f.index, tlog.RecordHash(record)); err != nil {
		return err
	}
	printRecord(stdout, record)
	fmt.Fprintf(stdout, "record %d is in the log (size %d, root %s), checkpoint signed by %s\n", f.index, tree.N, tree.Hash, v.Name())
	return nil
}

// inclusionProof is the JSON of /ledger/proof/inclusion.
type inclusionProof struct {
	Index    int64            `json:"index"`
	Size     int64            `json:"size"`
	LeafHash tlog.Hash        `json:"leaf_hash"`
	Proof    tlog.RecordProof `json:"proof"`
}

// consistencyProof is the JSON of /ledger/proof/consistency.
type consistencyProof struct {
	From  int64          `json:"from"`
	To    int64          `json:"to"`
	Proof tlog.TreeProof `json:"proof"`
}

// checkInclusion checks that p proves record n, of leaf hash h, in tree.
func checkInclusion(p inclusionProof, tree tlog.Tree, n int64, h tlog.Hash) error {
	if p.Index != n || p.Size != tree.N {
		return fmt.Errorf("the inclusion proof is for record %d in a tree of size %d, want record %d in size %d", p.Index, p.Size, n, tree.N)
	}
	if err := tlog.CheckRecord(p.Proof, tree.N, tree.Hash, n, h); err != nil {
		msg := fmt.Sprintf("record %d's inclusion proof does not lead to the checkpoint's root %s (%v)", n, tree.Hash, err)
		if p.LeafHash != (tlog.Hash{}) && p.LeafHash != h {
			msg += fmt.Sprintf(": the record hashes to %s but the proof is for leaf hash %s", h, p.LeafHash)
		}
		return errors.New(msg)
	}
	if p.LeafHash != (tlog.Hash{}) && p.LeafHash != h {
		return fmt.Errorf("the inclusion proof's leaf_hash %s is not record %d's hash %s", p.LeafHash, n, h)
	}
	return nil
}

// printRecord writes a record's JSON on its own line.
func printRecord(w io.Writer, record []byte) {
	w.Write(record)
	if !bytes.HasSuffix(record, []byte("\n")) {
		io.WriteString(w, "\n")
	}
}

// ledgerClient reads a ledger's HTTP API.
type ledgerClient struct {
	base      string // without the trailing slash
	http      *http.Client
	cosigners *cosigners // when set, the cosigned checkpoint is checked
	mirror    bool       // base is a provider's copy of a peer's log (/mirror/<origin>)
}

func newLedgerClient(base string) *ledgerClient {
	base = strings.TrimRight(base, "/")
	return &ledgerClient{base: base, http: &http.Client{Timeout: httpTimeout}, mirror: strings.Contains(base, "/mirror/")}
}

// url is the address of path under /ledger/, or under the mirror's path.
func (c *ledgerClient) url(path string) string {
	if c.mirror {
		return c.base + "/" + path
	}
	return c.base + "/ledger/" + path
}

// get fetches path under /ledger/; any status but 200 is an error.
func (c *ledgerClient) get(ctx context.Context, path string) ([]byte, error) {
	u := c.url(path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the body: %w", u, err)
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("GET %s: body larger than %d bytes", u, maxBody)
	}
	return body, nil
}

// getJSON fetches path under /ledger/ and decodes its JSON into v.
func (c *ledgerClient) getJSON(ctx context.Context, path string, v any) error {
	b, err := c.get(ctx, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %w", c.url(path), err)
	}
	return nil
}

// checkpoint fetches the newest checkpoint and checks its signature and
// origin.
func (c *ledgerClient) checkpoint(ctx context.Context, v note.Verifier, origin string) (tlog.Tree, error) {
	path := "checkpoint"
	if c.cosigners != nil {
		path = "checkpoint/cosigned"
	}
	msg, err := c.get(ctx, path)
	if err != nil {
		return tlog.Tree{}, err
	}
	tree, err := openCheckpoint(msg, v, origin, c.url(path))
	if err != nil {
		return tlog.Tree{}, err
	}
	return tree, c.cosigners.check(msg, c.url(path))
}

// cosigners are the witnesses whose cosignatures a checkpoint needs, and
// how many of them.
type cosigners struct {
	keys     []note.Verifier
	required int
}

// cosigners reads --witness and --witnesses; nil when no witness is given.
func (f *verifyFlags) cosigners() (*cosigners, error) {
	if len(f.witnessKeys) == 0 {
		return nil, nil
	}
	cs := &cosigners{required: len(f.witnessKeys)}
	if f.witnesses > 0 {
		cs.required = f.witnesses
	}
	for _, k := range f.witnessKeys {
		v, err := fnote.NewVerifierForCosignatureV1(k)
		if err != nil {
			return nil, fmt.Errorf("--witness %q: not a cosignature/v1 verifier key: %w", k, err)
		}
		cs.keys = append(cs.keys, v)
	}
	return cs, nil
}

// check counts the valid cosignatures of the checkpoint note msg; from
// says where it came from.
func (cs *cosigners) check(msg []byte, from string) error {
	if cs == nil {
		return nil
	}
	var valid, missing []string
	for _, k := range cs.keys {
		n, err := note.Open(msg, note.VerifierList(k))
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &invalid):
			return fmt.Errorf("checkpoint %s: the cosignature of witness %s is invalid", from, k.Name())
		case err == nil && len(n.Sigs) > 0:
			valid = append(valid, k.Name())
		default:
			missing = append(missing, k.Name())
		}
	}
	if len(valid) < cs.required {
		return fmt.Errorf("checkpoint %s carries %d of the %d witness cosignatures required; none from %s", from, len(valid), cs.required, strings.Join(missing, ", "))
	}
	return nil
}

// bundle fetches entry bundle b of a tree of the given size: partial when
// the tree ends inside it.
func (c *ledgerClient) bundle(ctx context.Context, b, size int64) ([][]byte, error) {
	t := tlog.Tile{H: tileHeight, L: -1, N: b, W: int(min(bundleWidth, size-b*bundleWidth))}
	data, err := c.get(ctx, tilePath(t))
	if err != nil {
		return nil, err
	}
	records, err := splitBundle(data, t.W)
	if err != nil {
		return nil, fmt.Errorf("entry bundle %s: %w", c.url(tilePath(t)), err)
	}
	return records, nil
}

// splitBundle splits an entry bundle into its want records, each a
// big-endian uint16 length and that many bytes.
func splitBundle(data []byte, want int) ([][]byte, error) {
	var records [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, fmt.Errorf("truncated after record %d", len(records)-1)
		}
		n := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+n {
			return nil, fmt.Errorf("record %d is truncated: %d bytes, want %d", len(records), len(data)-2, n)
		}
		records = append(records, data[2:2+n])
		data = data[2+n:]
	}
	if len(records) != want {
		return nil, fmt.Errorf("%d records, want %d", len(records), want)
	}
	return records, nil
}

// inclusionProof fetches the proof of record n in the tree of the given size.
func (c *ledgerClient) inclusionProof(ctx context.Context, n, size int64) (inclusionProof, error) {
	var p inclusionProof
	err := c.getJSON(ctx, fmt.Sprintf("proof/inclusion?index=%d&size=%d", n, size), &p)
	return p, err
}

// consistencyProof fetches the proof that the tree of size to extends the
// one of size from.
func (c *ledgerClient) consistencyProof(ctx context.Context, from, to int64) (tlog.TreeProof, error) {
	var p consistencyProof
	if err := c.getJSON(ctx, fmt.Sprintf("proof/consistency?from=%d&to=%d", from, to), &p); err != nil {
		return nil, err
	}
	if p.From != from || p.To != to {
		return nil, fmt.Errorf("the consistency proof is from size %d to %d, want %d to %d", p.From, p.To, from, to)
	}
	return p.Proof, nil
}

// tilePath is the C2SP path of a tlog tile: tlog's path without the
// height, and "entries" for the data level.
func tilePath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", t.H))
	if rest, ok := strings.CutPrefix(p, "data/"); ok {
		p = "entries/" + rest
	}
	return "tile/" + p
}

// tileName names a tile in messages: "0/x001/234.p/5", "entries/001".
func tileName(t tlog.Tile) string { return strings.TrimPrefix(tilePath(t), "tile/") }

// tileReader is a tlog.TileReader over the log's hash tiles.
type tileReader struct {
	ctx context.Context
	c   *ledgerClient
}

func (r *tileReader) Height() int { return tileHeight }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, err := r.c.get(r.ctx, tilePath(t))
		if err != nil {
			return nil, err
		}
		if len(b) != t.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %s has %d bytes, want %d", tileName(t), len(b), t.W*tlog.HashSize)
		}
		data[i] = b
	}
	return data, nil
}

func (r *tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// hashList is every stored hash of a tree, in tlog's stored-hash order.
type hashList []tlog.Hash

func (l *hashList) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(*l)) {
			return nil, fmt.Errorf("stored hash %d is not computed", x)
		}
		out[i] = (*l)[x]
	}
	return out, nil
}
