package server

import (
	"context"
	"net/http"
	"time"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/store"
	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/uuid"
)

// writeOp is one write interaction, parsed: what to do, to which resource,
// under which preconditions. HTTP handlers and transaction entries both
// build them; plan turns one into a change inside a transaction.
type writeOp struct {
	method string // POST, PUT, PATCH or DELETE
	typ    string
	// id names the resource of a PUT, PATCH or DELETE; crit replaces it
	// for conditional ones (for a POST, crit is If-None-Exist).
	id      string
	crit    *fhir.SearchQuery
	in      *incoming // the body of a POST or PUT
	patch   jsonpatch.Patch
	ifMatch int64 // required current version, 0 for none
	// freshID is the id a create gets (POST, or a conditional PUT that
	// matches nothing and whose body has no id).
	freshID string
}

// gateChange is the change as the gate stores it.
func (ch change) gateChange() disclosure.Change {
	return disclosure.Change{Version: ch.write.Version, Index: ch.write.Index, Replaces: ch.cur}
}

// change is what a planned interaction writes and answers.
type change struct {
	write  *store.Write   // nil when nothing is written
	v      *store.Version // the version to answer with: written, or found
	cur    *store.Version // the current version the write replaces, if any
	status int            // 201, 200, or 204 for deletes
	msg    string
}

// plan decides op inside tx: it reads what the interaction depends on
// (matches, the current version, authorized by the gate before anything
// of them is used), checks preconditions, and builds the version to write
// without writing it. It may run more than once (InTx retries);
// everything it sets on op.in is set again each time. tx.Put authorizes
// what it writes.
func (s *Server) plan(ctx context.Context, tx *disclosure.WriteTx, op *writeOp) (change, error) {
	switch op.method {
	case http.MethodPost:
		return s.planCreate(ctx, tx, op)
	case http.MethodPut:
		return s.planUpdate(ctx, tx, op)
	case http.MethodPatch:
		return s.planPatch(ctx, tx, op)
	case http.MethodDelete:
		return s.planDelete(ctx, tx, op)
	}
	return change{}, reqErr(errMethodNotAllowed, "not-supported", "%s cannot write a resource", op.method)
}

// match returns the single id op.crit selects among what the caller may
// see: "" with none, an error with several.
func match(ctx context.Context, tx *disclosure.WriteTx, op *writeOp) (string, error) {
	ids, err := tx.Match(ctx, op.crit, 2)
	switch {
	case err != nil:
		return "", err
	case len(ids) > 1:
		return "", errMultipleMatches(op.typ)
	case len(ids) == 0:
		return "", nil
	}
	return ids[0], nil
}

func (s *Server) planCreate(ctx context.Context, tx *disclosure.WriteTx, op *writeOp) (change, error) {
	if op.crit != nil {
		id, err := match(ctx, tx, op)
		if err != nil {
			return change{}, err
		}
		if id != "" {
			cur, err := tx.Current(ctx, op.typ, id, auth.Create)
			if err == nil && cur == nil {
				err = store.ErrNotFound
			}
			return change{v: cur, status: http.StatusOK, msg: "a matching resource exists; nothing was created"}, err
		}
	}
	op.in.res.SetID(op.freshID)
	return s.newVersion(op.in, nil, http.MethodPost, http.StatusCreated), nil
}

func (s *Server) planUpdate(ctx context.Context, tx *disclosure.WriteTx, op *writeOp) (change, error) {
	res := op.in.res
	id := op.id
	if op.crit == nil {
		switch {
		case res.ID == "":
			return change{}, &requestError{family: errInvalid, code: "required", expression: "id", msg: "the body has no id; an update must carry the id of its URL"}
		case res.ID != id:
			return change{}, &requestError{family: errInvalid, code: "invalid", expression: "id", msg: "the body's id " + res.ID + " does not match the URL's id " + id}
		}
	} else {
		var err error
		if id, err = s.updateTarget(ctx, tx, op); err != nil {
			return change{}, err
		}
	}
	cur, err := tx.Current(ctx, op.typ, id, auth.Update)
	if err != nil {
		return change{}, err
	}
	if err := checkIfMatch(op.ifMatch, cur); err != nil {
		return change{}, err
	}
	status := http.StatusOK
	if cur == nil || cur.Deleted {
		status = http.StatusCreated
	}
	ch := s.newVersion(op.in, cur, http.MethodPut, status)
	ch.cur = cur
	return ch, nil
}

// updateTarget settles the id a conditional update writes: the one match,
// else the body's id (unless a resource that does not match has it), else
// op.freshID. It sets the body's id to it.
func (s *Server) updateTarget(ctx context.Context, tx *disclosure.WriteTx, op *writeOp) (string, error) {
	res := op.in.res
	matched, err := match(ctx, tx, op)
	if err != nil {
		return "", err
	}
	bodyID := res.ID
	switch {
	case matched != "" && bodyID != "" && bodyID != matched:
		return "", &requestError{family: errInvalid, code: "invalid", expression: "id",
			msg: "the body's id " + bodyID + " differs from the id of the matching resource " + matched}
	case matched != "":
		res.SetID(matched)
		return matched, nil
	case bodyID == "":
		res.SetID(op.freshID)
		return op.freshID, nil
	}
	cur, err := tx.Current(ctx, op.typ, bodyID, auth.Update)
	if err != nil {
		return "", err
	}
	if cur != nil && !cur.Deleted {
		return "", reqErr(errConflict, "conflict", "%s/%s exists but does not match the criteria", op.typ, bodyID)
	}
	return bodyID, nil
}

