package fhir

import (
	"bytes"
	"encoding/json"
)

// referenceKey is the JSON key of Reference.reference.
var referenceKey = []byte(`"reference"`)

// RewriteReferences calls fn with the value of every "reference" property
// of a JSON document (Reference.reference, wherever it is nested) and,
// where fn answers true, replaces that value. Everything else stays byte
// for byte. It is how a transaction turns urn:uuid and conditional
// references into the ids the server assigned.
func RewriteReferences(body []byte, fn func(ref string) (string, bool)) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(body); {
		if body[i] != '"' {
			i++
			continue
		}
		end := stringEnd(body, i)
		j := skipSpace(body, end)
		if j >= len(body) || body[j] != ':' {
			i = end // a string value, not a key
			continue
		}
		if !bytes.Equal(body[i:end], referenceKey) {
			i = j + 1
			continue
		}
		v := skipSpace(body, j+1)
		if v >= len(body) || body[v] != '"' {
			i = j + 1
			continue
		}
		vend := stringEnd(body, v)
		var ref string
		if json.Unmarshal(body[v:vend], &ref) == nil {
			if repl, ok := fn(ref); ok {
				out = append(out, body[last:v]...)
				out = append(out, quote(repl)...)
				last = vend
			}
		}
		i = vend
	}
	if out == nil {
		return body
	}
	return append(out, body[last:]...)
}

// References lists the values of every "reference" property of a JSON
// document, in order.
func References(body []byte) []string {
	var refs []string
	RewriteReferences(body, func(ref string) (string, bool) {
		refs = append(refs, ref)
		return "", false
	})
	return refs
}

// stringEnd returns the index just past the JSON string starting at
// body[start] (a quote); len(body) when it is not closed.
func stringEnd(body []byte, start int) int {
	for i := start + 1; i < len(body); i++ {
		switch body[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(body)
}

func skipSpace(body []byte, i int) int {
	for i < len(body) {
		switch body[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}
