package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/store"
	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
)

// idPattern is the R4 id datatype.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

func errMultipleMatches(typ string) error {
	return reqErr(errPrecondition, "multiple-matches", "the criteria match more than one %s; make them more selective", typ)
}

// create is POST /{type}, with conditional create when If-None-Exist is
// set. The server assigns the id; one in the body is ignored, as the spec
// says.
func (s *Server) create(w http.ResponseWriter, r *http.Request) error {
	typ := chi.URLParam(r, "type")
	in, err := s.readResource(w, r, typ)
	if err != nil {
		return err
	}
	var crit *fhir.SearchQuery
	if h := r.Header.Get("If-None-Exist"); h != "" {
		if crit, err = s.criteriaOf(r, typ, h); err != nil {
			return err
		}
	}
	in.res.SetID(uuid.NewString())
	var v *store.Version
	existing := false
	err = s.store.InTx(r.Context(), func(tx *store.Tx) error {
		existing = false
		if crit != nil {
			ids, err := tx.Match(r.Context(), crit, 2)
			if err != nil {
				return err
			}
			if len(ids) > 1 {
				return errMultipleMatches(typ)
			}
			if len(ids) == 1 {
				existing = true
				v, err = tx.Current(r.Context(), typ, ids[0])
				return err
			}
		}
		v, err = s.putVersion(r.Context(), tx, in, nil, http.MethodPost)
		return err
	})
	if err != nil {
		return err
	}
	if existing {
		s.writeVersion(w, r, http.StatusOK, v, "a matching resource exists; nothing was created")
		return nil
	}
	s.writeVersion(w, r, http.StatusCreated, v, "created "+v.Type+"/"+v.ID)
	return nil
}

// criteriaOf parses the criteria of a conditional interaction: a query
// string, optionally written with its resource type ("Patient?identifier=...").
// Every search parameter can be used; one that is not understood is an
// error, never ignored, so that a conditional write cannot hit the wrong
// resource.
func (s *Server) criteriaOf(r *http.Request, typ, query string) (*fhir.SearchQuery, error) {
	if _, after, ok := strings.Cut(query, "?"); ok {
		query = after
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return nil, reqErr(errInvalid, "invalid", "malformed search criteria %q", query)
	}
	opt := s.searchOptions(r)
	opt.Strict = true
	q, err := fhir.ParseSearch(typ, params, opt)
	if err != nil {
		return nil, err
	}
	if len(q.Where) == 0 {
		return nil, reqErr(errInvalid, "invalid", "a conditional interaction needs search criteria")
	}
	return q, nil
}

// update is PUT /{type}/{id}: a new version, or the first one
// (update-as-create). If-Match makes it version-aware.
func (s *Server) update(w http.ResponseWriter, r *http.Request) error {
	typ, id := chi.URLParam(r, "type"), chi.URLParam(r, "id")
	if !idPattern.MatchString(id) {
		return reqErr(errInvalid, "invalid", "%q is not a valid resource id", id)
	}
	in, err := s.readResource(w, r, typ)
	if err != nil {
		return err
	}
	if res := in.res; res.ID == "" {
		return &requestError{family: errInvalid, code: "required", expression: "id", msg: "the body has no id; an update must carry the id of its URL"}
	} else if res.ID != id {
		return &requestError{family: errInvalid, code: "invalid", expression: "id", msg: "the body's id " + res.ID + " does not match the URL's id " + id}
	}
	return s.updateWhere(w, r, in, func(tx *store.Tx) (*store.Version, error) {
		return currentOrNil(r.Context(), tx, typ, id)
	})
}

// conditionalUpdate is PUT /{type}?criteria.
func (s *Server) conditionalUpdate(w http.ResponseWriter, r *http.Request) error {
	typ := chi.URLParam(r, "type")
	crit, err := s.criteriaOf(r, typ, r.URL.RawQuery)
	if err != nil {
		return err
	}
	in, err := s.readResource(w, r, typ)
	if err != nil {
		return err
	}
	res := in.res
	bodyID, freshID := res.ID, uuid.NewString()
	return s.updateWhere(w, r, in, func(tx *store.Tx) (*store.Version, error) {
		ids, err := tx.Match(r.Context(), crit, 2)
		if err != nil {
			return nil, err
		}
		switch len(ids) {
		case 0:
			// No match: create, with the body's id when it has one.
			if bodyID == "" {
				res.SetID(freshID)
				return nil, nil
			}
			cur, err := currentOrNil(r.Context(), tx, typ, bodyID)
			if err == nil && cur != nil && !cur.Deleted {
				err = reqErr(errConflict, "conflict", "%s/%s exists but does not match the criteria", typ, bodyID)
			}
			return cur, err
		case 1:
			if bodyID != "" && bodyID != ids[0] {
				return nil, &requestError{family: errInvalid, code: "invalid", expression: "id",
					msg: "the body's id " + bodyID + " differs from the id of the matching resource " + ids[0]}
			}
			res.SetID(ids[0])
			return tx.Current(r.Context(), typ, ids[0])
		}
		return nil, errMultipleMatches(typ)
	})
}

