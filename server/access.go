package server

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/store"
	"github.com/go-chi/chi/v5"
)

// What SMART scopes let a caller reach (docs/auth.md). A scope grants an
// interaction on a resource type, possibly confined to the token's patient
// compartment (patient/ scopes) or to the resources matching a query
// (patient/Observation.rs?category=laboratory). Searches are narrowed in
// SQL where one rule applies; otherwise, and for reads, includes and
// history, each resource is checked.

// reach is what one interaction on one resource type may see.
type reach struct {
	typ string
	// all says no filtering is needed.
	all bool
	// patient is the token's patient, for patient rules.
	patient string
	// rules are the alternatives: a resource is reachable when it
	// satisfies one (its query, and for a patient rule the compartment).
	rules []auth.Rule
}

// reachOf says what the caller may reach with interaction in on typ ("*"
// for the whole system), or refuses with 403.
func reachOf(ctx context.Context, typ string, in auth.Interaction) (reach, error) {
	c := callerOf(ctx)
	g, ok := c.allow(typ, in)
	if !ok {
		what := typ
		if typ == "*" || typ == "" {
			what = "all resource types"
		}
		return reach{}, forbidden("the access token's scopes do not allow %s on %s", in, what)
	}
	rc := reach{typ: typ, all: g.Unconstrained(), patient: c.patient(), rules: g.Rules}
	if !rc.all && g.PatientOnly() && rc.patient == "" && compartmentType(typ) {
		return reach{}, forbidden("the access token's patient/ scopes need a patient in context, and it has none")
	}
	return rc, nil
}

// compartmentType reports whether resources of typ can be patient data:
// Patient and the types of the Patient compartment. Other types (the
// provider's Organizations, Practitioners, Medications...) are reachable
// under patient/ scopes as under any other.
func compartmentType(typ string) bool {
	return typ == "Patient" || fhir.PatientCompartmentParams(typ) != nil
}

// inCompartment reports whether version v is in the compartment of
// patient (or of no patient's data at all). A deleted version, which has
// no body, is judged by the patient its key belonged to.
func inCompartment(v *store.Version, patient string) bool {
	if !compartmentType(v.Type) {
		return true
	}
	if patient == "" {
		return false
	}
	if v.Deleted || len(v.Body) == 0 {
		return v.Owner == "Patient/"+patient
	}
	idx, err := fhir.ExtractIndex(v.Type, v.Body)
	return err == nil && slices.Contains(idx.PatientCompartment, patient)
}

