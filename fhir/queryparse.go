package fhir

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// SearchOptions tune ParseSearch.
type SearchOptions struct {
	// Base is this server's base URL: absolute references to it are read
	// as Type/id.
	Base string
	// Strict makes an unknown or unsupported parameter an error
	// (Prefer: handling=strict); otherwise it is ignored and listed in
	// SearchQuery.Ignored.
	Strict bool
	// DefaultCount and MaxCount bound _count.
	DefaultCount, MaxCount int
	// MaxCriteria bounds the criteria of a query (each occurrence of a
	// parameter, each level of a chain or _has counting one), MaxValues
	// the values they give together (a,b,c is three), and MaxIncludes
	// the distinct _include and _revinclude parameters; a query over
	// them is refused, naming the limit. Zero means DefaultMaxCriteria,
	// DefaultMaxValues and DefaultMaxIncludes.
	MaxCriteria, MaxValues, MaxIncludes int
}

// Defaults of SearchOptions' bounds.
const (
	DefaultMaxCriteria = 100
	DefaultMaxValues   = 1000
	DefaultMaxIncludes = 20
)

// bounds are opt's bounds, defaults filled in.
func (opt SearchOptions) bounds() (criteria, values, includes int) {
	criteria, values, includes = opt.MaxCriteria, opt.MaxValues, opt.MaxIncludes
	if criteria <= 0 {
		criteria = DefaultMaxCriteria
	}
	if values <= 0 {
		values = DefaultMaxValues
	}
	if includes <= 0 {
		includes = DefaultMaxIncludes
	}
	return criteria, values, includes
}

// SearchError lists the problems of a search's parameters; callers answer
// it with 400.
type SearchError struct{ Issues []Issue }

func (e *SearchError) Error() string {
	msgs := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		msgs[i] = is.Diagnostics
	}
	return "fhir: search: " + strings.Join(msgs, "; ")
}

// resultParams are the search result parameters ParseSearch handles itself.
var resultParams = map[string]bool{
	"_sort": true, "_count": true, "_total": true, "_summary": true, "_elements": true,
	"_include": true, "_revinclude": true, "_page": true, "_format": true, "_pretty": true,
}

// searchPrefixes are the comparison prefixes of ordered types.
var searchPrefixes = []string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"}

// ParseSearch reads the parameters of a search of resources of type typ.
// Comma separates alternatives of one parameter (OR); a repeated parameter
// adds a criterion (AND). Every problem is reported, each naming its
// parameter.
func ParseSearch(typ string, params url.Values, opt SearchOptions) (*SearchQuery, error) {
	p := &queryParser{typ: typ, opt: opt}
	q := &SearchQuery{Type: typ, Count: opt.DefaultCount}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		base, mod, _ := strings.Cut(key, ":")
		if resultParams[base] {
			p.result(q, base, mod, params[key])
			continue
		}
		for _, raw := range params[key] {
			c, err := p.criterion(typ, key, raw, 0)
			var unsupported *unsupportedError
			switch {
			case errors.As(err, &unsupported):
				p.reject(key, err.Error())
				continue
			case err != nil:
				p.fail(key, "%v", err)
				continue
			}
			q.Where = append(q.Where, *c)
		}
	}
	q.Ignored = p.ignored
	if len(p.problems) == 0 {
		p.bound(q)
	}
	if len(p.problems) > 0 {
		return nil, &SearchError{Issues: p.problems}
	}
	return q, nil
}

// bound refuses a query past the options' bounds, so that the work one
// query asks for stays in proportion to what a well-behaved one does.
func (p *queryParser) bound(q *SearchQuery) {
	maxCriteria, maxValues, maxIncludes := p.opt.bounds()
	criteria, values := 0, 0
	var count func(c *Criterion)
	count = func(c *Criterion) {
		criteria++
		values += len(c.Values)
		switch {
		case c.Chain != nil:
			count(&c.Chain.Where)
		case c.Has != nil:
			count(&c.Has.Where)
		}
	}
	for i := range q.Where {
		count(&q.Where[i])
	}
	if criteria > maxCriteria {
		p.problems = append(p.problems, Issue{Severity: "error", Code: "too-costly",
			Diagnostics: fmt.Sprintf("the query has %d criteria; at most %d are taken (each parameter, and each level of a chain or _has)", criteria, maxCriteria)})
	}
	if values > maxValues {
		p.problems = append(p.problems, Issue{Severity: "error", Code: "too-costly",
			Diagnostics: fmt.Sprintf("the query gives %d values; at most %d are taken", values, maxValues)})
	}
	if n := len(q.Include) + len(q.RevInclude); n > maxIncludes {
		p.problems = append(p.problems, Issue{Severity: "error", Code: "too-costly",
			Diagnostics: fmt.Sprintf("the query has %d distinct _include and _revinclude parameters; at most %d are taken", n, maxIncludes)})
	}
}

