package server

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/store"
	"github.com/go-chi/chi/v5"
)

// Bounds on what one search answer may pull in through _include and
// _revinclude.
const (
	maxIncludeRounds = 4
	maxIncluded      = 1000
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
	}
}

// answerSearch runs q, narrowed to what the caller's scopes reach, and
// answers with a searchset Bundle. path is where the search was asked
// (for the self and next links).
func (s *Server) answerSearch(w http.ResponseWriter, r *http.Request, q *fhir.SearchQuery, params url.Values, path string, in auth.Interaction) error {
	rc, err := reachOf(r.Context(), q.Type, in)
	if err != nil {
		return err
	}
	filter, err := narrow(q, rc)
	if err != nil {
		return err
	}
	var b bundle
	if compartmentType(q.Type) {
		// Patient data: the page and total hold only what the consents let
		// the caller see.
		var v verdicts
		page, err := s.searchGated(r.Context(), q, filter, in, &v)
		if err != nil {
			return err
		}
		b = s.searchBundle(r, q, params, path, page.total, page.next, page.prev)
		b.verdicts = v
		if q.Summary != "count" {
			if err := s.addFound(r, &b, q, page.versions); err != nil {
				return err
			}
		}
	} else {
		res, err := s.store.Search(r.Context(), q)
		if err != nil {
			return err
		}
		b = s.searchBundle(r, q, params, path, res.Total, res.Next, res.Prev)
		if q.Summary != "count" {
			keys := make([]store.Key, len(res.IDs))
			for i, id := range res.IDs {
				keys[i] = store.Key{Type: q.Type, ID: id}
			}
			check := auth.Interaction(0)
			if filter {
				check = in
			}
			versions, err := s.readChecked(r, &b, keys, check)
			if err != nil {
				return err
			}
			if err := s.addFound(r, &b, q, versions); err != nil {
				return err
			}
		}
	}
	if err := s.disclose(w, r, "search", b.verdicts.withDenials(b.disclosed)); err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, b)
	return nil
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

// addFound appends the matches found, then what _include and
// _revinclude bring from them that the caller may read and the consents
// permit.
func (s *Server) addFound(r *http.Request, b *bundle, q *fhir.SearchQuery, versions []store.Version) error {
	base := s.baseURL(r)
	seen := make(map[store.Key]bool, len(versions))
	matches := make([]store.Key, len(versions))
	for i := range versions {
		v := &versions[i]
		matches[i] = store.Key{Type: v.Type, ID: v.ID}
		seen[matches[i]] = true
		b.add(s.searchEntry(base, v, "match", q), v)
	}
	included, err := s.includes(r, b, q, matches, seen)
	if err != nil {
		return err
	}
	for i := range included {
		b.add(s.searchEntry(base, &included[i], "include", q), &included[i])
	}
	return nil
}

// readChecked reads the live resources among keys (or takes versions
// read already) and keeps, in order, those the caller may see with
// interaction check (scopes checked when it is not 0) and the consents
// permit, noting the consents' decisions in b.
func (s *Server) readChecked(r *http.Request, b *bundle, keys []store.Key, check auth.Interaction, versions ...store.Version) ([]store.Version, error) {
	if len(keys) > 0 {
		read, err := s.store.ReadMany(r.Context(), keys)
		if err != nil {
			return nil, err
		}
		versions = append(versions, read...)
	}
	var err error
	if check != 0 {
		if versions, err = s.visible(r.Context(), check, versions); err != nil {
			return nil, err
		}
	}
	return s.gate(r.Context(), versions, &b.verdicts)
}

// addVersions reads the live resources among keys and appends them with
// the given search mode, those the caller may see with interaction check
// when it is not 0; it returns the keys added.
func (s *Server) addVersions(r *http.Request, b *bundle, q *fhir.SearchQuery, keys []store.Key, mode string, check auth.Interaction) (map[store.Key]bool, error) {
	versions, err := s.readChecked(r, b, keys, check)
	if err != nil {
		return nil, err
	}
	base := s.baseURL(r)
	seen := make(map[store.Key]bool, len(versions))
	for i := range versions {
		v := &versions[i]
		seen[store.Key{Type: v.Type, ID: v.ID}] = true
		b.add(s.searchEntry(base, v, mode, q), v)
	}
	return seen, nil
}

