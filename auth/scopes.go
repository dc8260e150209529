package auth

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Context is the part of a SMART resource scope before the slash: whose
// data the scope reaches.
type Context string

// The three contexts of SMART resource scopes.
const (
	// Patient confines a scope to the compartment of the token's patient.
	Patient Context = "patient"
	// User reaches whatever the signed-in user may see.
	User Context = "user"
	// System reaches whatever the client's own policy allows, without a user.
	System Context = "system"
)

// Perms is a set of SMART v2 permissions, one bit per letter of "cruds".
type Perms uint8

// The SMART v2 permission letters, in the order they must appear in a scope.
const (
	// PermCreate is "c": the create interaction.
	PermCreate Perms = 1 << iota
	// PermRead is "r": read, vread and instance history.
	PermRead
	// PermUpdate is "u": update and patch.
	PermUpdate
	// PermDelete is "d": delete.
	PermDelete
	// PermSearch is "s": type, system and compartment search, type and
	// system history.
	PermSearch
)

// PermAll is "cruds", every permission.
const PermAll = PermCreate | PermRead | PermUpdate | PermDelete | PermSearch

// permLetters lists the permission letters in their required order.
const permLetters = "cruds"

// Has reports whether every permission of q is in p (false for an empty q).
func (p Perms) Has(q Perms) bool { return q != 0 && p&q == q }

// String returns the permissions as SMART v2 letters in canonical order,
// such as "rs".
func (p Perms) String() string {
	var b strings.Builder
	for i := range len(permLetters) {
		if p&(1<<i) != 0 {
			b.WriteByte(permLetters[i])
		}
	}
	return b.String()
}

// Scope is one scope of an access token. A resource scope such as
// "patient/Observation.rs" has a Context, a Type and Perms, and optionally
// a Query constraint; any other scope ("openid", "launch/patient", ...)
// has an empty Context and only Raw set.
type Scope struct {
	// Context is patient, user or system; empty for a non-resource scope.
	Context Context
	// Type is a FHIR resource type name, or "*" for every type.
	Type string
	// Perms are the permissions the scope grants on Type.
	Perms Perms
	// Query holds the search-parameter constraint after "?", or nil when
	// the scope is unconstrained. Resources must match all of it.
	Query url.Values
	// Raw is the scope exactly as it appeared in the token.
	Raw string
}

// IsResource reports whether s is a resource scope (patient/, user/ or
// system/).
func (s Scope) IsResource() bool { return s.Context != "" }

// String returns the scope in canonical v2 form for resource scopes (v1
// permissions become v2 letters, query parameters are sorted), and Raw
// otherwise.
func (s Scope) String() string {
	if !s.IsResource() {
		return s.Raw
	}
	out := string(s.Context) + "/" + s.Type + "." + s.Perms.String()
	if len(s.Query) > 0 {
		out += "?" + s.Query.Encode()
	}
	return out
}

// Scopes is the list of scopes granted to a token, in token order.
type Scopes []Scope

// Contains reports whether the scope raw (for instance "openid" or
// "launch/patient") was granted verbatim.
func (s Scopes) Contains(raw string) bool {
	for _, sc := range s {
		if sc.Raw == raw {
			return true
		}
	}
	return false
}

// ErrMalformedScope is wrapped by ParseScope when a scope is shaped like a
// resource scope but does not follow the SMART syntax.
var ErrMalformedScope = errors.New("malformed resource scope")

var (
	// typePattern is the syntax of a FHIR resource type name.
	typePattern = regexp.MustCompile(`^[A-Z][A-Za-z]{0,63}$`)
	// resourceShape matches scopes that look like resource scopes whatever
	// their context, so that "Patient/*.read" or "practitioner/*.rs" are
	// reported as malformed rather than kept as opaque scopes.
	resourceShape = regexp.MustCompile(`^[A-Za-z]+/(\*|[A-Za-z]+)\.[A-Za-z*]+(\?.*)?$`)
)

