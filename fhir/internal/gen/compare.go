package main

import (
	"fmt"
	"strconv"
)

// compareSnapshots lists, per definition, where the published snapshot
// disagrees with the element list rebuilt from the differentials: elements
// only one side has, and differing cardinality or types. A long list means
// the package edited its snapshots.
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
	return strconv.Itoa(e.min) + ".." + e.max + " " + types
}