func (s *Server) planPatch(ctx context.Context, tx *disclosure.WriteTx, op *writeOp) (change, error) {
	id := op.id
	if op.crit != nil {
		var err error
		if id, err = match(ctx, tx, op); err != nil {
			return change{}, err
		}
		if id == "" {
			return change{}, store.ErrNotFound
		}
	}
	if !idPattern.MatchString(id) {
		return change{}, store.ErrNotFound
	}
	// Authorized, read access and consent included, before the patch
	// touches the content: its errors may quote it.
	cur, err := tx.ForPatch(ctx, op.typ, id)
	if err != nil {
		return change{}, err
	}
	if err := checkIfMatch(op.ifMatch, cur); err != nil {
		return change{}, err
	}
	opts := jsonpatch.NewApplyOptions()
	opts.AccumulatedCopySizeLimit = s.cfg.MaxBodyBytes
	patched, err := op.patch.ApplyWithOptions(cur.Body, opts)
	if err != nil {
		return change{}, reqErr(errUnprocessable, "processing", "the patch cannot be applied: %v", err)
	}
	if int64(len(patched)) > s.cfg.MaxBodyBytes {
		return change{}, reqErr(errTooLarge, "too-costly", "the patched resource exceeds %d bytes", s.cfg.MaxBodyBytes)
	}
	in, err := s.parseResource(patched, op.typ)
	if err != nil {
		return change{}, err
	}
	if in.res.ID != id {
		return change{}, &requestError{family: errUnprocessable, code: "processing", expression: "id", msg: "a patch must not change the resource's id"}
	}
	ch := s.newVersion(in, cur, http.MethodPatch, http.StatusOK)
	ch.cur = cur
	return ch, nil
}

func (s *Server) planDelete(ctx context.Context, tx *disclosure.WriteTx, op *writeOp) (change, error) {
	id := op.id
	if op.crit != nil {
		var err error
		if id, err = match(ctx, tx, op); err != nil {
			return change{}, err
		}
	}
	nothing := change{status: http.StatusNoContent, msg: "nothing to delete"}
	if id == "" || !idPattern.MatchString(id) {
		return nothing, checkIfMatch(op.ifMatch, nil)
	}
	cur, err := tx.Current(ctx, op.typ, id, auth.Delete)
	if err != nil {
		return change{}, err
	}
	if err := checkIfMatch(op.ifMatch, cur); err != nil {
		return change{}, err
	}
	if cur == nil || cur.Deleted {
		return nothing, nil
	}
	// The owner is kept for the write record (which names the patient
	// whose data was deleted); a deletion stores no body to seal.
	v := &store.Version{Type: op.typ, ID: id, VersionID: cur.VersionID + 1, Updated: s.stamp(cur), Method: http.MethodDelete, Deleted: true, Owner: cur.Owner}
	return change{write: &store.Write{Version: v}, v: v, cur: cur, status: http.StatusNoContent, msg: "deleted " + op.typ + "/" + id}, nil
}

// newVersion builds the version after cur (nil: the first) of in.
func (s *Server) newVersion(in *incoming, cur *store.Version, method string, status int) change {
	res := in.res
	next := int64(1)
	if cur != nil {
		next = cur.VersionID + 1
	}
	now := s.stamp(cur)
	s.gate.Label(res, in.idx)
	res.SetMeta(next, now)
	v := &store.Version{Type: res.Type, ID: res.ID, VersionID: next, Updated: now, Method: method, Body: res.Bytes(),
		Owner: disclosure.OwnerOf(res.Type, res.ID, in.idx)}
	msg := "updated "
	if status == http.StatusCreated {
		msg = "created "
	}
	return change{write: &store.Write{Version: v, Index: in.idx}, v: v, status: status, msg: msg + v.Type + "/" + v.ID}
}

// stamp is the lastUpdated of the version after cur: now, at microsecond
// precision, and always later than cur even if clocks step back.
func (s *Server) stamp(cur *store.Version) time.Time {
	t := s.now().UTC().Truncate(time.Microsecond)
	if cur != nil && !t.After(cur.Updated) {
		t = cur.Updated.Add(time.Microsecond)
	}
	return t
}

// newID is a server-assigned id: a version 7 UUID, whose leading
// timestamp keeps new rows together at the end of every index keyed by id
// instead of scattering them (random ids made each write touch pages all
// over the SQLite file; BENCHMARKS.md).
func newID() string { return uuid.Must(uuid.NewV7()).String() }
