package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// compareSnapshots lists, per definition, where the published snapshot
// disagrees with the element list rebuilt from the differentials: elements
// only one side has, and differing cardinality, types or bindings. A long
// list means the package edited its snapshots.
func compareSnapshots(m *model) []string {
	var out []string
	for _, td := range m.defs {
		sd := td.sd
		if sd.Kind == "primitive-type" {
			continue
		}
		snap := map[string]*element{}
		var order []string
		for _, de := range sd.Snapshot.Element[min(1, len(sd.Snapshot.Element)):] {
			e := &element{path: de.Path}
			merge(e, de)
			snap[de.Path] = e
			order = append(order, de.Path)
		}
		rebuilt := map[string]*element{}
		for _, e := range td.elements {
			rebuilt[e.path] = e
			s := snap[e.path]
			if s == nil {
				out = append(out, fmt.Sprintf("%s: not in the published snapshot", e.path))
				continue
			}
			if a, b := describe(sd, e), describe(sd, s); a != b {
				out = append(out, fmt.Sprintf("%s: differential gives %s, snapshot %s", e.path, a, b))
			}
		}
		for _, p := range order {
			if rebuilt[p] == nil {
				out = append(out, fmt.Sprintf("%s: only in the published snapshot (dropped)", p))
			}
		}
	}
	return out
}

func describe(sd *structureDefinition, e *element) string {
	types, err := typeList(sd, e)
	if err != nil {
		types = "?" + err.Error()
	}
	s := strconv.Itoa(e.min) + ".." + e.max + " " + types
	if b := e.binding; b != nil && b.Strength != "" {
		s += " " + b.Strength + " " + b.ValueSet
	}
	return s
}

// compareSchemaEnums lists where the codes enumerated for an element differ
// from the enum that the JSON schema of the package (fhir.schema.json)
// gives the same property. HL7 generates the schema from the definitions
// but not from the ValueSet resources, so a difference points at an edit to
// one of them. The schema names the object of a backbone element after its
// type and its own name ("Bundle_Request" for Bundle.entry.request, with a
// number appended where that repeats); elements it gives no enum are not
// compared.
func compareSchemaEnums(m *model, schemaFile string) ([]string, error) {
	data, err := os.ReadFile(schemaFile)
	if err != nil {
		return nil, err
	}
	type enumProp struct {
		Enum  []string `json:"enum"`
		Items *struct {
			Enum []string `json:"enum"`
		} `json:"items"`
	}
	var schema struct {
		Definitions map[string]struct {
			Properties map[string]enumProp `json:"properties"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(schemaFile), err)
	}
	sets := map[string]*valueSet{}
	for _, vs := range m.valueSets {
		sets[vs.name] = vs
	}
	var out []string
	compared := 0
	for _, td := range m.defs {
		for _, e := range td.elements {
			if e.valueSet == "" {
				continue
			}
			segs := strings.Split(e.path, ".")
			owner := segs[0]
			if len(segs) > 2 {
				parent := segs[len(segs)-2]
				owner += "_" + strings.ToUpper(parent[:1]) + parent[1:]
			}
			var enums [][]string
			for name, def := range schema.Definitions {
				if name != owner && !(strings.HasPrefix(name, owner) && strings.Trim(name[len(owner):], "0123456789") == "") {
					continue
				}
				p, ok := def.Properties[segs[len(segs)-1]]
				if !ok {
					continue
				}
				if p.Items != nil {
					p.Enum = p.Items.Enum
				}
				if len(p.Enum) > 0 {
					enums = append(enums, p.Enum)
				}
			}
			if len(enums) == 0 {
				continue
			}
			compared++
			vs := sets[e.valueSet]
			if slices.ContainsFunc(enums, func(enum []string) bool { return sameSet(enum, vs.codes) }) {
				continue
			}
			extra := slices.DeleteFunc(slices.Clone(vs.codes), func(c string) bool { return slices.Contains(enums[0], c) })
			missing := slices.DeleteFunc(slices.Clone(enums[0]), func(c string) bool { return slices.Contains(vs.codes, c) })
			out = append(out, fmt.Sprintf("%s: value set %s differs from the JSON schema enum: only in the value set [%s], only in the schema [%s]",
				e.path, vs.url, strings.Join(extra, " "), strings.Join(missing, " ")))
		}
	}
	sort.Strings(out)
	out = append(out, fmt.Sprintf("terminology: %d checked code elements compared with the JSON schema enums, %d differ", compared, len(out)))
	return out, nil
}
