package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ehrledger/ehrledger/auth"
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
	if _, err := reachOf(r.Context(), typ, auth.Read); err != nil {
		return err
	}
	v, err := s.store.Read(r.Context(), typ, id)
	if err != nil {
		return err
	}
	if err := s.checkVisible(r.Context(), auth.Read, v); err != nil {
		return err
	}
	d, err := s.gateOne(w, r, "read", v)
	if err != nil {
		return err
	}
	if notModified(r, v) {
		setVersionHeaders(w, v.VersionID, v.Updated)
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if err := s.disclose(w, r, "read", []disclosure{d}); err != nil {
		return err
	}
	s.writeVersion(w, r, http.StatusOK, v, "")
	return nil
}

func notModified(r *http.Request, v *store.Version) bool {
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
	if _, err := reachOf(r.Context(), typ, auth.VRead); err != nil {
		return err
	}
	v, err := s.store.VRead(r.Context(), typ, id, vid)
	if err != nil {
		return err
	}
	if !v.Erased {
		if err := s.checkVisible(r.Context(), auth.VRead, v); err != nil {
			return err
		}
	}
	switch {
	case v.Erased:
		return &store.ErasedError{Type: typ, ID: id, Owner: v.Owner}
	case v.Deleted:
		return &store.DeletedError{Type: typ, ID: id, VersionID: v.VersionID, Updated: v.Updated}
	}
	d, err := s.gateOne(w, r, "vread", v)
	if err != nil {
		return err
	}
	if err := s.disclose(w, r, "vread", []disclosure{d}); err != nil {
		return err
	}
	s.writeVersion(w, r, http.StatusOK, v, "")
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
	if _, err := reachOf(r.Context(), typ, auth.HistoryInstance); err != nil {
		return err
	}
	cur, err := s.store.Read(r.Context(), typ, id)
	switch {
	case err == nil:
		// The resource as it is now decides, as for a read.
		if err := s.checkVisible(r.Context(), auth.HistoryInstance, cur); err != nil {
			return err
		}
	case !isDeleted(err):
		return err // 404 for a resource that never existed; a deleted one has history
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
	if _, err := reachOf(r.Context(), typ, in); err != nil {
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
	var verdicts verdicts
	shown, next, err := s.historyPage(r.Context(), q, count, in, &verdicts)
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
	b.Entry = make([]bundleEntry, 0, len(shown))
	for i := range shown {
		v := &shown[i]
		b.Entry = append(b.Entry, historyEntry(base, v))
		if !v.Deleted {
			b.disclosed = append(b.disclosed, verdicts.annotate(disclosureOf(v, v.Body), v))
		}
	}
	if err := s.disclose(w, r, "history", verdicts.withDenials(b.disclosed)); err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, b)
	return nil
}

// historyPage reads versions past q.After, newest first, until it holds
// one more than count that the caller may see (scopes, consents; erased
// versions never), or the history ends, or maxGatedScan were read. It
// returns the page and the cursor of the next one, "" when nothing
// visible follows, so that leaving versions out shows in neither the
// page's size nor its links.
func (s *Server) historyPage(ctx context.Context, q store.HistoryQuery, count int, in auth.Interaction, v *verdicts) ([]store.Version, string, error) {
	if count == 0 {
		return nil, "", nil
	}
	var shown []store.Version
	for scanned := 0; ; {
		q.Limit = count + 1
		versions, err := s.store.History(ctx, q)
		if err != nil {
			return nil, "", err
		}
		scanned += len(versions)
		keep, err := s.visible(ctx, in, versions)
		if err != nil {
			return nil, "", err
		}
		if keep, err = s.gate(ctx, keep, v); err != nil {
			return nil, "", err
		}
		for _, ver := range keep {
			if !ver.Erased { // its data is gone
				shown = append(shown, ver)
			}
		}
		if len(shown) > count {
			shown = shown[:count]
			return shown, store.CursorOf(&shown[count-1]).String(), nil
		}
		if len(versions) < q.Limit {
			return shown, "", nil
		}
		q.After = store.CursorOf(&versions[len(versions)-1])
		if scanned >= maxGatedScan {
			return shown, q.After.String(), nil
		}
	}
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
	// disclosed lists the patient data the Bundle carries, for the ledger;
	// verdicts what the consents decided about it and what they withheld.
	disclosed []disclosure
	verdicts  verdicts
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
