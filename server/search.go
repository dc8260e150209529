package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/go-chi/chi/v5"
)

// search is GET /{type} and POST /{type}/_search.
func (s *Server) search(w http.ResponseWriter, r *http.Request) error {
	typ := chi.URLParam(r, "type")
	params, err := s.searchParams(w, r)
	if err != nil {
		return err
	}
	q, err := fhir.ParseSearch(typ, params, s.searchOptions(r))
	if err != nil {
		return err
	}
	return s.answerSearch(w, r, q, params, "/"+typ, auth.SearchType)
}

// compartmentSearch is GET /Patient/{id}/{type}: a search of type within
// the patient's compartment.
func (s *Server) compartmentSearch(w http.ResponseWriter, r *http.Request) error {
	ctype, id, typ := chi.URLParam(r, "type"), chi.URLParam(r, "id"), chi.URLParam(r, "ctype")
	if ctype != "Patient" {
		return reqErr(errNotFound, "not-supported", "only the Patient compartment can be searched, not %s", ctype)
	}
	if !fhir.IsResourceType(typ) {
		return reqErr(errNotFound, "not-supported", "%q is not a FHIR R4 resource type", typ)
	}
	params := fhir.PatientCompartmentParams(typ)
	if params == nil && typ != "Patient" {
		return reqErr(errNotFound, "not-supported", "%s is not in the Patient compartment", typ)
	}
	q, err := fhir.ParseSearch(typ, r.URL.Query(), s.searchOptions(r))
	if err != nil {
		return err
	}
	q.Compartment = &fhir.Compartment{Type: "Patient", ID: id, Params: params}
	return s.answerSearch(w, r, q, r.URL.Query(), "/Patient/"+id+"/"+typ, auth.SearchCompartment)
}

// searchParams merges the query string with a POST's form body.
func (s *Server) searchParams(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	params := r.URL.Query()
	if r.Method != http.MethodPost {
		return params, nil
	}
	_, body, err := s.readBody(w, r, "application/x-www-form-urlencoded")
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, reqErr(errInvalid, "invalid", "malformed form body: %v", err)
	}
	for k, vs := range form {
		params[k] = append(params[k], vs...)
	}
	return params, nil
}

func (s *Server) searchOptions(r *http.Request) fhir.SearchOptions {
	return fhir.SearchOptions{
		Base:         s.baseURL(r),
		Strict:       slices.Contains(preferences(r), "handling=strict"),
		DefaultCount: DefaultPageSize,
		MaxCount:     MaxPageSize,
		MaxCriteria:  s.cfg.Limits.Criteria,
		MaxValues:    s.cfg.Limits.Values,
		MaxIncludes:  s.cfg.Limits.Includes,
	}
}

// answerSearch runs q through the gate (narrowed to what the caller
// may see, includes too) and answers with a searchset Bundle. path is
// where the search was asked (for the self and next links).
func (s *Server) answerSearch(w http.ResponseWriter, r *http.Request, q *fhir.SearchQuery, params url.Values, path string, in auth.Interaction) error {
	resp := s.gate.Respond("search", func(body []byte) []byte { return fhir.Subset(body, q.Summary, q.Elements) })
	page, err := resp.Search(r.Context(), q, in)
	if err != nil {
		return err
	}
	if q.Summary != "count" {
		if err := resp.Include(r.Context(), q); err != nil {
			return err
		}
	}
	shown, err := resp.Record(r.Context())
	if err != nil {
		return err
	}
	b := s.searchBundle(r, q, params, path, page.Total, page.Next, page.Prev)
	s.addEntries(r, &b, shown)
	setLedgerIndex(w, shown)
	s.writeJSON(w, r, http.StatusOK, b)
	return nil
}

// addEntries appends the searchset entries of what an answer shows.
func (s *Server) addEntries(r *http.Request, b *bundle, shown *disclosure.Shown) {
	base := s.baseURL(r)
	for _, e := range shown.Entries() {
		v := &e.Version
		b.Entry = append(b.Entry, bundleEntry{FullURL: base + "/" + v.Type + "/" + v.ID, Resource: json.RawMessage(v.Body), Search: &bundleSearch{Mode: e.Mode}})
	}
}

// searchBundle makes the searchset Bundle's frame: total, links, and an
// OperationOutcome entry for parameters that were ignored.
func (s *Server) searchBundle(r *http.Request, q *fhir.SearchQuery, params url.Values, path string, total int, next, prev string) bundle {
	base := s.baseURL(r)
	b := bundle{ResourceType: "Bundle", Type: "searchset"}
	if total >= 0 {
		b.Total = &total
	}
	self := url.Values{}
	for k, vs := range params {
		self[k] = vs
	}
	b.Link = append(b.Link, bundleLink{Relation: "self", URL: base + path + queryString(self)})
	for _, l := range []struct{ rel, page string }{{"next", next}, {"previous", prev}} {
		if l.page != "" {
			self.Set("_page", l.page)
			b.Link = append(b.Link, bundleLink{Relation: l.rel, URL: base + path + queryString(self)})
		}
	}
	if len(q.Ignored) > 0 {
		oo, _ := json.Marshal(outcome(q.Ignored)) // plain structs always marshal
		b.Entry = append(b.Entry, bundleEntry{Resource: oo, Search: &bundleSearch{Mode: "outcome"}})
	}
	return b
}

func queryString(v url.Values) string {
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// everything is GET /Patient/{id}/$everything: the patient's data and
// the resources it refers to that are no patient's data, paged by type
// and id with a cursor (disclosure.Response.Everything). _type narrows
// the types, _since the time of last update.
func (s *Server) everything(w http.ResponseWriter, r *http.Request) error {
	typ, id := chi.URLParam(r, "type"), chi.URLParam(r, "id")
	if typ != "Patient" {
		return reqErr(errNotFound, "not-supported", "$everything is supported on Patient only")
	}
	params := r.URL.Query()
	q := disclosure.EverythingQuery{Page: params.Get("_page")}
	if t := params.Get("_type"); t != "" {
		q.Types = strings.Split(t, ",")
	}
	var err error
	if q.Count, err = pageSize(params); err != nil {
		return err
	}
	if v := params.Get("_since"); v != "" {
		t, err := fhir.ParseInstantParam(v)
		if err != nil {
			return reqErr(errInvalid, "invalid", "_since: %v", err)
		}
		q.Since = t.Add(-time.Microsecond) // _since includes its instant
	}
	resp := s.gate.Respond("everything", nil)
	next, err := resp.Everything(r.Context(), id, q)
	if err != nil {
		return err
	}
	shown, err := resp.Record(r.Context())
	if err != nil {
		return err
	}
	b := s.searchBundle(r, &fhir.SearchQuery{Type: typ}, params, "/Patient/"+id+"/$everything", -1, next, "")
	s.addEntries(r, &b, shown)
	setLedgerIndex(w, shown)
	s.writeJSON(w, r, http.StatusOK, b)
	return nil
}

// pageSize reads a positive _count (default DefaultPageSize, at most
// MaxPageSize) for the operations that page by their own cursor.
func pageSize(params url.Values) (int, error) {
	c := params.Get("_count")
	if c == "" {
		return DefaultPageSize, nil
	}
	n, err := strconv.Atoi(c)
	if err != nil || n < 1 {
		return 0, reqErr(errInvalid, "invalid", "_count must be a positive integer, not %q", c)
	}
	return min(n, MaxPageSize), nil
}