// updateWhere stores res as the version after the one locate returns
// inside the transaction (nil: res is created), honouring If-Match. locate
// also settles res's id.
func (s *Server) updateWhere(w http.ResponseWriter, r *http.Request, in *incoming, locate func(*store.Tx) (*store.Version, error)) error {
	want, err := ifMatch(r)
	if err != nil {
		return err
	}
	var v *store.Version
	created := false
	err = s.store.InTx(r.Context(), func(tx *store.Tx) error {
		cur, err := locate(tx)
		if err != nil {
			return err
		}
		if err := checkIfMatch(want, cur); err != nil {
			return err
		}
		created = cur == nil || cur.Deleted
		v, err = s.putVersion(r.Context(), tx, in, cur, http.MethodPut)
		return err
	})
	return s.answerWrite(w, r, v, created, err)
}

// patch is PATCH /{type}/{id} with a JSON Patch body.
func (s *Server) patch(w http.ResponseWriter, r *http.Request) error {
	id := chi.URLParam(r, "id")
	return s.patchWhere(w, r, func(*store.Tx) (string, error) { return id, nil })
}

// conditionalPatch is PATCH /{type}?criteria.
func (s *Server) conditionalPatch(w http.ResponseWriter, r *http.Request) error {
	typ := chi.URLParam(r, "type")
	crit, err := s.criteriaOf(r, typ, r.URL.RawQuery)
	if err != nil {
		return err
	}
	return s.patchWhere(w, r, func(tx *store.Tx) (string, error) {
		ids, err := tx.Match(r.Context(), crit, 2)
		switch {
		case err != nil:
			return "", err
		case len(ids) == 0:
			return "", store.ErrNotFound
		case len(ids) > 1:
			return "", errMultipleMatches(typ)
		}
		return ids[0], nil
	})
}

// patchWhere applies the request's JSON Patch to the current version of
// the resource find names, validates the result and stores it.
func (s *Server) patchWhere(w http.ResponseWriter, r *http.Request, find func(*store.Tx) (string, error)) error {
	typ := chi.URLParam(r, "type")
	media, body, err := s.readBody(w, r, mediaJSONPatch, mediaFHIRJSON, mediaJSON)
	if err != nil {
		return err
	}
	if media != mediaJSONPatch {
		return reqErr(errUnsupportedMedia, "not-supported", "only JSON Patch (%s) is supported; FHIRPath Patch is not", mediaJSONPatch)
	}
	if err := fhir.CheckJSON(body, s.limits); err != nil {
		return err
	}
	p, err := jsonpatch.DecodePatch(body)
	if err != nil {
		return reqErr(errInvalid, "invalid", "malformed JSON Patch: %v", err)
	}
	want, err := ifMatch(r)
	if err != nil {
		return err
	}
	opts := jsonpatch.NewApplyOptions()
	opts.AccumulatedCopySizeLimit = s.cfg.MaxBodyBytes
	var v *store.Version
	err = s.store.InTx(r.Context(), func(tx *store.Tx) error {
		id, err := find(tx)
		if err != nil {
			return err
		}
		cur, err := tx.Current(r.Context(), typ, id)
		if err != nil {
			return err
		}
		if cur.Deleted {
			return &store.DeletedError{Type: typ, ID: id, VersionID: cur.VersionID, Updated: cur.Updated}
		}
		if err := checkIfMatch(want, cur); err != nil {
			return err
		}
		patched, err := p.ApplyWithOptions(cur.Body, opts)
		if err != nil {
			return reqErr(errUnprocessable, "processing", "the patch cannot be applied: %v", err)
		}
		if int64(len(patched)) > s.cfg.MaxBodyBytes {
			return reqErr(errTooLarge, "too-costly", "the patched resource exceeds %d bytes", s.cfg.MaxBodyBytes)
		}
		in, err := s.parseResource(patched, typ)
		if err != nil {
			return err
		}
		if in.res.ID != id {
			return &requestError{family: errUnprocessable, code: "processing", expression: "id", msg: "a patch must not change the resource's id"}
		}
		v, err = s.putVersion(r.Context(), tx, in, cur, http.MethodPatch)
		return err
	})
	return s.answerWrite(w, r, v, false, err)
}

