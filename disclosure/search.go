package disclosure

import (
	"context"
	"strconv"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/consent"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
)

// Searches that leave out what the caller may not see, without a trace
// (docs/consent.md): a page is filled from the matches the caller may
// see, its links lead only where there is more of them, and the total
// counts only them. A hidden resource therefore changes nothing a caller
// can observe, but for the time it takes.

// maxGatedScan bounds the matches examined to fill one page, and the
// matches decided one by one to count a total; past it the page ends
// early (its next link goes on from where the scan stopped) or the total
// is left out.
const maxGatedScan = 10_000

// Page is what a search answer says besides its entries: the cursors of
// the pages after and before ("" for none) and the total (-1: not
// counted).
type Page struct {
	Next, Prev string
	Total      int
}

// Search adds one page of q's matches that the caller may see with
// interaction in (search-type, search-compartment), in mode "match". The
// query is narrowed to the caller's reach, its chains and _has criteria
// reach only what the caller could read (criteria.go), and the page,
// its links and its total hold only what the patients' consents permit.
// An emergency access reaches one patient: it may search that patient's
// compartment only.
func (r *Response) Search(ctx context.Context, q *fhir.SearchQuery, in auth.Interaction) (Page, error) {
	rc, err := reachOf(ctx, q.Type, in)
	if err != nil {
		return Page{}, err
	}
	if CallerOf(ctx).breakingGlass() {
		if q.Compartment == nil || q.Compartment.Type != "Patient" {
			return Page{}, forbidden("break-glass access reaches one patient: read their resources or search their compartment (/Patient/{id}/%s)", q.Type)
		}
		r.v.focus = q.Compartment.ID
	}
	filter, err := narrow(q, rc)
	if err != nil {
		return Page{}, err
	}
	if nothing, err := r.g.resolveCriteria(ctx, q); err != nil || nothing {
		out := Page{Total: -1}
		if q.Total != "none" && (q.Page == "" || q.Total != "") && !filter {
			out.Total = 0 // as searchGated would count
		}
		return out, err
	}
	page, err := r.g.searchGated(ctx, q, filter, in, &r.v)
	if err != nil {
		return Page{}, err
	}
	for i := range page.versions {
		v := &page.versions[i]
		r.add(v, "match", true)
		r.matches = append(r.matches, store.Key{Type: v.Type, ID: v.ID})
	}
	return Page{Next: page.next, Prev: page.prev, Total: page.total}, nil
}

// gatedPage is one page of a search as the caller may see it.
type gatedPage struct {
	versions   []store.Version
	next, prev string
	total      int // -1: not counted
}

// searchGated runs q and returns the page of resources the caller may see:
// those the scopes admit (checked one by one when filter is set) and the
// patients' consents permit, with exact links and, when asked, total. The
// consents' decisions, and the denials of the resources examined, go into
// v.
func (g *Gate) searchGated(ctx context.Context, q *fhir.SearchQuery, filter bool, in auth.Interaction, v *verdicts) (gatedPage, error) {
	out := gatedPage{total: -1}
	if q.Summary != "count" && q.Count > 0 {
		if err := g.fillPage(ctx, q, filter, in, v, &out); err != nil {
			return out, err
		}
	}
	if q.Total != "none" && (q.Page == "" || q.Total != "") && !filter {
		n, err := g.countPermitted(ctx, q, v)
		if err != nil {
			return out, err
		}
		out.total = n
	}
	return out, nil
}

// shownItem is a version on the page with the cursors around it.
type shownItem struct {
	v             store.Version
	after, before string
}

// fillPage fills out with one page of q's visible matches, in the
// direction q.Page asks, and the links around it.
func (g *Gate) fillPage(ctx context.Context, q *fhir.SearchQuery, filter bool, in auth.Interaction, v *verdicts, out *gatedPage) error {
	want := q.Count
	backward := store.CursorBackward(q.Page)
	budget := maxGatedScan
	shown, rest, err := g.scanVisible(ctx, q, want+1, &budget, filter, in, v)
	if err != nil {
		return err
	}
	more := len(shown) > want
	switch {
	case backward && more:
		shown = shown[len(shown)-want:]
		out.prev = shown[0].before
	case backward:
		out.prev = rest // the scan stopped early: go on before it
	case more:
		shown = shown[:want]
		out.next = shown[want-1].after
	default:
		out.next = rest
	}
	if len(shown) > 0 {
		if backward {
			out.next = shown[len(shown)-1].after
		} else if q.Page != "" {
			out.prev = shown[0].before // a page reached by a next link has visible matches before it
		}
	}
	for _, it := range shown {
		out.versions = append(out.versions, it.v)
	}
	return nil
}

