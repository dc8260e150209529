package disclosure

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/consent"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
)

// Writes through the gate. A write is authorized before anything of its
// target's content is used: the current version it replaces must be in
// the caller's write scope (Current), a patch, which reads what it
// changes, needs read access to it as well (ForPatch), a conditional
// write's criteria find only what the caller could read (Match), and
// what is written must be in the caller's write scope too (Put).

// WriteTx is one database transaction of writes made for the caller in
// its context. It must not escape the function given to Gate.InTx.
type WriteTx struct {
	g  *Gate
	tx *store.Tx
	// denied are the consent denials of this attempt (a patch of data
	// the caller may not read), recorded when the transaction fails.
	denied []item
}

// InTx runs fn in one database transaction (store.InTx: fn may run more
// than once; keep no state from an earlier attempt). When its writes
// need data keys that do not exist yet (the first resource of a patient),
// it creates them outside the transaction, so that no KMS call happens
// while rows are locked, and runs fn again. When fn fails because a
// patient's consent refused what it had to read, the denial is recorded.
func (g *Gate) InTx(ctx context.Context, fn func(tx *WriteTx) error) error {
	for attempt := 1; ; attempt++ {
		var last *WriteTx
		err := g.store.InTx(ctx, func(tx *store.Tx) error {
			last = &WriteTx{g: g, tx: tx}
			return fn(last)
		})
		if last != nil && len(last.denied) > 0 && errors.Is(err, ErrForbidden) {
			if _, rerr := g.recordOrRefuse(ctx, "patch", last.denied); rerr != nil {
				return rerr
			}
		}
		var need *store.NeedKeysError
		if !errors.As(err, &need) || attempt == 3 {
			return err
		}
		if _, err := g.keys.Ensure(ctx, need.Owners); err != nil {
			return err
		}
	}
}

// writeInteractions are the SMART interactions of the write methods.
var writeInteractions = map[string]auth.Interaction{
	http.MethodPost:   auth.Create,
	http.MethodPut:    auth.Update,
	http.MethodPatch:  auth.Patch,
	http.MethodDelete: auth.Delete,
}

// WriteScope is the SMART interaction of a write method (POST, PUT,
// PATCH, DELETE), false for another method.
func WriteScope(method string) (auth.Interaction, bool) {
	in, ok := writeInteractions[method]
	return in, ok
}

// serverOwned reports whether typ/id is the server's alone: the AuditEvents
// it derives from the ledger (AuditEvent/ledger-N), which no client may
// create, change or delete.
func serverOwned(typ, id string) bool {
	return typ == "AuditEvent" && strings.HasPrefix(id, "ledger-")
}

// mayWrite checks that the caller's scopes allow interaction in on
// version v (the current one a write replaces, or the one it writes): the
// scope letter, and for a patient-confined scope that v is its patient's
// data, and every patient v refers to (idx, when given) is its patient.
// Query-constrained scopes grant no writes.
func mayWrite(ctx context.Context, in auth.Interaction, v *store.Version, idx *fhir.Index) error {
	if serverOwned(v.Type, v.ID) {
		return forbidden("%s/%s is the server's record of the ledger; clients cannot write it", v.Type, v.ID)
	}
	rc, err := reachOf(ctx, v.Type, in)
	if err != nil || rc.all {
		return err
	}
	for _, rule := range rc.rules {
		if rule.Query != nil {
			continue
		}
		if rule.Context != auth.Patient {
			return nil
		}
		others := idx != nil && slices.ContainsFunc(idx.Patients, func(p string) bool { return p != rc.patient })
		if ownedBy(v, rc.patient) && !others {
			return nil
		}
	}
	return forbidden("the access token's scopes do not allow this %s of %s: it reaches only its patient's data, or only resources matching a query", in, v.Type)
}

