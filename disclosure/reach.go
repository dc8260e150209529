package disclosure

import (
	"context"
	"net/url"
	"slices"
	"strings"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
)

// What SMART scopes let a caller reach (docs/auth.md). A scope grants an
// interaction on a resource type, possibly confined to the token's
// patient (patient/ scopes) or to the resources matching a query
// (patient/Observation.rs?category=laboratory). Searches are narrowed in
// SQL where one rule applies; otherwise, and for reads, includes and
// history, each version is checked.
//
// A patient rule reaches the versions of its patient's data (their data
// key's owner is the patient, keys.OwnerOf) and, of the types that are
// never patient data by definition, the provider's own (Organizations,
// Practitioners, Medications...).

// reach is what one interaction on one resource type may see.
type reach struct {
	typ string
	// all says no filtering is needed.
	all bool
	// patient is the token's patient, for patient rules.
	patient string
	// rules are the alternatives: a resource is reachable when it
	// satisfies one (its query, and for a patient rule its owner).
	rules []auth.Rule
}

// reachOf says what the caller in ctx may reach with interaction in on
// typ ("*" for the whole system), or refuses with ErrForbidden.
func reachOf(ctx context.Context, typ string, in auth.Interaction) (reach, error) {
	c := CallerOf(ctx)
	g, ok := c.Allow(typ, in)
	if !ok {
		what := typ
		if typ == "*" || typ == "" {
			what = "all resource types"
		}
		return reach{}, forbidden("the access token's scopes do not allow %s on %s", in, what)
	}
	rc := reach{typ: typ, all: g.Unconstrained(), patient: c.Patient(), rules: g.Rules}
	if !rc.all && g.PatientOnly() && rc.patient == "" && fhir.PatientData(typ) {
		return reach{}, forbidden("the access token's patient/ scopes need a patient in context, and it has none")
	}
	return rc, nil
}

// Reach refuses with ErrForbidden when the caller's scopes allow
// interaction in on typ for no resource at all.
func Reach(ctx context.Context, typ string, in auth.Interaction) error {
	_, err := reachOf(ctx, typ, in)
	return err
}

// patientOf is the patient whose data version v is ("" for none): the
// owner of its data key.
func patientOf(v *store.Version) string {
	p, _ := strings.CutPrefix(v.Owner, "Patient/")
	if p == v.Owner {
		return ""
	}
	return p
}

// ownedBy reports whether a patient rule of patient reaches version v:
// it is that patient's data, or the provider's own of a type that is
// never patient data. A deleted version, which has no body, is judged by
// the owner its key had.
func ownedBy(v *store.Version, patient string) bool {
	if patient == "" {
		return false
	}
	if v.Owner == keys.PatientOwner(patient) {
		return true
	}
	return v.Owner == keys.ProviderOwner && !fhir.PatientCompartmentType(v.Type)
}

// visible keeps the versions the caller may see with interaction in, in
// their order. Types the caller may not reach at all are dropped whole.
func (g *Gate) visible(ctx context.Context, in auth.Interaction, versions []store.Version) ([]store.Version, error) {
	reaches := map[string]reach{}
	var ids map[string][]string // by type: ids to test against queries
	for i := range versions {
		typ := versions[i].Type
		rc, seen := reaches[typ]
		if !seen {
			rc, _ = reachOf(ctx, typ, in)
			reaches[typ] = rc
		}
		if rc.typ != "" && !rc.all && slices.ContainsFunc(rc.rules, func(r auth.Rule) bool { return r.Query != nil }) {
			if ids == nil {
				ids = map[string][]string{}
			}
			ids[typ] = append(ids[typ], versions[i].ID)
		}
	}
	// matched[typ][rule index][id]: the resources meeting a rule's query.
	matched := map[string][]map[string]bool{}
	for typ, list := range ids {
		rc := reaches[typ]
		m := make([]map[string]bool, len(rc.rules))
		for i, rule := range rc.rules {
			if rule.Query == nil {
				continue
			}
			var err error
			if m[i], err = g.matching(ctx, typ, rule.Query, list); err != nil {
				return nil, err
			}
		}
		matched[typ] = m
	}
	out := versions[:0:0]
	for i := range versions {
		v := &versions[i]
		rc := reaches[v.Type]
		if rc.typ == "" {
			continue
		}
		if rc.all {
			out = append(out, *v)
			continue
		}
		for ri, rule := range rc.rules {
			if rule.Context == auth.Patient && !ownedBy(v, rc.patient) {
				continue
			}
			if rule.Query != nil && !matched[v.Type][ri][v.ID] {
				continue
			}
			out = append(out, *v)
			break
		}
	}
	return out, nil
}

