package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// What the generator reads out of FHIRPath expressions without a FHIRPath
// implementation (package fhir has one, and its tests compile every
// expression): the "|" branches, the dotted path each starts with, checked
// against the structure model, and the reference targets a branch can
// select.

// splitUnion splits an expression at its top-level "|" operators, outside
// parentheses, brackets and string literals, and drops parentheses that
// enclose a whole branch. An empty expression gives no branches.
func splitUnion(expr string) ([]string, error) {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; c {
		case '\'', '"', '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string in %q", expr)
			}
			i = j
		case '(', '[':
			depth++
		case ')', ']':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced parentheses in %q", expr)
			}
		case '|':
			if depth == 0 {
				out = append(out, expr[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced parentheses in %q", expr)
	}
	out = append(out, expr[start:])
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	for i, br := range out {
		br = strings.TrimSpace(br)
		for enclosed(br) {
			br = strings.TrimSpace(br[1 : len(br)-1])
		}
		if br == "" {
			return nil, fmt.Errorf("empty branch in %q", expr)
		}
		out[i] = br
	}
	return out, nil
}

// enclosed reports whether s is one parenthesised expression.
func enclosed(s string) bool {
	if len(s) < 2 || s[0] != '(' || s[len(s)-1] != ')' {
		return false
	}
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\'':
			for i++; i < len(s) && s[i] != '\''; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 && i != len(s)-1 {
				return false
			}
		}
	}
	return true
}

// branchBase returns the base a branch belongs to: the type its path starts
// with, or the only base for a relative branch ("name | alias").
func branchBase(br string, bases []string) string {
	head := leadingPath(br)
	if len(head) > 0 && slices.Contains(bases, head[0]) {
		return head[0]
	}
	if len(head) > 0 && len(bases) == 1 && head[0] != "" && head[0][0] >= 'a' && head[0][0] <= 'z' {
		return bases[0]
	}
	return ""
}

// leadingPath returns the dotted names a branch starts with, up to the
// first function call, operator or other syntax; an indexer ("entry[0]")
// is stepped over.
func leadingPath(br string) []string {
	s := strings.TrimLeft(br, "( ")
	var names []string
	for {
		i := 0
		for i < len(s) && (s[i] == '_' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || i > 0 && s[i] >= '0' && s[i] <= '9') {
			i++
		}
		if i == 0 || i < len(s) && s[i] == '(' {
			return names
		}
		names = append(names, s[:i])
		s = s[i:]
		if strings.HasPrefix(s, "[") {
			j := strings.IndexByte(s, ']')
			if j < 0 {
				return names
			}
			s = s[j+1:]
		}
		if !strings.HasPrefix(s, ".") {
			return names
		}
		s = s[1:]
	}
}

// elementIndex maps every element path of the model ("Patient.name",
// "Observation.value[x]") to its element.
func elementIndex(m *model) map[string]*element {
	idx := map[string]*element{}
	for _, td := range m.defs {
		for _, e := range td.elements {
			idx[e.path] = e
		}
	}
	return idx
}

// checkLeadingPath resolves a branch's leading path in the model, from its
// base: through inline elements, content references and data types. A
// choice element, a resource-typed element or a primitive ends what can be
// checked without reading types out of the expression.
func checkLeadingPath(idx map[string]*element, base, br string) error {
	_, err := resolvePath(idx, base, leadingPath(br))
	return err
}

// resolvePath follows names from a base and returns the element the last
// one names, or nil when the path leads through a choice, a resource or a
// primitive before its end (which is then not checked further).
func resolvePath(idx map[string]*element, base string, names []string) (*element, error) {
	if len(names) > 0 && names[0] == base {
		names = names[1:]
	}
	cur := base
	var e *element
	for i, n := range names {
		if e = idx[cur+"."+n]; e == nil {
			if e = idx[cur+"."+n+"[x]"]; e != nil && i == len(names)-1 {
				return e, nil
			}
			if e != nil {
				return nil, nil
			}
			return nil, fmt.Errorf("%s.%s is not an element of the model", cur, n)
		}
		switch {
		case e.contentRef != "":
			cur = strings.TrimPrefix(e.contentRef, "#")
		case isInline(e):
			cur = e.path
		case len(e.types) == 1 && idx[e.types[0].Code+".id"] != nil && e.types[0].Code != "Resource":
			cur = e.types[0].Code
		case i == len(names)-1:
		default:
			return nil, nil
		}
	}
	return e, nil
}

var (
	// A branch that keeps the references to one type: X.where(resolve() is T).
	resolveIsBranch = regexp.MustCompile(`^(.+)\.where\(resolve\(\) is ([A-Za-z]+)\)$`)
	// A branch that picks a choice's type: X.ofType(T) or X as T.
	ofTypeBranch = regexp.MustCompile(`^([A-Za-z.]+)(?:\.ofType\(([A-Za-z]+)\)| as ([A-Za-z]+))$`)
	plainBranch  = regexp.MustCompile(`^[A-Za-z]+(\.[A-Za-z]+)*$`)
)

// branchTargets returns the resource types a reference branch can select
// when the model says: the type a where(resolve() is T) keeps, or the
// targets of the Reference element the branch ends at (narrowed by ofType
// or as on a choice). It reports false when the branch is another shape,
// or the element may refer to any resource.
func branchTargets(idx map[string]*element, base, br string) ([]string, bool) {
	if m := resolveIsBranch.FindStringSubmatch(br); m != nil {
		return []string{m[2]}, true
	}
	path, only := br, ""
	if m := ofTypeBranch.FindStringSubmatch(br); m != nil {
		path, only = m[1], m[2]+m[3]
	}
	if !plainBranch.MatchString(path) {
		return nil, false
	}
	e, err := resolvePath(idx, base, strings.Split(path, "."))
	if err != nil || e == nil {
		return nil, false
	}
	var out []string
	for _, t := range e.types {
		if only != "" && t.Code != only {
			continue
		}
		if t.Code != "Reference" && t.Code != "canonical" {
			continue
		}
		if len(t.TargetProfile) == 0 {
			return nil, false // any resource
		}
		for _, p := range t.TargetProfile {
			name := strings.TrimPrefix(p, sdPrefix)
			if name == "Resource" {
				return nil, false
			}
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out, len(out) > 0
}

// narrowTargets returns a parameter's targets for one base: R4's, less
// those none of the base's branches can select. Targets stay as R4 gives
// them when a branch's targets cannot be told or nothing would be left.
func narrowTargets(idx map[string]*element, base string, branches, targets []string) []string {
	var can []string
	for _, br := range branches {
		ts, ok := branchTargets(idx, base, br)
		if !ok {
			return targets
		}
		can = append(can, ts...)
	}
	var out []string
	for _, t := range targets {
		if slices.Contains(can, t) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return targets
	}
	return out
}