// Current returns the current version of typ/id (nil when there is none),
// without its body, once the caller's scopes are found to allow
// interaction in on it.
func (t *WriteTx) Current(ctx context.Context, typ, id string, in auth.Interaction) (*store.Version, error) {
	if serverOwned(typ, id) {
		return nil, forbidden("%s/%s is the server's record of the ledger; clients cannot write it", typ, id)
	}
	cur, err := t.tx.Current(ctx, typ, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := mayWrite(ctx, in, cur, nil); err != nil {
		return nil, err
	}
	cur.Body = nil
	return cur, nil
}

// ForPatch returns the current version of typ/id with its body, for a
// patch to apply to: a patch reads what it changes, so the caller must
// be allowed to patch it and to read it, and its patient's consent must
// permit the caller to see it (a denial is recorded, and nothing of the
// data is used). store.ErrNotFound, a deletion or an erasure when there
// is nothing to patch.
func (t *WriteTx) ForPatch(ctx context.Context, typ, id string) (*store.Version, error) {
	if err := Reach(ctx, typ, auth.Read); err != nil {
		return nil, forbidden("a patch reads what it changes: the access token's scopes must allow reading %s too", typ)
	}
	cur, err := t.tx.Current(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if err := mayWrite(ctx, auth.Patch, cur, nil); err != nil {
		return nil, err
	}
	switch {
	case cur.Erased:
		return nil, &store.ErasedError{Type: typ, ID: id, Owner: cur.Owner}
	case cur.Deleted:
		return nil, &store.DeletedError{Type: typ, ID: id, VersionID: cur.VersionID, Updated: cur.Updated}
	}
	if err := t.g.checkVisible(ctx, auth.Read, cur); err != nil {
		return nil, err
	}
	v := verdicts{}
	permitted, err := t.g.decide(ctx, []store.Version{*cur}, &v)
	if err != nil {
		return nil, err
	}
	if len(permitted) == 0 {
		t.denied = append(t.denied, v.denied...)
		return nil, forbidden("the patient's consent does not permit this disclosure, and a patch reads what it changes")
	}
	return cur, nil
}

// Match returns the ids of up to limit live resources meeting crit,
// inside the transaction, among those the caller could find by searching:
// a conditional interaction searches, so the caller's scopes must allow
// searching crit's type, and a resource the caller may not see (scopes,
// its patient's consent) does not match, exactly as if it did not exist.
func (t *WriteTx) Match(ctx context.Context, crit *fhir.SearchQuery, limit int) ([]string, error) {
	rc, err := reachOf(ctx, crit.Type, auth.SearchType)
	if err != nil {
		return nil, forbidden("a conditional interaction searches %s, which the access token's scopes do not allow", crit.Type)
	}
	q := *crit
	q.Where = slices.Clone(crit.Where)
	q.Count, q.Total, q.Sort, q.Page, q.Summary = limit, "none", nil, "", ""
	filter, err := narrow(&q, rc)
	if err != nil {
		return nil, err
	}
	if nothing, err := t.g.resolveCriteria(ctx, &q); err != nil || nothing {
		return nil, err
	}
	budget := maxGatedScan
	found, rest, err := t.g.scanKeys(ctx, t.tx, &q, limit, &budget, filter, auth.SearchType, &verdicts{})
	if err != nil {
		return nil, err
	}
	if rest != "" && len(found) < limit {
		return nil, invalid("the criteria match more than %d resources to examine; make them more selective", maxGatedScan)
	}
	ids := make([]string, len(found))
	for i, k := range found {
		ids[i] = k.ID
	}
	return ids, nil
}

// Change is one version a write stores: Version (with its body), its
// search Index (none for a deletion), and the current version it
// replaces (nil for none).
type Change struct {
	Version  *store.Version
	Index    *fhir.Index
	Replaces *store.Version
}

// Put authorizes changes (the caller's scopes must allow each on both
// the version it replaces and the one it writes; a Consent may be
// written only by its patient or an administrator), stores them and
// queues, in the same transaction, a write record (a consent record for a
// Consent) of each, so that a version and its record commit together.
func (t *WriteTx) Put(ctx context.Context, changes []Change) error {
	writes := make([]store.Write, len(changes))
	for i, ch := range changes {
		if err := authorize(ctx, ch); err != nil {
			return &ChangeError{Index: i, Err: err}
		}
		writes[i] = store.Write{Version: ch.Version, Index: ch.Index}
	}
	if err := t.tx.PutMany(ctx, writes); err != nil {
		return err
	}
	return t.g.writeRecords(ctx, t.tx, writes)
}

// ChangeError is the refusal of one of the changes given to Put.
type ChangeError struct {
	Index int // of the change refused
	Err   error
}

func (e *ChangeError) Error() string { return e.Err.Error() }
func (e *ChangeError) Unwrap() error { return e.Err }

// authorize checks that the caller may make ch.
func authorize(ctx context.Context, ch Change) error {
	in := writeInteractions[ch.Version.Method]
	if ch.Replaces != nil {
		if err := mayWrite(ctx, in, ch.Replaces, nil); err != nil {
			return err
		}
	}
	if err := mayWrite(ctx, in, ch.Version, ch.Index); err != nil {
		return err
	}
	return checkConsentWrite(ctx, ch)
}

// checkConsentWrite refuses a Consent write the consent engine could not
// read (ErrInvalid), and one made by anybody but the patient it is
// about, with a token of their own (their app, or an authorised
// representative's client registered for them), or an administrator
// (ErrForbidden). Both the version written and the one it replaces must
// be that patient's.
func checkConsentWrite(ctx context.Context, ch Change) error {
	if ch.Version.Type != "Consent" {
		return nil
	}
	var patients []string
	if r := ch.Replaces; r != nil && !r.Deleted {
		patients = append(patients, strings.TrimPrefix(r.Owner, "Patient/"))
	}
	if v := ch.Version; !v.Deleted && len(v.Body) > 0 {
		c, err := consent.Parse(v.Body)
		if err != nil {
			return &Error{Family: ErrUnprocessable, Msg: "the consent engine cannot read this Consent: " + err.Error()}
		}
		patients = append(patients, c.Patient)
	}
	c := CallerOf(ctx)
	if c.Admin() {
		return nil
	}
	if p := c.Patient(); p != "" && len(patients) > 0 && !slices.ContainsFunc(patients, func(q string) bool { return q != p }) {
		return nil
	}
	return forbidden("a Consent may be written only by the patient it is about, with their own token, or by an administrator")
}

// writeRecords queues, inside tx, a write record (a consent record for a
// Consent) for each version written, noting which version each records
// (decisions cite a Consent version's record by it, and the provider
// proves a stored version by it).
func (g *Gate) writeRecords(ctx context.Context, tx *store.Tx, writes []store.Write) error {
	now := audit.FormatTime(g.now())
	c := CallerOf(ctx)
	recs := make([]audit.Record, 0, len(writes))
	for _, wr := range writes {
		v := wr.Version
		rec := audit.Record{Type: audit.TypeWrite, Time: now, Interaction: WriteInteraction(v.Method),
			Recipient: c.Recipient(), Purpose: c.PurposeOfUse()}
		if v.Type == "Consent" {
			// A Consent version is anchored in the ledger by its own kind
			// of record, which decisions cite.
			rec.Type = audit.TypeConsent
		}
		if p := patientOf(v); p != "" {
			rec.Patient = keys.PatientOwner(p)
		}
		res := audit.ResourceOf(v.Type, v.ID, v.VersionID, v.Body)
		if v.Deleted {
			res.SHA256 = ""
		}
		rec.Resources = []audit.Resource{res}
		recs = append(recs, rec)
	}
	entries, err := g.ledger.Entries(ctx, recs)
	if err != nil {
		return err
	}
	for i, wr := range writes {
		v := wr.Version
		entries[i].Written = &store.VersionRef{Type: v.Type, ID: v.ID, VersionID: v.VersionID}
	}
	_, err = tx.QueueLedger(ctx, entries)
	return err
}

// OwnerOf says whose data key seals a resource about to be written and
// whose data it is: see keys.OwnerOf.
func OwnerOf(typ, id string, idx *fhir.Index) string {
	return keys.OwnerOf(typ, id, idx.Patients)
}