type queryParser struct {
	typ      string
	opt      SearchOptions
	problems []Issue
	ignored  []Issue
}

// fail records a malformed parameter (always a 400).
func (p *queryParser) fail(param, format string, args ...any) {
	p.problems = append(p.problems, Issue{Severity: "error", Code: "invalid", Expression: param,
		Diagnostics: param + ": " + fmt.Sprintf(format, args...)})
}

// reject records an unknown or unsupported parameter: an error when
// strict, else a warning and the parameter is ignored.
func (p *queryParser) reject(param, msg string) {
	if p.opt.Strict {
		p.problems = append(p.problems, Issue{Severity: "error", Code: "not-supported", Expression: param, Diagnostics: msg})
		return
	}
	p.ignored = append(p.ignored, Issue{Severity: "warning", Code: "not-supported", Expression: param, Diagnostics: msg + "; the parameter was ignored"})
}

// unsupportedError marks a parameter the server does not know or cannot
// search on, as opposed to a malformed value.
type unsupportedError struct{ msg string }

func (e *unsupportedError) Error() string { return e.msg }

// criterion parses one occurrence of key=raw on resources of type typ.
func (p *queryParser) criterion(typ, key, raw string, depth int) (*Criterion, error) {
	if depth > 4 {
		return nil, &unsupportedError{fmt.Sprintf("%s chains deeper than 4 levels", key)}
	}
	if strings.HasPrefix(key, "_has:") {
		return p.has(typ, key, raw, depth)
	}
	head, rest, chained := strings.Cut(key, ".")
	code, mod, _ := strings.Cut(head, ":")
	c := &Criterion{Code: code, Modifier: mod}
	switch code {
	case "_id":
		c.Type = "token"
	case "_lastUpdated":
		c.Type = "date"
	default:
		sp, ok := LookupSearchParam(typ, code)
		if !ok {
			return nil, &unsupportedError{fmt.Sprintf("%s is not a search parameter of %s", code, typ)}
		}
		c.Type = sp.Type
		if sp.Type == "composite" {
			if len(sp.Components) < 2 || len(sp.Components) > 3 {
				return nil, &unsupportedError{fmt.Sprintf("composite %s has %d components; two or three are supported", code, len(sp.Components))}
			}
			c.Components = make([]string, len(sp.Components))
			for i, comp := range sp.Components {
				c.Components[i] = comp.Type
			}
		}
		if chained {
			return p.chain(typ, c, sp, rest, raw, depth)
		}
	}
	if chained {
		return nil, &unsupportedError{fmt.Sprintf("%s cannot be chained: it is not a reference parameter", code)}
	}
	if mod == "missing" {
		switch raw {
		case "true", "false":
			b := raw == "true"
			c.Missing = &b
			return c, nil
		}
		return nil, fmt.Errorf("%s:missing takes true or false, not %q", code, raw)
	}
	if err := checkModifier(c); err != nil {
		return nil, err
	}
	for _, v := range splitUnescaped(raw, ',') {
		if v == "" {
			return nil, fmt.Errorf("%s has an empty value", key)
		}
		sv, err := p.value(typ, c, v)
		if err != nil {
			return nil, fmt.Errorf("value %q: %w", v, err)
		}
		c.Values = append(c.Values, sv)
	}
	return c, nil
}

// checkModifier rejects modifiers that do not apply to the parameter type.
func checkModifier(c *Criterion) error {
	allowed := map[string][]string{
		"string":    {"exact", "contains"},
		"token":     {"not", "text", "of-type"},
		"reference": nil, // a resource type
		"uri":       {"below", "above"},
	}
	if c.Modifier == "" {
		return nil
	}
	if c.Type == "reference" {
		if IsResourceType(c.Modifier) {
			return nil
		}
		return &unsupportedError{fmt.Sprintf("modifier :%s is not supported on reference %s (use a resource type)", c.Modifier, c.Code)}
	}
	if c.Code == "_id" && c.Modifier == "not" {
		return nil
	}
	if slices.Contains(allowed[c.Type], c.Modifier) {
		if c.Modifier == "of-type" && c.Code != "identifier" {
			return &unsupportedError{fmt.Sprintf(":of-type applies to identifier, not %s", c.Code)}
		}
		return nil
	}
	return &unsupportedError{fmt.Sprintf("modifier :%s is not supported on %s parameter %s", c.Modifier, c.Type, c.Code)}
}