// visible keeps the versions the caller may see with interaction in, in
// their order. Types the caller may not reach at all are dropped whole.
func (s *Server) visible(ctx context.Context, in auth.Interaction, versions []store.Version) ([]store.Version, error) {
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
			if m[i], err = s.matching(ctx, typ, rule.Query, list); err != nil {
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
			if rule.Context == auth.Patient && !inCompartment(v, rc.patient) {
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

// matching returns which of ids of type typ match a scope's query,
// through the store's own search, so that a constraint means what the
// same search would.
func (s *Server) matching(ctx context.Context, typ string, query url.Values, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	for start := 0; start < len(ids); start += maxIDsPerCheck {
		chunk := ids[start:min(start+maxIDsPerCheck, len(ids))]
		params := url.Values{}
		for k, vs := range query {
			params[k] = slices.Clone(vs)
		}
		// Added, not set: a constraint on _id itself still holds (two
		// occurrences of a parameter must both match).
		params.Add("_id", strings.Join(chunk, ","))
		q, err := fhir.ParseSearch(typ, params, fhir.SearchOptions{Strict: true, DefaultCount: len(chunk), MaxCount: len(chunk)})
		if err != nil {
			return out, nil // a constraint that does not apply to typ matches nothing
		}
		q.Total = "none"
		res, err := s.store.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, id := range res.IDs {
			out[id] = true
		}
	}
	return out, nil
}

// checkVisible refuses with 403 when the caller may not see v with
// interaction in.
func (s *Server) checkVisible(ctx context.Context, in auth.Interaction, v *store.Version) error {
	if _, err := reachOf(ctx, v.Type, in); err != nil {
		return err
	}
	seen, err := s.visible(ctx, in, []store.Version{*v})
	if err != nil {
		return err
	}
	if len(seen) == 0 {
		return forbidden("%s/%s is outside what the access token's scopes reach", v.Type, v.ID)
	}
	return nil
}

// narrow applies the caller's reach to a search: a single rule becomes
// part of the query (the patient's compartment, the scope's criteria), so
// that totals and pages stay exact; several rules leave the query as it is
// and filter must check each match (then no total is given). A
// patient-confined search may not follow chains or _has into patient
// data, which would test other patients' resources.
func narrow(q *fhir.SearchQuery, rc reach) (filter bool, err error) {
	if rc.all {
		return false, nil
	}
	for _, rule := range rc.rules {
		if rule.Context == auth.Patient {
			if err := checkChains(q.Type, q.Where); err != nil {
				return false, err
			}
			break
		}
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
	if rule.Context == auth.Patient && compartmentType(q.Type) {
		if q.Compartment != nil && q.Compartment.ID != rc.patient {
			return false, forbidden("the access token is confined to its patient's compartment")
		}
		q.Compartment = &fhir.Compartment{Type: "Patient", ID: rc.patient, Params: fhir.PatientCompartmentParams(q.Type)}
	}
	return false, nil
}

// checkChains refuses criteria of typ that chain or reverse-chain into
// the types of patient data.
func checkChains(typ string, where []fhir.Criterion) error {
	for _, c := range where {
		if err := checkChain(typ, &c); err != nil {
			return err
		}
	}
	return nil
}

func checkChain(typ string, c *fhir.Criterion) error {
	refuse := func(target string) error {
		return forbidden("a patient-confined access token cannot search through %s (%s): search the patient's compartment instead", c.Code, target)
	}
	switch {
	case c.Has != nil:
		if compartmentType(c.Has.Type) {
			return refuse(c.Has.Type)
		}
		return checkChain(c.Has.Type, &c.Has.Where)
	case c.Chain != nil:
		targets := []string{c.Chain.Type}
		if c.Chain.Type == "" {
			sp, _ := fhir.LookupSearchParam(typ, c.Code)
			if sp == nil {
				return refuse("an unknown type")
			}
			targets = sp.Targets
		}
		for _, t := range targets {
			if compartmentType(t) {
				return refuse(t)
			}
			if err := checkChain(t, &c.Chain.Where); err != nil {
				return err
			}
		}
	}
	return nil
}

// authorizeWrite checks that the caller may make change ch of op: the
// scope letter of the interaction, and for a patient-confined scope that
// both what was there and what is written are in the patient's
// compartment. Query-constrained scopes grant no writes.
func authorizeWrite(ctx context.Context, op *writeOp, ch change) error {
	in := writeInteractions[op.method]
	rc, err := reachOf(ctx, op.typ, in)
	if err != nil || rc.all {
		return err
	}
	for _, rule := range rc.rules {
		if rule.Query != nil {
			continue
		}
		if rule.Context != auth.Patient {
			return nil
		}
		if (ch.cur == nil || inCompartment(ch.cur, rc.patient)) && writtenIn(ch, rc.patient) {
			return nil
		}
	}
	return forbidden("the access token's scopes do not allow this %s of %s: it reaches only its patient's compartment, or only resources matching a query", in, op.typ)
}

// writtenIn reports whether the version ch answers with is in patient's
// compartment, from the index of a version written (computed already).
func writtenIn(ch change, patient string) bool {
	switch {
	case ch.v == nil:
		return true
	case ch.write != nil && ch.write.Index != nil && !ch.v.Deleted && compartmentType(ch.v.Type):
		return slices.Contains(ch.write.Index.PatientCompartment, patient)
	}
	return inCompartment(ch.v, patient)
}

// scoped refuses a write the caller's scopes cannot allow on the URL's
// type before its body is read; plan checks the resources themselves.
func scoped(in auth.Interaction, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if _, err := reachOf(r.Context(), chi.URLParam(r, "type"), in); err != nil {
			return err
		}
		return h(w, r)
	}
}

// writeInteractions are the SMART interactions of the write methods.
var writeInteractions = map[string]auth.Interaction{
	http.MethodPost:   auth.Create,
	http.MethodPut:    auth.Update,
	http.MethodPatch:  auth.Patch,
	http.MethodDelete: auth.Delete,
}