// add appends the entry of version v and records its disclosure.
func (b *bundle) add(e bundleEntry, v *store.Version) {
	b.Entry = append(b.Entry, e)
	b.disclosed = append(b.disclosed, b.verdicts.annotate(disclosureOf(v, e.Resource), v))
}

func (s *Server) searchEntry(base string, v *store.Version, mode string, q *fhir.SearchQuery) bundleEntry {
	return bundleEntry{
		FullURL:  base + "/" + v.Type + "/" + v.ID,
		Resource: json.RawMessage(fhir.Subset(v.Body, q.Summary, q.Elements)),
		Search:   &bundleSearch{Mode: mode},
	}
}

// includes follows _include and _revinclude from the matches, repeating
// the :iterate ones over what was added, within maxIncludeRounds and
// maxIncluded. What each round finds is kept, and followed further, only
// where the caller may read it and the consents permit.
func (s *Server) includes(r *http.Request, b *bundle, q *fhir.SearchQuery, matches []store.Key, seen map[store.Key]bool) ([]store.Version, error) {
	if len(q.Include) == 0 && len(q.RevInclude) == 0 {
		return nil, nil
	}
	var out []store.Version
	from := matches
	for round := 0; round < maxIncludeRounds && len(from) > 0 && len(out) < maxIncluded; round++ {
		var found []store.Key
		for _, inc := range q.Include {
			if round > 0 && !inc.Iterate {
				continue
			}
			src := keysOfType(from, inc.SourceType)
			keys, err := s.store.References(r.Context(), src, inc.Param, inc.TargetType)
			if err != nil {
				return nil, err
			}
			found = append(found, keys...)
		}
		for _, inc := range q.RevInclude {
			if round > 0 && !inc.Iterate {
				continue
			}
			keys, err := s.store.Referrers(r.Context(), from, inc.SourceType, inc.Param)
			if err != nil {
				return nil, err
			}
			found = append(found, keys...)
		}
		var fresh []store.Key
		for _, k := range found {
			if !seen[k] && len(out)+len(fresh) < maxIncluded {
				seen[k] = true
				fresh = append(fresh, k)
			}
		}
		versions, err := s.readChecked(r, b, fresh, auth.Read)
		if err != nil {
			return nil, err
		}
		out = append(out, versions...)
		from = nil
		for _, v := range versions {
			from = append(from, store.Key{Type: v.Type, ID: v.ID})
		}
	}
	return out, nil
}

func keysOfType(keys []store.Key, typ string) []store.Key {
	var out []store.Key
	for _, k := range keys {
		if k.Type == typ {
			out = append(out, k)
		}
	}
	return out
}