// chain parses subject:Patient.name=x (rest is "name").
func (p *queryParser) chain(typ string, c *Criterion, sp *SearchParam, rest, raw string, depth int) (*Criterion, error) {
	if sp.Type != "reference" {
		return nil, &unsupportedError{fmt.Sprintf("%s cannot be chained: it is not a reference parameter", c.Code)}
	}
	target := c.Modifier
	c.Modifier = ""
	if target == "" {
		// Without a type, the chain is read on the one target type that
		// has the chained parameter.
		next, _, _ := strings.Cut(strings.SplitN(rest, ".", 2)[0], ":")
		var candidates []string
		for _, t := range sp.Targets {
			if _, ok := LookupSearchParam(t, next); ok || next == "_id" || next == "_lastUpdated" || strings.HasPrefix(rest, "_has:") {
				candidates = append(candidates, t)
			}
		}
		if len(candidates) != 1 {
			return nil, fmt.Errorf("%s.%s is ambiguous over %v: name the target type (%s:Type.%s)", c.Code, rest, candidates, c.Code, rest)
		}
		target = candidates[0]
	} else if !slices.Contains(sp.Targets, target) && !slices.Contains(sp.Targets, "Resource") {
		return nil, fmt.Errorf("%s does not refer to %s (targets %v)", c.Code, target, sp.Targets)
	}
	inner, err := p.criterion(target, rest, raw, depth+1)
	if err != nil {
		return nil, err
	}
	c.Chain = &Chain{Type: target, Where: *inner}
	return c, nil
}

// has parses _has:Type:param:rest=raw.
func (p *queryParser) has(typ, key, raw string, depth int) (*Criterion, error) {
	parts := strings.SplitN(key, ":", 4)
	if len(parts) < 4 {
		return nil, fmt.Errorf("%s must be _has:Type:reference:parameter", key)
	}
	srcType, refParam, rest := parts[1], parts[2], parts[3]
	if !IsResourceType(srcType) {
		return nil, fmt.Errorf("%s: %s is not a resource type", key, srcType)
	}
	sp, ok := LookupSearchParam(srcType, refParam)
	if !ok || sp.Type != "reference" {
		return nil, fmt.Errorf("%s: %s is not a reference parameter of %s", key, refParam, srcType)
	}
	if !slices.Contains(sp.Targets, typ) && !slices.Contains(sp.Targets, "Resource") {
		return nil, fmt.Errorf("%s: %s.%s does not refer to %s", key, srcType, refParam, typ)
	}
	inner, err := p.criterion(srcType, rest, raw, depth+1)
	if err != nil {
		return nil, err
	}
	return &Criterion{Code: "_has", Type: "reference", Has: &Has{Type: srcType, Param: refParam, Where: *inner}}, nil
}