// scanVisible reads batches of q's matches, in the direction q.Page
// asks, until it holds at least want the caller may see, or the matches
// end, or budget is spent (each match examined spends one). It returns
// them in search order, with the cursors around each, and the cursor
// where the scan stopped ("" when the matches ended).
func (g *Gate) scanVisible(ctx context.Context, q *fhir.SearchQuery, want int, budget *int, filter bool, in auth.Interaction, v *verdicts) ([]shownItem, string, error) {
	backward := store.CursorBackward(q.Page)
	batch := *q
	batch.Total = "none"
	var shown []shownItem
	for len(shown) < want && *budget > 0 {
		batch.Count = min(want, *budget)
		res, err := g.store.Search(ctx, &batch)
		if err != nil {
			return nil, "", err
		}
		*budget -= len(res.IDs)
		cursors := make(map[string]int, len(res.IDs))
		keys := make([]store.Key, len(res.IDs))
		for i, id := range res.IDs {
			cursors[id] = i
			keys[i] = store.Key{Type: q.Type, ID: id}
		}
		versions, err := g.store.ReadMany(ctx, keys)
		if err != nil {
			return nil, "", err
		}
		if filter {
			if versions, err = g.visible(ctx, in, versions); err != nil {
				return nil, "", err
			}
		}
		if versions, err = g.decide(ctx, versions, v); err != nil {
			return nil, "", err
		}
		got := make([]shownItem, len(versions))
		for i, ver := range versions {
			at := cursors[ver.ID]
			got[i] = shownItem{v: ver, after: res.After[at], before: res.Before[at]}
		}
		if backward {
			shown = append(got, shown...)
			batch.Page = res.Prev
		} else {
			shown = append(shown, got...)
			batch.Page = res.Next
		}
		if batch.Page == "" {
			return shown, "", nil
		}
	}
	return shown, batch.Page, nil
}

// source is where a scan of keys searches: the store, or a write
// transaction (a conditional write matches inside it).
type source interface {
	Search(ctx context.Context, q *fhir.SearchQuery) (*store.SearchResult, error)
}

// scanKeys is scanVisible for callers that need only which matches the caller
// may see, not their bodies (a criterion's matches, a conditional
// write's): it decides from the type, id and owner each match comes with,
// and reads the bodies only of patients whose policy looks at the
// resource (decideLight). It returns the keys seen, in search order, and
// the cursor where the scan stopped ("" when the matches ended).
func (g *Gate) scanKeys(ctx context.Context, src source, q *fhir.SearchQuery, want int, budget *int, filter bool, in auth.Interaction, v *verdicts) ([]store.Key, string, error) {
	batch := *q
	batch.Total, batch.Page = "none", ""
	var out []store.Key
	for len(out) < want && *budget > 0 {
		batch.Count = min(want, *budget)
		res, err := src.Search(ctx, &batch)
		if err != nil {
			return nil, "", err
		}
		*budget -= len(res.IDs)
		versions := make([]store.Version, len(res.IDs))
		for i, id := range res.IDs {
			versions[i] = store.Version{Type: q.Type, ID: id, Owner: res.Owners[i]}
		}
		if filter {
			if versions, err = g.visible(ctx, in, versions); err != nil {
				return nil, "", err
			}
		}
		if versions, err = g.decideLight(ctx, versions, v); err != nil {
			return nil, "", err
		}
		for _, ver := range versions {
			out = append(out, store.Key{Type: ver.Type, ID: ver.ID})
		}
		if res.Next == "" {
			return out, "", nil
		}
		batch.Page = res.Next
	}
	return out, batch.Page, nil
}

