package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/store"
	"github.com/go-chi/chi/v5"
)

// bundleIn is a transaction or batch Bundle as posted.
type bundleIn struct {
	Type  string `json:"type"`
	Entry []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  *struct {
			Method          string `json:"method"`
			URL             string `json:"url"`
			IfNoneMatch     string `json:"ifNoneMatch"`
			IfModifiedSince string `json:"ifModifiedSince"`
			IfMatch         string `json:"ifMatch"`
			IfNoneExist     string `json:"ifNoneExist"`
		} `json:"request"`
	} `json:"entry"`
}

// entryOut is one entry of a transaction-response or batch-response.
type entryOut struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Response *entryResponse  `json:"response"`
	// ledger is the Ledger-Index of an entry that disclosed data.
	ledger string
}

// ledgerIndexes names, in the Bundle's response, the ledger records of
// the Bundle's own disclosures (own, comma-separated) and of every entry
// that disclosed data.
func ledgerIndexes(w http.ResponseWriter, own string, entries []entryOut) {
	var all []string
	if own != "" {
		all = append(all, own)
	}
	for _, e := range entries {
		if e.ledger != "" {
			all = append(all, e.ledger)
		}
	}
	if len(all) > 0 {
		w.Header().Set("Ledger-Index", strings.Join(all, ","))
	}
}

type entryResponse struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

type bundleOut struct {
	ResourceType string     `json:"resourceType"`
	Type         string     `json:"type"`
	Entry        []entryOut `json:"entry"`
}

// entryError is the failure of one entry: its index and the cause.
type entryError struct {
	index int
	err   error
}

func (e *entryError) Error() string { return fmt.Sprintf("Bundle.entry[%d]: %v", e.index, e.err) }
func (e *entryError) Unwrap() error { return e.err }

// txEntry is a transaction entry read into the interaction it asks for.
type txEntry struct {
	index   int
	method  string
	fullURL string
	// template is the write as the entry asks it (nil for GET and HEAD);
	// each attempt of the database transaction works on a copy, since
	// resolving it changes its target and body.
	template *writeOp
	op       *writeOp
	body     []byte // the entry's resource, references not yet rewritten
}

// transactionOrBatch is POST /: a transaction (all entries or none, in
// one database transaction) or a batch (each entry on its own).
func (s *Server) transactionOrBatch(w http.ResponseWriter, r *http.Request) error {
	_, body, err := s.readBody(w, r, mediaFHIRJSON, mediaJSON, "application/json+fhir")
	if err != nil {
		return err
	}
	res, err := fhir.Parse(body, s.limits)
	if err != nil {
		return err
	}
	if res.Type != "Bundle" {
		return &requestError{family: errInvalid, code: "invalid", expression: "resourceType", msg: "POST / takes a Bundle of type transaction or batch, not a " + res.Type}
	}
	var b bundleIn
	if err := json.Unmarshal(body, &b); err != nil {
		return reqErr(errInvalid, "structure", "unreadable Bundle: %v", err)
	}
	if len(b.Entry) > s.cfg.Limits.BundleEntries {
		return &requestError{family: errInvalid, code: "too-costly", expression: "Bundle.entry",
			msg: fmt.Sprintf("the Bundle has %d entries; at most %d are taken (max_bundle_entries)", len(b.Entry), s.cfg.Limits.BundleEntries)}
	}
	switch b.Type {
	case "transaction":
		if issues := errorsOnly(fhir.Validate(body)); len(issues) > 0 {
			return &validationError{issues: issues}
		}
		return s.transaction(w, r, &b)
	case "batch":
		return s.batch(w, r, &b)
	}
	return &requestError{family: errInvalid, code: "invalid", expression: "Bundle.type", msg: "POST / takes a Bundle of type transaction or batch, not " + strconv.Quote(b.Type)}
}

