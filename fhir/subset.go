package fhir

import (
	"encoding/json"
	"strings"
)

// subsettedTag marks a resource that was returned with elements left out.
var subsettedTag = json.RawMessage(`{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}`)

// Subset returns the resource with only the top-level elements that
// _summary (true, text, data) or _elements ask for, marked SUBSETTED in
// meta.tag when anything was left out; with neither it returns body as
// is. resourceType, id and meta always stay, and so do elements the R4
// definitions make mandatory (min 1) for _summary=text and _elements.
// Elements inside complex values are kept whole.
func Subset(body []byte, summary string, elements []string) []byte {
	if (summary == "" || summary == "false") && len(elements) == 0 {
		return body
	}
	r, err := Parse(body, Limits{MaxDepth: 1 << 20})
	if err != nil {
		return body // stored resources always parse; keep it whole if not
	}
	keep := func(name string) bool {
		switch name {
		case "resourceType", "id", "meta":
			return true
		}
		def, _ := LookupElement(r.Type + "." + jsonElementName(name))
		switch {
		case len(elements) > 0:
			for _, e := range elements {
				if e == name || e == jsonElementName(name) || e == strings.TrimPrefix(name, "_") {
					return true
				}
			}
			return def.Min > 0
		case summary == "true":
			return def.Summary || name == "implicitRules"
		case summary == "text":
			return name == "text" || def.Min > 0
		case summary == "data":
			return name != "text"
		}
		return true
	}
	kept := r.members[:0:0]
	for _, m := range r.members {
		if keep(m.key) {
			kept = append(kept, m)
		}
	}
	if len(kept) == len(r.members) {
		return body
	}
	r.members = kept
	r.addTag(subsettedTag)
	return r.Bytes()
}

// jsonElementName maps a JSON property to its element name: _birthDate to
// birthDate, valueQuantity to value (choice elements are looked up by
// their JSON name, which LookupElement understands).
func jsonElementName(name string) string {
	return strings.TrimPrefix(name, "_")
}

// addTag appends a coding to meta.tag.
func (r *Resource) addTag(tag json.RawMessage) {
	var meta []member
	if raw := r.Member("meta"); raw != nil {
		if m, err := splitObject(raw); err == nil {
			meta = m
		}
	}
	found := false
	for i, m := range meta {
		if m.key == "tag" {
			var tags []json.RawMessage
			if json.Unmarshal(m.value, &tags) == nil {
				meta[i].value = jsonArray(append(tags, tag))
			}
			found = true
		}
	}
	if !found {
		meta = append(meta, member{key: "tag", value: jsonArray([]json.RawMessage{tag})})
	}
	r.set("meta", encodeObject(meta))
}

// jsonArray writes raw values as a JSON array, bytes untouched.
func jsonArray(items []json.RawMessage) json.RawMessage {
	b := []byte{'['}
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	return append(b, ']')
}