// decideLight is decide for versions known by type, id and owner alone:
// the bodies are read only of the patients whose policy decides by what
// a resource holds (codes, labels, dates), not of the others.
func (g *Gate) decideLight(ctx context.Context, versions []store.Version, v *verdicts) ([]store.Version, error) {
	pols, err := g.policiesOf(ctx, gated(ctx, versions), v)
	if err != nil {
		return nil, err
	}
	var need []store.Key
	for i := range versions {
		if pol := pols[patientOf(&versions[i])]; pol != nil && !pol.Uniform() {
			need = append(need, store.Key{Type: versions[i].Type, ID: versions[i].ID})
		}
	}
	if len(need) > 0 {
		read, err := g.store.ReadMany(ctx, need)
		if err != nil {
			return nil, err
		}
		byKey := make(map[store.Key]store.Version, len(read))
		for _, r := range read {
			byKey[store.Key{Type: r.Type, ID: r.ID}] = r
		}
		full := versions[:0:0]
		for _, ver := range versions {
			if pol := pols[patientOf(&ver)]; pol != nil && !pol.Uniform() {
				r, ok := byKey[store.Key{Type: ver.Type, ID: ver.ID}]
				if !ok {
					continue // deleted meanwhile
				}
				ver = r
			}
			full = append(full, ver)
		}
		versions = full
	}
	return g.decide(ctx, versions, v)
}

// countPermitted counts the matches of q the patients' consents let the
// caller see: one query counts the matches by patient; the matches of a
// patient whose policy decides all alike (no Consent, no redaction) are
// counted at once, and only the others are read and decided one by one.
// -1 when more than maxGatedScan of those would need deciding.
func (g *Gate) countPermitted(ctx context.Context, q *fhir.SearchQuery, v *verdicts) (int, error) {
	byOwner, err := g.store.CountByOwner(ctx, q)
	if err != nil {
		return 0, err
	}
	self := CallerOf(ctx).Self()
	var patients []string
	total := 0
	for owner, n := range byOwner {
		p, ok := cutPatient(owner)
		if !ok || p == self {
			total += n
			continue
		}
		patients = append(patients, p)
	}
	if len(patients) == 0 {
		return total, nil
	}
	pols, err := g.policiesOf(ctx, patients, v)
	if err != nil {
		return 0, err
	}
	req := g.consentRequest(ctx)
	breakGlass := CallerOf(ctx).breakingGlass()
	var oneByOne []string
	for _, p := range patients {
		pol := pols[p]
		if !pol.Uniform() {
			oneByOne = append(oneByOne, keys.PatientOwner(p))
			continue
		}
		// The decision depends on nothing of the resource.
		r := req
		r.BreakGlass = breakGlass && p == v.focus
		r.Resource = consent.Resource{Type: q.Type}
		if pol.Decide(&r).Permit {
			total += byOwner[keys.PatientOwner(p)]
		}
	}
	if len(oneByOne) == 0 {
		return total, nil
	}
	ids, err := g.store.MatchOwned(ctx, q, oneByOne, maxGatedScan)
	if err != nil {
		return 0, err
	}
	if len(ids) > maxGatedScan {
		return -1, nil
	}
	// What the page decided already is not read again.
	decided := map[string]bool{}
	for ref, d := range v.decided {
		if ref.Type == q.Type {
			decided[ref.ID] = d.Permit
		}
	}
	var keys []store.Key
	for _, id := range ids {
		permit, ok := decided[id]
		switch {
		case ok && permit:
			total++
		case !ok:
			keys = append(keys, store.Key{Type: q.Type, ID: id})
		}
	}
	versions, err := g.store.ReadMany(ctx, keys)
	if err != nil {
		return 0, err
	}
	// Counting discloses nothing and withholds nothing: its decisions are
	// not recorded.
	quiet := verdicts{policies: v.policies, focus: v.focus}
	permitted, err := g.decide(ctx, versions, &quiet)
	if err != nil {
		return 0, err
	}
	return total + len(permitted), nil
}

// cutPatient is the patient a key owner names.
func cutPatient(owner string) (string, bool) {
	const prefix = "Patient/"
	if len(owner) > len(prefix) && owner[:len(prefix)] == prefix {
		return owner[len(prefix):], true
	}
	return "", false
}

func formatIndex(n int64) string { return strconv.FormatInt(n, 10) }