// maxIDsPerCheck bounds the ids one query check sends.
const maxIDsPerCheck = 200

// matching returns which of ids of type typ match a scope's query
// constraint, through the store's own search, so that a constraint means
// what the same search would. The query is the token's, not a client's
// criteria: it is run as it is.
func (g *Gate) matching(ctx context.Context, typ string, query url.Values, ids []string) (map[string]bool, error) {
	q, err := fhir.ParseSearch(typ, query, fhir.SearchOptions{Strict: true})
	if err != nil {
		return map[string]bool{}, nil // a constraint that does not apply to typ matches nothing
	}
	return g.matchIDs(ctx, q, ids)
}

// matchIDs returns which of ids meet q's criteria.
func (g *Gate) matchIDs(ctx context.Context, q *fhir.SearchQuery, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	for start := 0; start < len(ids); start += maxIDsPerCheck {
		chunk := ids[start:min(start+maxIDsPerCheck, len(ids))]
		qq := fhir.SearchQuery{Type: q.Type, Count: len(chunk), Total: "none",
			Where: append(slices.Clip(q.Where), fhir.Criterion{Code: "_id", Type: "token"})}
		// Added, not set: a criterion on _id itself still holds (two
		// occurrences of a parameter must both match).
		for _, id := range chunk {
			qq.Where[len(qq.Where)-1].Values = append(qq.Where[len(qq.Where)-1].Values, fhir.SearchValue{Code: id, AnySystem: true})
		}
		res, err := g.store.Search(ctx, &qq)
		if err != nil {
			return nil, err
		}
		for _, id := range res.IDs {
			out[id] = true
		}
	}
	return out, nil
}

// checkVisible refuses with ErrForbidden when the caller may not see v
// with interaction in.
func (g *Gate) checkVisible(ctx context.Context, in auth.Interaction, v *store.Version) error {
	if _, err := reachOf(ctx, v.Type, in); err != nil {
		return err
	}
	seen, err := g.visible(ctx, in, []store.Version{*v})
	if err != nil {
		return err
	}
	if len(seen) == 0 {
		return forbidden("%s/%s is outside what the access token's scopes reach", v.Type, v.ID)
	}
	return nil
}

// narrow applies the caller's reach to a search: a single rule becomes
// part of the query (the patient's data, the scope's criteria), so that
// totals and pages stay exact; several rules leave the query as it is and
// filter must check each match (then no total is given).
func narrow(q *fhir.SearchQuery, rc reach) (filter bool, err error) {
	if rc.all {
		return false, nil
	}
	if len(rc.rules) > 1 {
		if q.Summary == "count" {
			return false, forbidden("the access token's scopes reach %s only in parts; _summary=count cannot be answered", q.Type)
		}
		q.Total = "none"
		return true, nil
	}
	rule := rc.rules[0]
	if rule.Query != nil {
		sq, err := fhir.ParseSearch(q.Type, rule.Query, fhir.SearchOptions{Strict: true})
		if err != nil {
			return false, forbidden("the access token's scope for %s has a constraint that does not apply to it", q.Type)
		}
		q.Where = append(q.Where, sq.Where...)
	}
	if rule.Context == auth.Patient {
		if q.Compartment != nil && q.Compartment.ID != rc.patient {
			return false, forbidden("the access token is confined to its patient's data")
		}
		q.Owners = []string{keys.PatientOwner(rc.patient)}
		if !fhir.PatientCompartmentType(q.Type) {
			q.Owners = append(q.Owners, keys.ProviderOwner)
		}
	}
	return false, nil
}
