package disclosure

import (
	"context"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/store"
)

// Response is what one answer will disclose, assembled through the gate.
// Each version is decided (scopes, the patient's consent) as it is
// added; Record appends the ledger records of the answer and only then
// hands back the bodies. A Response is used by one goroutine.
type Response struct {
	g           *Gate
	interaction string
	// shape gives the bytes served of a match or include (_summary,
	// _elements); nil serves them as stored.
	shape   func(body []byte) []byte
	entries []pending
	v       verdicts
	// matches are the keys of the search matches, which includes follow;
	// seen every key the answer holds.
	matches []store.Key
	seen    map[store.Key]bool
}

// pending is a version the answer will carry, its body as served.
type pending struct {
	v    store.Version
	mode string
	// disclosed says it is recorded: patient data the caller did not send
	// itself.
	disclosed bool
}

// Respond starts the answer of one request for interaction (as the
// ledger names it: read, search, history, everything, patch, ...).
// shape, when not nil, gives the bytes served of each search match and
// include.
func (g *Gate) Respond(interaction string, shape func(body []byte) []byte) *Response {
	return &Response{g: g, interaction: interaction, shape: shape, seen: map[store.Key]bool{}}
}

// Meta is what a read says of a version before it is recorded: enough to
// answer a conditional read with 304.
type Meta struct {
	VersionID int64
	Updated   time.Time
}

// add appends version v (its body as served) in mode.
func (r *Response) add(v *store.Version, mode string, disclosed bool) int {
	p := pending{v: *v, mode: mode, disclosed: disclosed}
	if r.shape != nil && mode != "" && !v.Deleted {
		p.v.Body = r.shape(v.Body)
	}
	r.entries = append(r.entries, p)
	r.seen[store.Key{Type: v.Type, ID: v.ID}] = true
	return len(r.entries) - 1
}

// refuse records the denials decided so far and refuses the answer: the
// patient's consent does not permit it.
func (r *Response) refuse(ctx context.Context) error {
	if _, err := r.g.recordOrRefuse(ctx, r.interaction, r.v.denied); err != nil {
		return err
	}
	r.v.denied = nil
	return forbidden("the patient's consent does not permit this disclosure")
}

// one decides the disclosure of version v alone, as a read: a denial is
// recorded and refused with ErrForbidden, with nothing of the data.
func (r *Response) one(ctx context.Context, v *store.Version) error {
	r.v.focus = patientOf(v)
	permitted, err := r.g.decide(ctx, []store.Version{*v}, &r.v)
	if err != nil {
		return err
	}
	if len(permitted) == 0 {
		return r.refuse(ctx)
	}
	r.add(v, "", true)
	return nil
}

// Read adds the current version of typ/id, as GET /typ/id: the caller's
// read scope must reach it and its patient's consent permit it (else
// ErrForbidden, and the denial is recorded); store.ErrNotFound,
// store.ErrDeleted and store.ErrErased when there is none.
func (r *Response) Read(ctx context.Context, typ, id string) (Meta, error) {
	if err := Reach(ctx, typ, auth.Read); err != nil {
		return Meta{}, err
	}
	v, err := r.g.store.Read(ctx, typ, id)
	if err != nil {
		return Meta{}, err
	}
	if err := r.g.checkVisible(ctx, auth.Read, v); err != nil {
		return Meta{}, err
	}
	if err := r.one(ctx, v); err != nil {
		return Meta{}, err
	}
	return Meta{VersionID: v.VersionID, Updated: v.Updated}, nil
}

// VRead adds version vid of typ/id, as GET /typ/id/_history/vid, decided
// as Read decides.
func (r *Response) VRead(ctx context.Context, typ, id string, vid int64) error {
	if err := Reach(ctx, typ, auth.VRead); err != nil {
		return err
	}
	v, err := r.g.store.VRead(ctx, typ, id, vid)
	if err != nil {
		return err
	}
	if v.Erased {
		return &store.ErasedError{Type: typ, ID: id, Owner: v.Owner}
	}
	if err := r.g.checkVisible(ctx, auth.VRead, v); err != nil {
		return err
	}
	if v.Deleted {
		return &store.DeletedError{Type: typ, ID: id, VersionID: v.VersionID, Updated: v.Updated}
	}
	return r.one(ctx, v)
}

// Disclose adds a version a write answers with that the caller did not
// send (the resource a conditional create matched, a patched resource):
// it is shown only when the caller's read scope reaches it and its
// patient's consent permits it. It returns its place among the entries
// Record returns, or -1 when it is not shown (the answer is then as with
// return=minimal). A version without a body is read as stored.
func (r *Response) Disclose(ctx context.Context, v *store.Version) (int, error) {
	if v == nil || v.Deleted {
		return -1, nil
	}
	if len(v.Body) == 0 {
		read, err := r.g.store.VRead(ctx, v.Type, v.ID, v.VersionID)
		if err != nil {
			return -1, err
		}
		v = read
	}
	seen, err := r.g.visible(ctx, auth.Read, []store.Version{*v})
	if err != nil || len(seen) == 0 {
		return -1, err
	}
	permitted, err := r.g.decide(ctx, seen, &r.v)
	if err != nil || len(permitted) == 0 {
		return -1, err
	}
	return r.add(v, "", true), nil
}

// Echo adds a version a write answers with whose content the caller sent
// itself (a create, an update): it is not a disclosure, but it is shown
// only when the caller's read scope reaches it. It returns its place
// among the entries Record returns, or -1.
func (r *Response) Echo(ctx context.Context, v *store.Version) (int, error) {
	if v == nil || v.Deleted {
		return -1, nil
	}
	seen, err := r.g.visible(ctx, auth.Read, []store.Version{*v})
	if err != nil || len(seen) == 0 {
		return -1, err
	}
	return r.add(v, "", false), nil
}

// Shown is an answer's content once its disclosures are recorded.
type Shown struct {
	entries []Entry
	indexes []int64
}

// Entry is one version an answer carries: Version.Body is the bytes to
// send (none for a deleted version in a history), Mode its search mode
// ("match", "include", or "" outside searches).
type Entry struct {
	Version store.Version
	Mode    string
}

// Entries are the versions the answer carries, in the order added.
func (s *Shown) Entries() []Entry { return s.entries }

// LedgerIndex is the Ledger-Index header of the answer: the indexes of
// its disclosure records, comma-separated, "" when it disclosed no
// patient's data.
func (s *Shown) LedgerIndex() string {
	parts := make([]string, len(s.indexes))
	for i, n := range s.indexes {
		parts[i] = formatIndex(n)
	}
	return strings.Join(parts, ",")
}

// Record appends the ledger records of what the answer discloses (one
// disclosure record per patient) and withholds (one denial record per
// patient), waits until they are durable, and returns the answer's
// content. When the ledger cannot record them it fails with
// ErrUnrecorded and nothing may be sent.
func (r *Response) Record(ctx context.Context) (*Shown, error) {
	var items []item
	for i := range r.entries {
		if p := &r.entries[i]; p.disclosed && !p.v.Deleted {
			items = append(items, r.v.annotate(itemOf(&p.v, p.v.Body), &p.v))
		}
	}
	idx, err := r.g.recordOrRefuse(ctx, r.interaction, append(items, r.v.denied...))
	if err != nil {
		return nil, err
	}
	out := &Shown{indexes: idx, entries: make([]Entry, len(r.entries))}
	for i, p := range r.entries {
		out.entries[i] = Entry{Version: p.v, Mode: p.mode}
	}
	r.entries, r.v.denied = nil, nil
	return out, nil
}
