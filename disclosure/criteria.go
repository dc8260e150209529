package disclosure

import (
	"context"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/store"
)

// Criteria are reads too. A chain (subject:Patient.family=x) and a _has
// (_has:Observation:subject:code=y) test other resources than those a
// search returns; evaluated in SQL over every stored resource, they would
// tell a caller which hidden resources match (one prefix of a family
// name at a time). So the resources they test are first found through
// the gate, as a search of their own type by the same caller would find
// them: the type must be one the caller may search, the query is
// narrowed to the caller's reach, and only the versions its scopes reach
// and the patients' consents permit count. The criterion is then
// replaced by the references to (or the ids of) what was found. A hidden
// resource therefore changes neither the matches nor the answer's
// status. Finding them discloses nothing (nothing of them is sent) and
// is not recorded.

// maxCriterionMatches bounds the resources a chain or _has may reach; a
// criterion that reaches more is refused (400), to be narrowed.
const maxCriterionMatches = 1000

// resolveCriteria replaces q's chains and _has criteria, at every depth,
// by what they reach through the gate. It reports nothing when one of
// them reaches nothing, so that q can match nothing either.
func (g *Gate) resolveCriteria(ctx context.Context, q *fhir.SearchQuery) (nothing bool, err error) {
	for i := range q.Where {
		c := &q.Where[i]
		if c.Chain == nil && c.Has == nil {
			continue
		}
		resolved, err := g.resolve(ctx, q.Type, c)
		if err != nil || resolved == nil {
			return true, err
		}
		*c = *resolved
	}
	return false, nil
}

// resolve returns the plain criterion that chain or _has criterion c of
// typ means for the caller, nil when it reaches nothing.
func (g *Gate) resolve(ctx context.Context, typ string, c *fhir.Criterion) (*fhir.Criterion, error) {
	inner := &fhir.SearchQuery{Type: "", Total: "none"}
	if c.Chain != nil {
		inner.Type, inner.Where = c.Chain.Type, []fhir.Criterion{c.Chain.Where}
	} else {
		inner.Type, inner.Where = c.Has.Type, []fhir.Criterion{c.Has.Where}
	}
	found, err := g.reached(ctx, inner, c.Code)
	if err != nil || len(found) == 0 {
		return nil, err
	}
	if c.Chain != nil {
		// The resource refers, through c.Code, to one of those found.
		out := &fhir.Criterion{Code: c.Code, Type: "reference"}
		for _, k := range found {
			out.Values = append(out.Values, fhir.SearchValue{RefType: k.Type, RefID: k.ID})
		}
		return out, nil
	}
	// One of those found refers to the resource through Has.Param.
	targets, err := g.store.References(ctx, found, c.Has.Param, typ, maxGatedScan+1)
	if err != nil || len(targets) == 0 {
		return nil, err
	}
	if len(targets) > maxGatedScan {
		return nil, invalid("the criterion %s refers to more than %d resources; make it more selective", c.Code, maxGatedScan)
	}
	out := &fhir.Criterion{Code: "_id", Type: "token"}
	for _, k := range targets {
		out.Values = append(out.Values, fhir.SearchValue{Code: k.ID, AnySystem: true})
	}
	return out, nil
}

// reached lists the resources of q (one criterion of a chain or _has,
// named code) that the caller could find by searching their type:
// resolved in turn, narrowed, scanned and decided like a search, without
// a record.
func (g *Gate) reached(ctx context.Context, q *fhir.SearchQuery, code string) ([]store.Key, error) {
	rc, err := reachOf(ctx, q.Type, auth.SearchType)
	if err != nil {
		return nil, forbidden("the criterion %s searches %s, which the access token's scopes do not allow", code, q.Type)
	}
	filter, err := narrow(q, rc)
	if err != nil {
		return nil, err
	}
	if nothing, err := g.resolveCriteria(ctx, q); err != nil || nothing {
		return nil, err
	}
	budget := maxGatedScan
	found, rest, err := g.scanKeys(ctx, g.store, q, maxCriterionMatches+1, &budget, filter, auth.SearchType, &verdicts{})
	if err != nil {
		return nil, err
	}
	if len(found) > maxCriterionMatches || rest != "" {
		return nil, invalid("the criterion %s reaches more than %d %s resources; make it more selective", code, maxCriterionMatches, q.Type)
	}
	return found, nil
}

// CheckCriteria refuses with ErrForbidden criteria whose chains or _has
// search a type the caller's scopes do not allow searching, before any of
// them runs (an export's _typeFilter, checked at kick-off).
func CheckCriteria(ctx context.Context, q *fhir.SearchQuery) error {
	var check func(c *fhir.Criterion) error
	check = func(c *fhir.Criterion) error {
		var typ string
		var inner *fhir.Criterion
		switch {
		case c.Chain != nil:
			typ, inner = c.Chain.Type, &c.Chain.Where
		case c.Has != nil:
			typ, inner = c.Has.Type, &c.Has.Where
		default:
			return nil
		}
		if _, err := reachOf(ctx, typ, auth.SearchType); err != nil {
			return forbidden("the criterion %s searches %s, which the access token's scopes do not allow", c.Code, typ)
		}
		return check(inner)
	}
	for i := range q.Where {
		if err := check(&q.Where[i]); err != nil {
			return err
		}
	}
	return nil
}