// value parses one alternative of a criterion.
func (p *queryParser) value(typ string, c *Criterion, v string) (SearchValue, error) {
	switch {
	case c.Code == "_id":
		return SearchValue{Code: v, AnySystem: true}, nil
	case c.Type == "composite":
		parts := splitUnescaped(v, '$')
		if len(parts) != len(c.Components) {
			return SearchValue{}, fmt.Errorf("a value of %s is %d parts joined by $", c.Code, len(c.Components))
		}
		out := SearchValue{}
		for i, part := range parts {
			sub := &Criterion{Code: c.Code, Type: c.Components[i]}
			pv, err := p.value(typ, sub, part)
			if err != nil {
				return SearchValue{}, err
			}
			out.Parts = append(out.Parts, pv)
		}
		return out, nil
	}
	switch c.Type {
	case "string":
		if c.Modifier == "exact" {
			return SearchValue{Text: unescapeValue(v)}, nil
		}
		return SearchValue{Text: NormalizeString(unescapeValue(v))}, nil
	case "token":
		if c.Modifier == "text" {
			return SearchValue{Text: NormalizeString(unescapeValue(v))}, nil
		}
		return parseTokenValue(v, c.Modifier == "of-type")
	case "reference":
		return p.reference(typ, c, v)
	case "date":
		prefix, rest := splitPrefix(v)
		low, high, err := ParseSearchDate(rest)
		if err != nil {
			return SearchValue{}, err
		}
		return SearchValue{Prefix: prefix, Low: low, High: high}, nil
	case "number", "quantity":
		prefix, rest := splitPrefix(v)
		num := rest
		var system, code string
		if c.Type == "quantity" {
			fields := splitUnescaped(rest, '|')
			num = fields[0]
			switch len(fields) {
			case 1:
			case 3:
				system, code = unescapeValue(fields[1]), unescapeValue(fields[2])
			default:
				return SearchValue{}, fmt.Errorf("a quantity is number, number|system|code or number||code")
			}
		}
		n, lo, hi, err := ParseSearchNumber(num)
		if err != nil {
			return SearchValue{}, err
		}
		return SearchValue{Prefix: prefix, Num: n, NumLow: lo, NumHigh: hi, System: system, Code: code}, nil
	case "uri":
		return SearchValue{Text: unescapeValue(v)}, nil
	}
	return SearchValue{}, &unsupportedError{fmt.Sprintf("parameters of type %s (%s) are not supported", c.Type, c.Code)}
}

// reference reads Type/id, id, or an absolute URL (this server's is read
// as Type/id).
func (p *queryParser) reference(typ string, c *Criterion, v string) (SearchValue, error) {
	v = unescapeValue(v)
	if base := strings.TrimSuffix(p.opt.Base, "/"); base != "" && strings.HasPrefix(v, base+"/") {
		v = strings.TrimPrefix(v, base+"/")
	}
	if strings.Contains(v, "://") || strings.HasPrefix(v, "urn:") {
		url, _, _ := strings.Cut(v, "|") // a canonical's version is not matched
		return SearchValue{URL: url}, nil
	}
	segs := strings.Split(v, "/")
	sv := SearchValue{}
	switch {
	case len(segs) == 1:
		sv.RefID = segs[0]
	case len(segs) == 2 || (len(segs) == 4 && segs[2] == "_history"):
		if !IsResourceType(segs[0]) {
			return SearchValue{}, fmt.Errorf("%s is not a resource type", segs[0])
		}
		sv.RefType, sv.RefID = segs[0], segs[1]
	default:
		return SearchValue{}, fmt.Errorf("a reference is Type/id, id or an absolute URL")
	}
	if c.Modifier != "" {
		if sv.RefType != "" && sv.RefType != c.Modifier {
			return SearchValue{}, fmt.Errorf("%s:%s does not match %s", c.Code, c.Modifier, v)
		}
		sv.RefType = c.Modifier
	}
	if sv.RefType == "" {
		if sp, ok := LookupSearchParam(typ, c.Code); ok && len(sp.Targets) == 1 && sp.Targets[0] != "Resource" {
			sv.RefType = sp.Targets[0]
		}
	}
	return sv, nil
}

// parseTokenValue reads system|code, |code, system| or code; for :of-type
// it reads system|code|value.
func parseTokenValue(v string, ofType bool) (SearchValue, error) {
	fields := splitUnescaped(v, '|')
	for i := range fields {
		fields[i] = unescapeValue(fields[i])
	}
	if ofType {
		if len(fields) != 3 || fields[1] == "" || fields[2] == "" {
			return SearchValue{}, fmt.Errorf(":of-type takes system|code|value")
		}
		return SearchValue{System: fields[0], Code: fields[1] + "|" + fields[2]}, nil
	}
	switch len(fields) {
	case 1:
		return SearchValue{Code: fields[0], AnySystem: true}, nil
	case 2:
		switch {
		case fields[0] == "" && fields[1] == "":
			return SearchValue{}, fmt.Errorf(`"|" names neither a system nor a code`)
		case fields[0] == "":
			return SearchValue{Code: fields[1], NoSystem: true}, nil
		}
		return SearchValue{System: fields[0], Code: fields[1]}, nil
	}
	return SearchValue{}, fmt.Errorf("a token is system|code, |code, system| or code")
}

// splitPrefix takes a comparison prefix off an ordered value.
func splitPrefix(v string) (string, string) {
	if len(v) > 2 && slices.Contains(searchPrefixes, v[:2]) {
		return v[:2], v[2:]
	}
	return "eq", v
}