// entryTarget reads an entry's request URL relative to the base:
// "Patient", "Patient/123" or "Patient?identifier=...".
func (s *Server) entryTarget(r *http.Request, raw string) (typ, id, query string, err error) {
	raw = strings.TrimPrefix(raw, s.baseURL(r)+"/")
	path, query, _ := strings.Cut(raw, "?")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	typ = parts[0]
	if !fhir.IsResourceType(typ) {
		return "", "", "", reqErr(errNotFound, "not-supported", "%q is not a FHIR R4 resource type", typ)
	}
	switch {
	case len(parts) == 1:
	case len(parts) == 2 && query == "":
		id = parts[1]
	default:
		return "", "", "", reqErr(errInvalid, "invalid", "request.url %q is not Type, Type/id or Type?criteria", raw)
	}
	return typ, id, query, nil
}

// readEntries turns the entries of a transaction into interactions.
func (s *Server) readEntries(r *http.Request, b *bundleIn) ([]*txEntry, error) {
	entries := make([]*txEntry, len(b.Entry))
	for i, e := range b.Entry {
		fail := func(err error) ([]*txEntry, error) { return nil, &entryError{index: i, err: err} }
		if e.Request == nil || e.Request.Method == "" || e.Request.URL == "" {
			return fail(reqErr(errInvalid, "required", "an entry needs request.method and request.url"))
		}
		te := &txEntry{index: i, method: strings.ToUpper(e.Request.Method), fullURL: e.FullURL}
		entries[i] = te
		if te.method == http.MethodGet || te.method == http.MethodHead {
			continue
		}
		typ, id, query, err := s.entryTarget(r, e.Request.URL)
		if err != nil {
			return fail(err)
		}
		// The entry's scope is checked before anything of it is resolved.
		if in, ok := disclosure.WriteScope(te.method); ok {
			if err := disclosure.Reach(r.Context(), typ, in); err != nil {
				return fail(err)
			}
		}
		op := &writeOp{method: te.method, typ: typ, id: id, freshID: newID()}
		if op.ifMatch, err = parseIfMatch(e.Request.IfMatch); err != nil {
			return fail(err)
		}
		if query != "" {
			if op.crit, err = s.criteriaOf(r, typ, query); err != nil {
				return fail(err)
			}
		}
		switch te.method {
		case http.MethodPost:
			if id != "" || query != "" {
				return fail(reqErr(errInvalid, "invalid", "a POST entry's url is the resource type, not %q", e.Request.URL))
			}
			if e.Request.IfNoneExist != "" {
				if op.crit, err = s.criteriaOf(r, typ, e.Request.IfNoneExist); err != nil {
					return fail(err)
				}
			}
			fallthrough
		case http.MethodPut:
			if len(e.Resource) == 0 {
				return fail(reqErr(errInvalid, "required", "a %s entry needs a resource", te.method))
			}
			if op.in, err = s.parseUnindexed(e.Resource, typ); err != nil {
				return fail(err)
			}
			te.body = op.in.res.Bytes()
			if te.method == http.MethodPut && id == "" && query == "" {
				return fail(reqErr(errInvalid, "invalid", "a PUT entry's url is Type/id or Type?criteria"))
			}
		case http.MethodPatch:
			patch, err := s.entryPatch(e.Resource)
			if err == nil {
				op.patch, err = s.decodePatch(patch)
			}
			if err != nil {
				return fail(err)
			}
		case http.MethodDelete:
		default:
			return fail(reqErr(errInvalid, "invalid", "request.method %q is not GET, HEAD, POST, PUT, PATCH or DELETE", e.Request.Method))
		}
		if op.id == "" && op.crit == nil && te.method != http.MethodPost {
			return fail(reqErr(errInvalid, "invalid", "a %s entry's url names no resource", te.method))
		}
		te.template = op
	}
	return entries, nil
}

// parseUnindexed parses a resource of type typ without validating or
// indexing it (a transaction indexes its entries once their references
// are final).
func (s *Server) parseUnindexed(raw []byte, typ string) (*incoming, error) {
	res, err := fhir.Parse(raw, s.limits)
	if err != nil {
		return nil, err
	}
	if res.Type != typ {
		return nil, &requestError{family: errInvalid, code: "invalid", expression: "resourceType",
			msg: "resourceType " + strconv.Quote(res.Type) + " does not match the URL's type " + strconv.Quote(typ)}
	}
	return &incoming{res: res}, nil
}

