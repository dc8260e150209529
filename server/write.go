package server

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/store"
	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-chi/chi/v5"
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
	op := &writeOp{method: http.MethodPost, typ: typ, in: in, freshID: newID()}
	if h := r.Header.Get("If-None-Exist"); h != "" {
		if op.crit, err = s.criteriaOf(r, typ, h); err != nil {
			return err
		}
	}
	return s.runWrite(w, r, op)
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
	want, err := ifMatch(r)
	if err != nil {
		return err
	}
	return s.runWrite(w, r, &writeOp{method: http.MethodPut, typ: typ, id: id, in: in, ifMatch: want})
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
	want, err := ifMatch(r)
	if err != nil {
		return err
	}
	return s.runWrite(w, r, &writeOp{method: http.MethodPut, typ: typ, crit: crit, in: in, ifMatch: want, freshID: newID()})
}

// patch is PATCH /{type}/{id} with a JSON Patch body.
func (s *Server) patch(w http.ResponseWriter, r *http.Request) error {
	return s.patchOp(w, r, &writeOp{method: http.MethodPatch, typ: chi.URLParam(r, "type"), id: chi.URLParam(r, "id")})
}

// conditionalPatch is PATCH /{type}?criteria.
func (s *Server) conditionalPatch(w http.ResponseWriter, r *http.Request) error {
	typ := chi.URLParam(r, "type")
	crit, err := s.criteriaOf(r, typ, r.URL.RawQuery)
	if err != nil {
		return err
	}
	return s.patchOp(w, r, &writeOp{method: http.MethodPatch, typ: typ, crit: crit})
}

// patchOp reads a JSON Patch body into op and runs it.
func (s *Server) patchOp(w http.ResponseWriter, r *http.Request, op *writeOp) error {
	media, body, err := s.readBody(w, r, mediaJSONPatch, mediaFHIRJSON, mediaJSON)
	if err != nil {
		return err
	}
	if media != mediaJSONPatch {
		return reqErr(errUnsupportedMedia, "not-supported", "only JSON Patch (%s) is supported; FHIRPath Patch is not", mediaJSONPatch)
	}
	if op.patch, err = s.decodePatch(body); err != nil {
		return err
	}
	if op.ifMatch, err = ifMatch(r); err != nil {
		return err
	}
	return s.runWrite(w, r, op)
}

func (s *Server) decodePatch(body []byte) (jsonpatch.Patch, error) {
	if err := fhir.CheckJSON(body, s.limits); err != nil {
		return nil, err
	}
	p, err := jsonpatch.DecodePatch(body)
	if err != nil {
		return nil, reqErr(errInvalid, "invalid", "malformed JSON Patch: %v", err)
	}
	// Each operation has the members RFC 6902 gives it: the library
	// applies an operation without them as it finds it (a test without a
	// value panicked).
	for i, op := range p {
		need := []string{"path"}
		switch kind := op.Kind(); kind {
		case "add", "replace", "test":
			need = append(need, "value")
		case "copy", "move":
			need = append(need, "from")
		case "remove":
		default:
			return nil, reqErr(errInvalid, "invalid", "JSON Patch operation %d: %q is not add, remove, replace, move, copy or test", i, kind)
		}
		for _, member := range need {
			if v := op[member]; v == nil || string(bytes.TrimSpace(*v)) == "null" {
				return nil, reqErr(errInvalid, "invalid", "JSON Patch operation %d (%s) needs %s", i, op.Kind(), member)
			}
		}
	}
	return p, nil
}

// delete is DELETE /{type}/{id}. Deleting what does not exist, or is
// already deleted, succeeds without writing a version, as the spec allows.
func (s *Server) delete(w http.ResponseWriter, r *http.Request) error {
	want, err := ifMatch(r)
	if err != nil {
		return err
	}
	return s.runWrite(w, r, &writeOp{method: http.MethodDelete, typ: chi.URLParam(r, "type"), id: chi.URLParam(r, "id"), ifMatch: want})
}

// conditionalDelete is DELETE /{type}?criteria; it deletes at most one
// resource and answers 412 when the criteria match several.
func (s *Server) conditionalDelete(w http.ResponseWriter, r *http.Request) error {
	typ := chi.URLParam(r, "type")
	crit, err := s.criteriaOf(r, typ, r.URL.RawQuery)
	if err != nil {
		return err
	}
	want, err := ifMatch(r)
	if err != nil {
		return err
	}
	return s.runWrite(w, r, &writeOp{method: http.MethodDelete, typ: typ, crit: crit, ifMatch: want})
}

// runWrite plans op and stores its change in one transaction through
// the gate, then answers.
func (s *Server) runWrite(w http.ResponseWriter, r *http.Request, op *writeOp) error {
	var ch change
	err := s.gate.InTx(r.Context(), func(tx *disclosure.WriteTx) error {
		var err error
		if ch, err = s.plan(r.Context(), tx, op); err != nil {
			return err
		}
		if ch.write == nil {
			return nil
		}
		return tx.Put(r.Context(), []disclosure.Change{ch.gateChange()})
	})
	if err != nil {
		return err
	}
	// The body a write answers with goes through the gate: the resource a
	// conditional create matched, or the rest of a patched resource, is a
	// disclosure; what the client sent itself is shown only to a caller
	// that may read it.
	resp := s.gate.Respond(disclosure.WriteInteraction(op.method), nil)
	slot := -1
	if ch.v != nil && !ch.v.Deleted && preferReturn(r) == "representation" {
		if slot, err = ch.show(r.Context(), resp, op.method); err != nil {
			return err
		}
	}
	shown, err := resp.Record(r.Context())
	if err != nil {
		return err
	}
	setLedgerIndex(w, shown)
	switch {
	case ch.status == http.StatusNoContent:
		if ch.v != nil {
			setVersionHeaders(w, ch.v.VersionID, ch.v.Updated)
		}
		if preferReturn(r) == "OperationOutcome" {
			s.writeOutcome(w, r, http.StatusOK, info(ch.msg))
			return nil
		}
		w.WriteHeader(http.StatusNoContent)
	case slot < 0 && preferReturn(r) == "representation":
		// The write stands; what the caller may not see is not sent back.
		setVersionHeaders(w, ch.v.VersionID, ch.v.Updated)
		w.Header().Set("Location", s.baseURL(r)+"/"+ch.v.Type+"/"+ch.v.ID+"/_history/"+strconv.FormatInt(ch.v.VersionID, 10))
		w.WriteHeader(ch.status)
	case slot >= 0:
		v := shown.Entries()[slot].Version
		s.writeVersion(w, r, ch.status, &v, ch.msg)
	default:
		s.writeVersion(w, r, ch.status, ch.v, ch.msg)
	}
	return nil
}

// show adds the version ch answers with to resp: a disclosure when the
// caller did not send it (a match, a patch), else an echo. It returns its
// place in the answer, -1 when it is not shown.
func (ch change) show(ctx context.Context, resp *disclosure.Response, method string) (int, error) {
	if ch.write == nil || method == http.MethodPatch {
		return resp.Disclose(ctx, ch.v)
	}
	return resp.Echo(ctx, ch.v)
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