// ParseScope parses one scope. Resource scopes (starting with "patient/",
// "user/" or "system/", or shaped like one with another context) must
// follow the SMART syntax; otherwise the error wraps ErrMalformedScope and
// says why. Any other string is returned as a non-resource scope with only
// Raw set, never as an error. A query constraint is accepted after v1
// permissions too ("patient/*.read?category=..."): it can only narrow the
// scope.
func ParseScope(raw string) (Scope, error) {
	ctx, rest, ok := strings.Cut(raw, "/")
	switch Context(ctx) {
	case Patient, User, System:
	default:
		if ok && resourceShape.MatchString(raw) {
			return Scope{}, fmt.Errorf("%w %q: unknown context %q", ErrMalformedScope, raw, ctx)
		}
		return Scope{Raw: raw}, nil
	}
	body, query, hasQuery := strings.Cut(rest, "?")
	typ, perm, ok := strings.Cut(body, ".")
	if !ok {
		return Scope{}, fmt.Errorf("%w %q: no permissions after the resource type", ErrMalformedScope, raw)
	}
	if typ != "*" && !typePattern.MatchString(typ) {
		return Scope{}, fmt.Errorf("%w %q: %q is not a resource type name", ErrMalformedScope, raw, typ)
	}
	perms, err := parsePerms(perm)
	if err != nil {
		return Scope{}, fmt.Errorf("%w %q: %v", ErrMalformedScope, raw, err)
	}
	s := Scope{Context: Context(ctx), Type: typ, Perms: perms, Raw: raw}
	if hasQuery {
		if s.Query, err = parseConstraint(query); err != nil {
			return Scope{}, fmt.Errorf("%w %q: %v", ErrMalformedScope, raw, err)
		}
	}
	return s, nil
}

// ParseScopes splits a space-separated OAuth scope string and parses each
// scope. Malformed resource scopes are left out of the result (they grant
// nothing) and returned in ignored so that the caller can log them.
func ParseScopes(s string) (Scopes, []string) {
	var out Scopes
	var ignored []string
	for _, raw := range strings.Fields(s) {
		sc, err := ParseScope(raw)
		if err != nil {
			ignored = append(ignored, raw)
			continue
		}
		out = append(out, sc)
	}
	return out, ignored
}

// parsePerms reads the permission part of a scope: SMART v1 "read",
// "write" or "*", or a non-empty subset of "cruds" in that order, each
// letter at most once.
func parsePerms(s string) (Perms, error) {
	switch s {
	case "read":
		return PermRead | PermSearch, nil
	case "write":
		return PermCreate | PermUpdate | PermDelete, nil
	case "*":
		return PermAll, nil
	case "":
		return 0, errors.New("empty permissions")
	}
	var p Perms
	next := 0 // index in permLetters of the next letter allowed
	for i := range len(s) {
		at := strings.IndexByte(permLetters[next:], s[i])
		if at < 0 {
			if strings.IndexByte(permLetters, s[i]) < 0 {
				return 0, fmt.Errorf("unknown permission %q", s[i])
			}
			return 0, fmt.Errorf("permissions %q are repeated or out of the order c, r, u, d, s", s)
		}
		next += at
		p |= 1 << next
		next++
	}
	return p, nil
}

// parseConstraint reads the query constraint of a v2 scope: one or more
// param=value pairs separated by "&", each part percent-decoded as in a URL
// query. Empty parts between "&" are skipped; a part without "=", an empty
// name or an empty value is an error.
func parseConstraint(q string) (url.Values, error) {
	vals := url.Values{}
	for part := range strings.SplitSeq(q, "&") {
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("query constraint %q has no value", part)
		}
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("query constraint %q: %w", part, err)
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("query constraint %q: %w", part, err)
		}
		if key == "" || val == "" {
			return nil, fmt.Errorf("query constraint %q needs a name and a value", part)
		}
		vals.Add(key, val)
	}
	if len(vals) == 0 {
		return nil, errors.New("empty query constraint")
	}
	return vals, nil
}