// entryPatch reads a PATCH entry's resource: a Binary holding a JSON Patch.
func (s *Server) entryPatch(raw []byte) ([]byte, error) {
	var bin struct {
		ResourceType, ContentType, Data string
	}
	if err := json.Unmarshal(raw, &bin); err != nil || bin.ResourceType != "Binary" {
		return nil, reqErr(errUnsupportedMedia, "not-supported", "a PATCH entry's resource must be a Binary holding a JSON Patch")
	}
	if bin.ContentType != mediaJSONPatch {
		return nil, reqErr(errUnsupportedMedia, "not-supported", "a PATCH entry's Binary must be %s, not %q", mediaJSONPatch, bin.ContentType)
	}
	patch, err := base64.StdEncoding.DecodeString(bin.Data)
	if err != nil {
		return nil, reqErr(errInvalid, "invalid", "a PATCH entry's Binary.data is not base64")
	}
	return patch, nil
}

// transaction runs every write entry in one database transaction, in the
// order the spec sets (DELETE, POST, PUT, PATCH), after rewriting
// urn:uuid and conditional references; GET entries run after the commit.
// Any failure fails it all, the OperationOutcome naming the entry.
func (s *Server) transaction(w http.ResponseWriter, r *http.Request, b *bundleIn) error {
	entries, err := s.readEntries(r, b)
	if err != nil {
		return err
	}
	order := map[string]int{http.MethodDelete: 0, http.MethodPost: 1, http.MethodPut: 2, http.MethodPatch: 3}
	var writes []*txEntry
	for _, te := range entries {
		if te.template != nil {
			writes = append(writes, te)
		}
	}
	slices.SortStableFunc(writes, func(a, b *txEntry) int { return order[a.method] - order[b.method] })

	changes := make([]change, len(entries))
	err = s.gate.InTx(r.Context(), func(tx *disclosure.WriteTx) (err error) {
		// Where each entry's fullUrl now points: Type/id.
		ids := map[string]string{}
		for _, te := range writes {
			op := *te.template
			te.op = &op
			if err := s.resolveTarget(r, tx, te); err != nil {
				return &entryError{index: te.index, err: err}
			}
			if te.fullURL != "" && te.op.id != "" {
				ids[te.fullURL] = te.op.typ + "/" + te.op.id
			}
		}
		seen := map[string]int{}
		for _, te := range entries { // in request order, to name the later entry
			if te.op == nil || te.op.id == "" {
				continue
			}
			key := te.op.typ + "/" + te.op.id
			if first, dup := seen[key]; dup {
				return &entryError{index: te.index, err: reqErr(errInvalid, "invalid", "%s is also the target of entry %d; a transaction may change a resource once", key, first)}
			}
			seen[key] = te.index
		}
		var toStore []disclosure.Change
		var from []int // the entry of each change
		for _, te := range writes {
			if te.op.in != nil {
				if te.op.in, err = s.rewrite(r, tx, te.body, ids); err != nil {
					return &entryError{index: te.index, err: err}
				}
			}
			ch, err := s.plan(r.Context(), tx, te.op)
			if err != nil {
				return &entryError{index: te.index, err: err}
			}
			changes[te.index] = ch
			if ch.write != nil {
				toStore = append(toStore, ch.gateChange())
				from = append(from, te.index)
			}
		}
		err = tx.Put(r.Context(), toStore)
		var refused *disclosure.ChangeError
		if errors.As(err, &refused) {
			return &entryError{index: from[refused.Index], err: refused.Err}
		}
		return err
	})
	if err != nil {
		return err
	}
	// The bodies the entries answer with go through the gate, as a single
	// write's do, and are recorded together.
	resp := s.gate.Respond("transaction", nil)
	slots := make([]int, len(entries))
	for i, te := range entries {
		slots[i] = -1
		if ch := changes[i]; te.template != nil && ch.v != nil && !ch.v.Deleted && wantsBodies(r) {
			if slots[i], err = ch.show(r.Context(), resp, te.method); err != nil {
				return err
			}
		}
	}
	shown, err := resp.Record(r.Context())
	if err != nil {
		return err
	}
	out := bundleOut{ResourceType: "Bundle", Type: "transaction-response", Entry: make([]entryOut, len(entries))}
	for i, te := range entries {
		if te.template == nil {
			out.Entry[i] = s.subRequest(r, b, i)
			continue
		}
		out.Entry[i] = s.changeEntry(r, changes[i])
		if slots[i] >= 0 {
			out.Entry[i].Resource = json.RawMessage(shown.Entries()[slots[i]].Version.Body)
		}
	}
	ledgerIndexes(w, shown.LedgerIndex(), out.Entry)
	s.writeJSON(w, r, http.StatusOK, out)
	return nil
}

