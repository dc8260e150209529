package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/store"
	"github.com/go-chi/chi/v5"
)

// read is GET /{type}/{id}. It answers 304 to a matching If-None-Match or
// an If-Modified-Since no older than the version.
func (s *Server) read(w http.ResponseWriter, r *http.Request) error {
	typ, id := chi.URLParam(r, "type"), chi.URLParam(r, "id")
	if !idPattern.MatchString(id) {
		return store.ErrNotFound
	}
	resp := s.gate.Respond("read", nil)
	meta, err := resp.Read(r.Context(), typ, id)
	if err != nil {
		return err
	}
	if notModified(r, meta) {
		setVersionHeaders(w, meta.VersionID, meta.Updated)
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	shown, err := resp.Record(r.Context())
	if err != nil {
		return err
	}
	setLedgerIndex(w, shown)
	v := shown.Entries()[0].Version
	s.writeVersion(w, r, http.StatusOK, &v, "")
	return nil
}

// setLedgerIndex names the disclosure records of an answer.
func setLedgerIndex(w http.ResponseWriter, shown *disclosure.Shown) {
	if idx := shown.LedgerIndex(); idx != "" {
		w.Header().Set("Ledger-Index", idx)
	}
}

func notModified(r *http.Request, v disclosure.Meta) bool {
	if h := r.Header.Get("If-None-Match"); h != "" {
		n, ok := parseETag(h)
		return ok && n == v.VersionID
	}
	if h := r.Header.Get("If-Modified-Since"); h != "" {
		t, err := http.ParseTime(h)
		return err == nil && !v.Updated.Truncate(time.Second).After(t)
	}
	return false
}

// vread is GET /{type}/{id}/_history/{vid}; a version that is a delete
// answers 410.
func (s *Server) vread(w http.ResponseWriter, r *http.Request) error {
	typ, id := chi.URLParam(r, "type"), chi.URLParam(r, "id")
	vid, err := strconv.ParseInt(chi.URLParam(r, "vid"), 10, 64)
	if err != nil || vid < 1 || !idPattern.MatchString(id) {
		return store.ErrNotFound
	}
	resp := s.gate.Respond("vread", nil)
	if err := resp.VRead(r.Context(), typ, id, vid); err != nil {
		return err
	}
	shown, err := resp.Record(r.Context())
	if err != nil {
		return err
	}
	setLedgerIndex(w, shown)
	v := shown.Entries()[0].Version
	s.writeVersion(w, r, http.StatusOK, &v, "")
	return nil
}

func (s *Server) historySystem(w http.ResponseWriter, r *http.Request) error {
	return s.history(w, r, store.HistoryQuery{}, auth.HistorySystem)
}

func (s *Server) historyType(w http.ResponseWriter, r *http.Request) error {
	return s.history(w, r, store.HistoryQuery{Type: chi.URLParam(r, "type")}, auth.HistoryType)
}

func (s *Server) historyInstance(w http.ResponseWriter, r *http.Request) error {
	typ, id := chi.URLParam(r, "type"), chi.URLParam(r, "id")
	if !idPattern.MatchString(id) {
		return store.ErrNotFound
	}
	return s.history(w, r, store.HistoryQuery{Type: typ, ID: id}, auth.HistoryInstance)
}

// history answers a history interaction with a Bundle of type history,
// newest first, paged with an opaque cursor (_page) so pages stay correct
// while new versions arrive. Versions the caller's scopes do not reach
// are left out (the page's cursor still moves past them).
func (s *Server) history(w http.ResponseWriter, r *http.Request, q store.HistoryQuery, in auth.Interaction) error {
	typ := q.Type
	if typ == "" {
		typ = "*"
	}
	if err := disclosure.Reach(r.Context(), typ, in); err != nil {
		return err
	}
	params := r.URL.Query()
	count := DefaultPageSize
	for k, vs := range params {
		v := vs[0]
		switch k {
		case "_count":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return reqErr(errInvalid, "invalid", "_count must be a non-negative integer, not %q", v)
			}
			count = min(n, MaxPageSize)
		case "_since":
			t, err := fhir.ParseInstantParam(v)
			if err != nil {
				return reqErr(errInvalid, "invalid", "_since: %v", err)
			}
			q.Since = t
		case "_page":
			c, err := store.ParseCursor(v)
			if err != nil {
				return err
			}
			q.After = c
		case "_format", "_pretty":
		case "_at", "_list", "_sort":
			return reqErr(errInvalid, "not-supported", "history parameter %s is not supported", k)
		default:
			return reqErr(errInvalid, "not-supported", "unknown history parameter %s", k)
		}
	}
	resp := s.gate.Respond("history", nil)
	next, err := resp.History(r.Context(), q, count, in)
	if err != nil {
		return err
	}
	shown, err := resp.Record(r.Context())
	if err != nil {
		return err
	}
	base := s.baseURL(r)
	b := bundle{ResourceType: "Bundle", Type: "history"}
	b.Link = append(b.Link, bundleLink{Relation: "self", URL: base + r.URL.RequestURI()})
	if next != "" {
		query := url.Values{}
		for k, vs := range params {
			if k != "_page" {
				query[k] = vs
			}
		}
		query.Set("_page", next)
		b.Link = append(b.Link, bundleLink{Relation: "next", URL: base + r.URL.Path + "?" + query.Encode()})
	}
	b.Entry = make([]bundleEntry, 0, len(shown.Entries()))
	for _, e := range shown.Entries() {
		b.Entry = append(b.Entry, historyEntry(base, &e.Version))
	}
	setLedgerIndex(w, shown)
	s.writeJSON(w, r, http.StatusOK, b)
	return nil
}

func historyEntry(base string, v *store.Version) bundleEntry {
	e := bundleEntry{
		FullURL:  base + "/" + v.Type + "/" + v.ID,
		Request:  &bundleRequest{Method: v.Method, URL: v.Type + "/" + v.ID},
		Response: &bundleResponse{Etag: etag(v.VersionID), LastModified: fhir.FormatInstant(v.Updated)},
	}
	switch {
	case v.Deleted:
		e.Response.Status = "204 No Content"
	case v.Method == http.MethodPost:
		e.Request.URL = v.Type
		e.Response.Status = "201 Created"
	case v.VersionID == 1:
		e.Response.Status = "201 Created"
	default:
		e.Response.Status = "200 OK"
	}
	if !v.Deleted {
		e.Resource = json.RawMessage(v.Body)
	}
	return e
}

func isDeleted(err error) bool { return errors.Is(err, store.ErrDeleted) }

// bundle is the JSON of the Bundles the server builds; resources are
// embedded as stored.
type bundle struct {
	ResourceType string        `json:"resourceType"`
	Type         string        `json:"type"`
	Timestamp    string        `json:"timestamp,omitempty"`
	Total        *int          `json:"total,omitempty"`
	Link         []bundleLink  `json:"link,omitempty"`
	Entry        []bundleEntry `json:"entry,omitempty"`
}

type bundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type bundleEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *bundleSearch   `json:"search,omitempty"`
	Request  *bundleRequest  `json:"request,omitempty"`
	Response *bundleResponse `json:"response,omitempty"`
}

type bundleSearch struct {
	Mode string `json:"mode"`
}

type bundleRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type bundleResponse struct {
	Status       string `json:"status"`
	Etag         string `json:"etag,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
}