// everything is GET /Patient/{id}/$everything: the patient, every
// resource in their compartment, and the resources those refer to, paged
// type by type with a cursor. It is authorized as a compartment search of
// each type it returns: the types the caller's scopes do not reach are
// left out, and the resources of partly reached ones checked one by one.
func (s *Server) everything(w http.ResponseWriter, r *http.Request) error {
	typ, id := chi.URLParam(r, "type"), chi.URLParam(r, "id")
	if typ != "Patient" {
		return reqErr(errNotFound, "not-supported", "$everything is supported on Patient only")
	}
	if _, err := reachOf(r.Context(), typ, auth.SearchCompartment); err != nil {
		return err
	}
	patient, err := s.store.Read(r.Context(), typ, id)
	if err != nil {
		return err
	}
	if err := s.checkVisible(r.Context(), auth.SearchCompartment, patient); err != nil {
		return err
	}
	params := r.URL.Query()
	types := compartmentTypes()
	if t := params.Get("_type"); t != "" {
		want := strings.Split(t, ",")
		types = slices.DeleteFunc(types, func(x string) bool { return !slices.Contains(want, x) })
	}
	types = slices.DeleteFunc(types, func(t string) bool {
		_, err := reachOf(r.Context(), t, auth.SearchCompartment)
		return err != nil
	})
	count, err := pageSize(params)
	if err != nil {
		return err
	}
	var since []fhir.Criterion
	if v := params.Get("_since"); v != "" {
		sq, err := fhir.ParseSearch(typ, url.Values{"_lastUpdated": {"ge" + v}}, fhir.SearchOptions{})
		if err != nil {
			return err
		}
		since = sq.Where
	}
	at, inner, err := parseEverythingPage(params.Get("_page"), len(types))
	if err != nil {
		return err
	}
	// The page is filled type by type with what the caller may see, one
	// more than it holds telling whether a next page has any.
	var v verdicts
	var shown []everythingItem
	budget := maxGatedScan
	next := ""
	for ; at < len(types) && len(shown) <= count; at, inner = at+1, "" {
		t := types[at]
		q := &fhir.SearchQuery{Type: t, Count: count, Total: "none", Where: since, Page: inner,
			Compartment: &fhir.Compartment{Type: "Patient", ID: id, Params: fhir.PatientCompartmentParams(t)}}
		items, rest, err := s.scanVisible(r.Context(), q, count+1-len(shown), &budget, true, auth.SearchCompartment, &v)
		if err != nil {
			return err
		}
		for _, it := range items {
			shown = append(shown, everythingItem{shownItem: it, at: at})
		}
		if len(shown) > count {
			break
		}
		if rest != "" {
			next = everythingPage(at, rest) // the scan stopped early: go on from there
			break
		}
		if budget <= 0 && at+1 < len(types) {
			next = everythingPage(at+1, "")
			break
		}
	}
	if len(shown) > count {
		last := shown[count-1]
		next = everythingPage(last.at, last.after)
		shown = shown[:count]
	}
	q := &fhir.SearchQuery{Type: typ}
	b := s.searchBundle(r, q, params, "/Patient/"+id+"/$everything", -1, next, "")
	b.verdicts = v
	base := s.baseURL(r)
	seen := make(map[store.Key]bool, len(shown))
	matches := make([]store.Key, len(shown))
	for i := range shown {
		ver := &shown[i].v
		matches[i] = store.Key{Type: ver.Type, ID: ver.ID}
		seen[matches[i]] = true
		b.add(s.searchEntry(base, ver, "match", q), ver)
	}
	// Resources the page refers to outside the compartment (practitioners,
	// organizations, medications...) come along once.
	refs, err := s.store.References(r.Context(), matches, "*", "")
	if err != nil {
		return err
	}
	var extra []store.Key
	for _, k := range refs {
		if !seen[k] && !compartmentType(k.Type) {
			extra = append(extra, k)
		}
	}
	if _, err := s.addVersions(r, &b, q, extra, "include", auth.Read); err != nil {
		return err
	}
	if err := s.disclose(w, r, "everything", b.verdicts.withDenials(b.disclosed)); err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, b)
	return nil
}

// everythingItem is a resource on a $everything page and the index of
// its type.
type everythingItem struct {
	shownItem
	at int
}

// The $everything cursor is the index of the type being listed and that
// type's search cursor.
func everythingPage(at int, inner string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(at) + ":" + inner))
}

func parseEverythingPage(page string, ntypes int) (int, string, error) {
	if page == "" {
		return 0, "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(page)
	if err == nil {
		idx, inner, ok := strings.Cut(string(raw), ":")
		if at, err := strconv.Atoi(idx); ok && err == nil && at >= 0 && at < ntypes {
			return at, inner, nil
		}
	}
	return 0, "", &store.CriteriaError{Msg: "malformed paging cursor; start again"}
}

// compartmentTypes lists Patient and the types in the Patient
// compartment, sorted.
func compartmentTypes() []string {
	var out []string
	for _, t := range fhir.ResourceTypes() {
		if t == "Patient" || fhir.PatientCompartmentParams(t) != nil {
			out = append(out, t)
		}
	}
	return out
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