// splitUnescaped splits v on sep where it is not escaped with a backslash;
// the escapes stay for unescapeValue.
func splitUnescaped(v string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case sep:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// unescapeValue removes the backslash escapes of \, \| \$ and \\.
func unescapeValue(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// result reads a result parameter.
func (p *queryParser) result(q *SearchQuery, name, mod string, vals []string) {
	last := vals[len(vals)-1]
	switch name {
	case "_format", "_pretty":
	case "_page":
		q.Page = last
	case "_count":
		n, err := strconv.Atoi(last)
		if err != nil || n < 0 {
			p.fail("_count", "must be a non-negative integer, not %q", last)
			return
		}
		if p.opt.MaxCount > 0 {
			n = min(n, p.opt.MaxCount)
		}
		q.Count = n
	case "_total":
		switch last {
		case "none", "estimate", "accurate":
			q.Total = last
		default:
			p.fail("_total", "must be none, estimate or accurate, not %q", last)
		}
	case "_summary":
		switch last {
		case "true", "text", "data", "count", "false":
			q.Summary = last
		default:
			p.fail("_summary", "must be true, text, data, count or false, not %q", last)
		}
	case "_elements":
		for _, v := range vals {
			for _, e := range strings.Split(v, ",") {
				if e = strings.TrimSpace(e); e != "" {
					q.Elements = append(q.Elements, e)
				}
			}
		}
	case "_sort":
		for _, v := range vals {
			for _, k := range strings.Split(v, ",") {
				desc := strings.HasPrefix(k, "-")
				code := strings.TrimPrefix(k, "-")
				switch code {
				case "_id":
					q.Sort = append(q.Sort, SortKey{Code: code, Type: "token", Desc: desc})
					continue
				case "_lastUpdated":
					q.Sort = append(q.Sort, SortKey{Code: code, Type: "date", Desc: desc})
					continue
				}
				sp, ok := LookupSearchParam(q.Type, code)
				switch {
				case !ok:
					p.reject("_sort", fmt.Sprintf("_sort: %s is not a search parameter of %s", code, q.Type))
				case sp.Type == "composite" || sp.Type == "special":
					p.reject("_sort", fmt.Sprintf("_sort: cannot sort by %s parameter %s", sp.Type, code))
				default:
					q.Sort = append(q.Sort, SortKey{Code: code, Type: sp.Type, Desc: desc})
				}
			}
		}
	case "_include", "_revinclude":
		iterate := false
		switch mod {
		case "":
		case "iterate", "recurse":
			iterate = true
		default:
			p.fail(name, "unknown modifier :%s (use :iterate)", mod)
			return
		}
		for _, v := range vals {
			inc, err := parseInclude(v, iterate, name == "_revinclude", q.Type)
			if err != nil {
				p.fail(name, "%v", err)
				continue
			}
			// The same include twice is the same include: once.
			if name == "_include" && !slices.Contains(q.Include, inc) {
				q.Include = append(q.Include, inc)
			} else if name == "_revinclude" && !slices.Contains(q.RevInclude, inc) {
				q.RevInclude = append(q.RevInclude, inc)
			}
		}
	}
}

// parseInclude reads SourceType:param[:TargetType] or *.
func parseInclude(v string, iterate, rev bool, searched string) (Include, error) {
	if v == "*" {
		return Include{SourceType: searched, Param: "*", Iterate: iterate}, nil
	}
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Include{}, fmt.Errorf("%q is not SourceType:parameter[:TargetType]", v)
	}
	inc := Include{SourceType: parts[0], Param: parts[1], Iterate: iterate}
	if len(parts) == 3 {
		inc.TargetType = parts[2]
		if !IsResourceType(inc.TargetType) {
			return Include{}, fmt.Errorf("%s is not a resource type", inc.TargetType)
		}
	}
	if !IsResourceType(inc.SourceType) {
		return Include{}, fmt.Errorf("%s is not a resource type", inc.SourceType)
	}
	if inc.Param == "*" {
		return inc, nil
	}
	sp, ok := LookupSearchParam(inc.SourceType, inc.Param)
	if !ok || sp.Type != "reference" {
		return Include{}, fmt.Errorf("%s is not a reference parameter of %s", inc.Param, inc.SourceType)
	}
	if !iterate && !rev && inc.SourceType != searched {
		return Include{}, fmt.Errorf("_include %s starts from %s, not the searched %s (add :iterate)", v, inc.SourceType, searched)
	}
	return inc, nil
}