// resolveTarget settles, inside the transaction, which resource a
// conditional entry acts on, so that references to its fullUrl can be
// rewritten: the match of a conditional create (then nothing is created),
// update, patch or delete; the new id of a create.
func (s *Server) resolveTarget(r *http.Request, tx *disclosure.WriteTx, te *txEntry) error {
	op := te.op
	ctx := r.Context()
	switch op.method {
	case http.MethodPost:
		op.id = op.freshID
		if op.crit != nil {
			matched, err := match(ctx, tx, op)
			if err != nil {
				return err
			}
			if matched != "" {
				op.id = matched
			}
		}
	case http.MethodPut:
		if op.crit != nil {
			id, err := s.updateTarget(ctx, tx, op)
			if err != nil {
				return err
			}
			op.id, op.crit = id, nil
		}
	default:
		if op.crit != nil {
			matched, err := match(ctx, tx, op)
			if err != nil {
				return err
			}
			if matched == "" && op.method == http.MethodPatch {
				return store.ErrNotFound
			}
			op.id, op.crit = matched, nil
		}
	}
	return nil
}

// rewrite replaces the references in body to other entries' fullUrls with
// their Type/id, resolves conditional references (Patient?identifier=...)
// to the one resource they match, and parses and indexes the result.
func (s *Server) rewrite(r *http.Request, tx *disclosure.WriteTx, body []byte, ids map[string]string) (*incoming, error) {
	var failure error
	body = fhir.RewriteReferences(body, func(ref string) (string, bool) {
		if to, ok := ids[ref]; ok {
			return to, true
		}
		if strings.HasPrefix(ref, "urn:uuid:") || strings.HasPrefix(ref, "urn:oid:") {
			if failure == nil {
				failure = reqErr(errInvalid, "invalid", "reference %s names no entry of the transaction", ref)
			}
			return "", false
		}
		typ, query, ok := strings.Cut(ref, "?")
		if !ok || !fhir.IsResourceType(typ) {
			return "", false
		}
		crit, err := s.criteriaOf(r, typ, query)
		if err == nil {
			var found []string
			if found, err = tx.Match(r.Context(), crit, 2); err == nil && len(found) != 1 {
				err = reqErr(errPrecondition, "multiple-matches", "conditional reference %s matches %d resources, not one", ref, len(found))
			}
			if err == nil {
				return typ + "/" + found[0], true
			}
		}
		if failure == nil {
			failure = err
		}
		return "", false
	})
	if failure != nil {
		return nil, failure
	}
	res, err := fhir.Parse(body, s.limits)
	if err != nil {
		return nil, err
	}
	idx, err := fhir.ExtractIndex(res.Type, body)
	if err != nil {
		return nil, err
	}
	return &incoming{res: res, idx: idx}, s.checkIndex(res.Type, idx)
}

// wantsBodies says a transaction's answer carries the entries' resources:
// only when Prefer asks for them.
func wantsBodies(r *http.Request) bool {
	return preferReturn(r) == "representation" && r.Header.Get("Prefer") != ""
}

// changeEntry is the response entry of a planned write, without its
// resource.
func (s *Server) changeEntry(r *http.Request, ch change) entryOut {
	e := entryOut{Response: &entryResponse{Status: strconv.Itoa(ch.status) + " " + http.StatusText(ch.status)}}
	if ch.v == nil {
		return e
	}
	e.Response.Etag = etag(ch.v.VersionID)
	e.Response.LastModified = fhir.FormatInstant(ch.v.Updated)
	if !ch.v.Deleted {
		e.FullURL = s.baseURL(r) + "/" + ch.v.Type + "/" + ch.v.ID
		e.Response.Location = ch.v.Type + "/" + ch.v.ID + "/_history/" + strconv.FormatInt(ch.v.VersionID, 10)
	}
	return e
}

