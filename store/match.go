package store

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// CriteriaError says a conditional interaction's criteria cannot be used:
// empty, malformed, or naming a parameter the store cannot match. Callers
// answer it with 400.
type CriteriaError struct{ Msg string }

func (e *CriteriaError) Error() string { return "store: criteria: " + e.Msg }

// Criteria are the parsed search criteria of a conditional interaction
// (If-None-Exist, conditional update, patch and delete). Within one
// parameter a comma separates alternatives (OR); several parameters must
// all match (AND).
type Criteria struct {
	IDs         [][]string     // each _id parameter: the ids it allows
	Identifiers [][]TokenMatch // each identifier parameter: the tokens it allows
}

// TokenMatch is one token alternative: system|code, |code (no system),
// code (any system) or system| (any code).
type TokenMatch struct {
	System, Code       string
	AnySystem, AnyCode bool
}

// MatchParams lists the parameters conditional interactions can use.
var MatchParams = []string{"_id", "identifier"}

// ParseCriteria parses a query string such as "identifier=http://x|42".
// Result parameters (_format, _pretty) are ignored.
func ParseCriteria(q url.Values) (*Criteria, error) {
	c := &Criteria{}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch k {
		case "_format", "_pretty":
			continue
		case "_id":
			for _, v := range q[k] {
				ids := strings.Split(v, ",")
				for _, id := range ids {
					if id == "" {
						return nil, &CriteriaError{Msg: "_id has an empty value"}
					}
				}
				c.IDs = append(c.IDs, ids)
			}
		case "identifier":
			for _, v := range q[k] {
				var alts []TokenMatch
				for _, alt := range splitEscaped(v) {
					t, err := parseToken(alt)
					if err != nil {
						return nil, err
					}
					alts = append(alts, t)
				}
				c.Identifiers = append(c.Identifiers, alts)
			}
		default:
			return nil, &CriteriaError{Msg: fmt.Sprintf("parameter %q is not supported in conditional interactions (supported: %s)", k, strings.Join(MatchParams, ", "))}
		}
	}
	if len(c.IDs) == 0 && len(c.Identifiers) == 0 {
		return nil, &CriteriaError{Msg: "no search criteria given"}
	}
	return c, nil
}

// splitEscaped splits a FHIR search value on commas that are not escaped
// with a backslash, and removes the escapes of \, \| and \\ from the parts
// later, in parseToken.
func splitEscaped(v string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			cur.WriteByte(v[i])
			cur.WriteByte(v[i+1])
			i++
		case v[i] == ',':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(v[i])
		}
	}
	return append(parts, cur.String())
}

func parseToken(v string) (TokenMatch, error) {
	if v == "" {
		return TokenMatch{}, &CriteriaError{Msg: "identifier has an empty value"}
	}
	sep := -1
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' {
			i++
			continue
		}
		if v[i] == '|' {
			sep = i
			break
		}
	}
	if sep < 0 {
		return TokenMatch{Code: unescape(v), AnySystem: true}, nil
	}
	t := TokenMatch{System: unescape(v[:sep]), Code: unescape(v[sep+1:])}
	if t.Code == "" {
		if t.System == "" {
			return TokenMatch{}, &CriteriaError{Msg: "identifier value \"|\" names neither a system nor a value"}
		}
		t.AnyCode = true
	}
	return t, nil
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Match returns the ids of the live (not deleted) resources of type typ
// that meet c, at most limit of them, inside the transaction so that a
// conditional create or update cannot race with a concurrent one.
func (tx *Tx) Match(ctx context.Context, typ string, c *Criteria, limit int) ([]string, error) {
	var sb strings.Builder
	args := []any{typ, false}
	sb.WriteString(`SELECT r.res_id FROM resources r WHERE r.res_type = ? AND r.deleted = ?`)
	for _, ids := range c.IDs {
		sb.WriteString(` AND r.res_id IN (?` + strings.Repeat(", ?", len(ids)-1) + `)`)
		for _, id := range ids {
			args = append(args, id)
		}
	}
	for _, alts := range c.Identifiers {
		sb.WriteString(` AND EXISTS (SELECT 1 FROM resource_tokens t WHERE t.res_type = r.res_type AND t.res_id = r.res_id AND t.param = ? AND (`)
		args = append(args, "identifier")
		for i, t := range alts {
			if i > 0 {
				sb.WriteString(" OR ")
			}
			switch {
			case t.AnySystem:
				sb.WriteString("t.code = ?")
				args = append(args, t.Code)
			case t.AnyCode:
				sb.WriteString("t.system = ?")
				args = append(args, t.System)
			default:
				sb.WriteString("(t.system = ? AND t.code = ?)")
				args = append(args, t.System, t.Code)
			}
		}
		sb.WriteString("))")
	}
	sb.WriteString(" ORDER BY r.res_id LIMIT ?")
	args = append(args, limit)
	var ids []string
	if err := tx.db.WithContext(ctx).Raw(sb.String(), args...).Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("store: match %s: %w", typ, err)
	}
	return ids, nil
}