// delete is DELETE /{type}/{id}. Deleting what does not exist, or is
// already deleted, succeeds without writing a version, as the spec allows.
func (s *Server) delete(w http.ResponseWriter, r *http.Request) error {
	id := chi.URLParam(r, "id")
	return s.deleteWhere(w, r, func(*store.Tx) (string, error) {
		if !idPattern.MatchString(id) {
			return "", nil // no resource can have it
		}
		return id, nil
	})
}

// conditionalDelete is DELETE /{type}?criteria; it deletes at most one
// resource and answers 412 when the criteria match several.
func (s *Server) conditionalDelete(w http.ResponseWriter, r *http.Request) error {
	typ := chi.URLParam(r, "type")
	crit, err := s.criteriaOf(r, typ, r.URL.RawQuery)
	if err != nil {
		return err
	}
	return s.deleteWhere(w, r, func(tx *store.Tx) (string, error) {
		ids, err := tx.Match(r.Context(), crit, 2)
		switch {
		case err != nil:
			return "", err
		case len(ids) > 1:
			return "", errMultipleMatches(typ)
		case len(ids) == 0:
			return "", nil
		}
		return ids[0], nil
	})
}

// deleteWhere deletes the resource find names ("" for none).
func (s *Server) deleteWhere(w http.ResponseWriter, r *http.Request, find func(*store.Tx) (string, error)) error {
	typ := chi.URLParam(r, "type")
	want, err := ifMatch(r)
	if err != nil {
		return err
	}
	var v *store.Version
	err = s.store.InTx(r.Context(), func(tx *store.Tx) error {
		v = nil
		id, err := find(tx)
		if err != nil || id == "" {
			return err
		}
		cur, err := currentOrNil(r.Context(), tx, typ, id)
		if err != nil {
			return err
		}
		if err := checkIfMatch(want, cur); err != nil {
			return err
		}
		if cur == nil || cur.Deleted {
			return nil
		}
		v = &store.Version{Type: typ, ID: id, VersionID: cur.VersionID + 1, Updated: s.stamp(cur), Method: http.MethodDelete, Deleted: true}
		return tx.Put(r.Context(), v, nil)
	})
	if err != nil {
		return err
	}
	msg := "nothing to delete"
	if v != nil {
		setVersionHeaders(w, v.VersionID, v.Updated)
		msg = "deleted " + typ + "/" + v.ID
	}
	if preferReturn(r) == "OperationOutcome" {
		s.writeOutcome(w, r, http.StatusOK, info(msg))
		return nil
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// answerWrite answers a create or update that ran in InTx.
func (s *Server) answerWrite(w http.ResponseWriter, r *http.Request, v *store.Version, created bool, err error) error {
	if err != nil {
		return err
	}
	if created {
		s.writeVersion(w, r, http.StatusCreated, v, "created "+v.Type+"/"+v.ID)
	} else {
		s.writeVersion(w, r, http.StatusOK, v, "updated "+v.Type+"/"+v.ID)
	}
	return nil
}

// putVersion stores in as the version after cur (nil: the first).
func (s *Server) putVersion(ctx context.Context, tx *store.Tx, in *incoming, cur *store.Version, method string) (*store.Version, error) {
	res := in.res
	next := int64(1)
	if cur != nil {
		next = cur.VersionID + 1
	}
	now := s.stamp(cur)
	res.SetMeta(next, now)
	v := &store.Version{Type: res.Type, ID: res.ID, VersionID: next, Updated: now, Method: method, Body: res.Bytes()}
	return v, tx.Put(ctx, v, in.idx)
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

func currentOrNil(ctx context.Context, tx *store.Tx, typ, id string) (*store.Version, error) {
	cur, err := tx.Current(ctx, typ, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return cur, err
}

// checkIfMatch enforces If-Match (want 0: none) against the current version.
func checkIfMatch(want int64, cur *store.Version) error {
	if want == 0 {
		return nil
	}
	if cur == nil {
		return reqErr(errPrecondition, "conflict", "If-Match names version %d but the resource does not exist", want)
	}
	if cur.VersionID != want {
		return reqErr(errPrecondition, "conflict", "If-Match names version %d but the current version is %d", want, cur.VersionID)
	}
	return nil
}
