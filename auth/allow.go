package auth

import (
	"net/url"
	"slices"
)

// Rule is one way an interaction is allowed: by a scope of some context,
// possibly constrained by a query.
type Rule struct {
	// Context is the context of the scope that allows the interaction. A
	// Patient rule confines access to the token's patient compartment.
	Context Context
	// Query is the scope's search-parameter constraint, nil if none: the
	// resource must match every parameter of it.
	Query url.Values
}

// Grant says how scopes allow an interaction. A resource is allowed when it
// satisfies ANY of the rules: it matches the rule's Query (if any) and, for
// a Patient rule, belongs to the token's patient compartment.
type Grant struct {
	// Rules are the alternatives left after combining, broad contexts
	// (user, system) first, then patient, each in token order.
	Rules []Rule
}

// Unconstrained reports whether the grant needs no filtering at all: a
// user or system scope without a query constraint allows the interaction.
func (g Grant) Unconstrained() bool {
	for _, r := range g.Rules {
		if r.Context != Patient && r.Query == nil {
			return true
		}
	}
	return false
}

// PatientOnly reports whether every rule is patient-confined, so that the
// server must restrict the interaction to the token's patient compartment.
// It is false for an empty grant.
func (g Grant) PatientOnly() bool {
	if len(g.Rules) == 0 {
		return false
	}
	for _, r := range g.Rules {
		if r.Context != Patient {
			return false
		}
	}
	return true
}

// Contexts returns the distinct contexts of the rules, in the order
// patient, user, system.
func (g Grant) Contexts() []Context {
	var out []Context
	for _, c := range []Context{Patient, User, System} {
		if slices.ContainsFunc(g.Rules, func(r Rule) bool { return r.Context == c }) {
			out = append(out, c)
		}
	}
	return out
}

// Allow reports whether any resource scope allows the interaction on the
// resource type typ, and how. A scope applies when its Type is typ or "*"
// and its permissions include the letter of the interaction (see
// Interaction.Perm; Operation is never allowed). For system-level
// interactions over all types (SearchSystem, HistorySystem without _type),
// pass typ "*" (or ""): only wildcard scopes apply.
//
// Combining rule: every applicable scope gives a Rule (its context and its
// query constraint). A rule is dropped when another rule is at least as
// broad, which is when the other rule's context is user or system or both
// are patient, and the other rule's constraint is a subset of its own (no
// constraint is a subset of every constraint; a constraint is a subset when
// each of its parameters appears in the other with the same values). So:
//   - a scope without a constraint makes the grant unconstrained within its
//     context: user/Observation.rs beside user/Observation.rs?category=x
//     leaves one unconstrained user rule;
//   - a user or system scope wins over a patient scope it covers:
//     user/Observation.rs beside patient/Observation.rs leaves only the
//     user rule, and the access is not patient-confined;
//   - scopes neither of which covers the other are all kept, and the server
//     must accept a resource satisfying any of them: patient/Observation.rs
//     beside user/Observation.rs?category=x gives two rules.
//
// SMART scopes only delegate access: the server still applies the user's
// or the client's own permissions on top of the grant.
func (s Scopes) Allow(typ string, in Interaction) (Grant, bool) {
	perm := in.Perm()
	if perm == 0 {
		return Grant{}, false
	}
	if typ == "" {
		typ = "*"
	}
	var broad, patient []Rule
	for _, sc := range s {
		if !sc.IsResource() || !sc.Perms.Has(perm) || (sc.Type != "*" && sc.Type != typ) {
			continue
		}
		r := Rule{Context: sc.Context, Query: sc.Query}
		if sc.Context == Patient {
			patient = append(patient, r)
		} else {
			broad = append(broad, r)
		}
	}
	rules := append(broad, patient...)
	if len(rules) == 0 {
		return Grant{}, false
	}
	var kept []Rule
	for i, r := range rules {
		if !coveredByOther(rules, i) {
			kept = append(kept, r)
		}
	}
	return Grant{Rules: kept}, true
}

// coveredByOther reports whether rules[i] is made redundant by another
// rule. Of two rules covering each other (equal), the later one is dropped.
func coveredByOther(rules []Rule, i int) bool {
	for j, o := range rules {
		if j == i || !covers(o, rules[i]) {
			continue
		}
		if j < i || !covers(rules[i], o) {
			return true
		}
	}
	return false
}

// covers reports whether rule a allows everything rule b allows.
func covers(a, b Rule) bool {
	if a.Context == Patient && b.Context != Patient {
		return false
	}
	return querySubset(a.Query, b.Query)
}

// querySubset reports whether every parameter value of a is also in b, so
// that anything matching b matches a.
func querySubset(a, b url.Values) bool {
	for k, vs := range a {
		for _, v := range vs {
			if !slices.Contains(b[k], v) {
				return false
			}
		}
	}
	return true
}