// batch runs each entry on its own, as if it came alone, and answers each
// with its own status.
func (s *Server) batch(w http.ResponseWriter, r *http.Request, b *bundleIn) error {
	out := bundleOut{ResourceType: "Bundle", Type: "batch-response", Entry: make([]entryOut, len(b.Entry))}
	for i := range b.Entry {
		out.Entry[i] = s.subRequest(r, b, i)
	}
	ledgerIndexes(w, "", out.Entry)
	s.writeJSON(w, r, http.StatusOK, out)
	return nil
}

// subRequest runs entry i of b through the router as a request of its
// own and turns the answer into a response entry.
func (s *Server) subRequest(r *http.Request, b *bundleIn, i int) entryOut {
	e := b.Entry[i]
	fail := func(err error) entryOut {
		status, issues := s.classify(r, &entryError{index: i, err: err})
		oo, _ := json.Marshal(outcome(issues)) // plain structs always marshal
		return entryOut{Response: &entryResponse{Status: strconv.Itoa(status) + " " + http.StatusText(status), Outcome: oo}}
	}
	if e.Request == nil || e.Request.Method == "" || e.Request.URL == "" {
		return fail(reqErr(errInvalid, "required", "an entry needs request.method and request.url"))
	}
	method := strings.ToUpper(e.Request.Method)
	target := strings.TrimPrefix(e.Request.URL, s.baseURL(r))
	if !strings.HasPrefix(target, "/") {
		target = "/" + target
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return fail(reqErr(errInvalid, "invalid", "request.url %q is not a URL", e.Request.URL))
	}
	if u.Path == "/" {
		return fail(reqErr(errInvalid, "not-supported", "an entry cannot itself be a batch or transaction"))
	}
	// An entry names a FHIR interaction: on a type or a resource, or
	// the system's history and capabilities; not the ledger's, the
	// witness's or the authorization server's endpoints.
	if first, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/"); !fhir.IsResourceType(first) && first != "_history" && first != "metadata" {
		return fail(reqErr(errInvalid, "not-supported", "request.url %q is not a FHIR interaction", e.Request.URL))
	}
	var body io.Reader
	contentType := mediaFHIRJSON
	if method == http.MethodPatch {
		patch, err := s.entryPatch(e.Resource)
		if err != nil {
			return fail(err)
		}
		body, contentType = bytes.NewReader(patch), mediaJSONPatch
	} else if len(e.Resource) > 0 {
		body = bytes.NewReader(e.Resource)
	}
	// A fresh routing context: the outer request's would make the router
	// take this for a sub-router call.
	ctx := context.WithValue(r.Context(), chi.RouteCtxKey, nil)
	sub := httptest.NewRequestWithContext(ctx, method, u.RequestURI(), body)
	sub.Host = r.Host
	sub.TLS = r.TLS
	sub.Header.Set("Content-Type", contentType)
	for name, v := range map[string]string{"If-Match": e.Request.IfMatch, "If-None-Match": e.Request.IfNoneMatch,
		"If-Modified-Since": e.Request.IfModifiedSince, "If-None-Exist": e.Request.IfNoneExist, "Prefer": r.Header.Get("Prefer")} {
		if v != "" {
			sub.Header.Set(name, v)
		}
	}
	rec := httptest.NewRecorder()
	s.router.ServeHTTP(rec, sub)
	out := entryOut{Response: &entryResponse{
		Status:   strconv.Itoa(rec.Code) + " " + http.StatusText(rec.Code),
		Location: strings.TrimPrefix(rec.Header().Get("Location"), s.baseURL(r)+"/"),
		Etag:     rec.Header().Get("ETag"),
	}, ledger: rec.Header().Get("Ledger-Index")}
	if lm := rec.Header().Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			out.Response.LastModified = fhir.FormatInstant(t)
		}
	}
	if rec.Body.Len() > 0 {
		if rec.Code >= 400 {
			out.Response.Outcome = rec.Body.Bytes()
		} else {
			out.Resource = rec.Body.Bytes()
		}
	}
	return out
}
