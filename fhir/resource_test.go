package fhir

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseKeepsValuesAndRewritesOnlyIDAndMeta(t *testing.T) {
	in := `{ "active" : true, "resourceType":"Patient", "meta":{"tag":[{"code":"a"}],"versionId":"9","lastUpdated":"2000-01-01T00:00:00Z","source":"s"},
	"extension":[{"url":"http://x","valueDecimal":1.50}], "_birthDate":{"id":"b"}, "birthDate":"2000", "id":"old" }`
	r, err := Parse([]byte(in), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Type != "Patient" || r.ID != "old" {
		t.Fatalf("got type %q id %q", r.Type, r.ID)
	}
	r.SetID("new")
	r.SetMeta(3, time.Date(2026, 11, 25, 1, 2, 3, 456789000, time.FixedZone("x", 3600)))
	got := string(r.Bytes())
	want := `{"resourceType":"Patient","id":"new","meta":{"versionId":"3","lastUpdated":"2026-11-25T00:02:03.456789Z","tag":[{"code":"a"}],"source":"s"},` +
		`"active":true,"extension":[{"url":"http://x","valueDecimal":1.50}],"_birthDate":{"id":"b"},"birthDate":"2000"}`
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}

func TestParseMetaAddedWhenAbsent(t *testing.T) {
	r, err := Parse([]byte(`{"resourceType":"Basic","code":{"text":"<b>&amp;</b>"}}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	r.SetMeta(1, time.Unix(0, 0))
	want := `{"resourceType":"Basic","meta":{"versionId":"1","lastUpdated":"1970-01-01T00:00:00.000000Z"},"code":{"text":"<b>&amp;</b>"}}`
	if got := string(r.Bytes()); got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name, body, code string
		depth            int
	}{
		{"empty", "  ", "structure", 0},
		{"invalid UTF-8", "{\"resourceType\":\"Patient\",\"x\":\"\xc3\x28\"}", "structure", 0},
		{"not an object", `"Patient"`, "structure", 0},
		{"array", `[{"resourceType":"Patient"}]`, "structure", 0},
		{"truncated", `{"resourceType":"Patient"`, "structure", 0},
		{"trailing data", `{"resourceType":"Patient"}{}`, "structure", 0},
		{"duplicate key", `{"resourceType":"Patient","id":"a","id":"b"}`, "structure", 0},
		{"no resourceType", `{"id":"a"}`, "required", 0},
		{"numeric resourceType", `{"resourceType":1}`, "structure", 0},
		{"numeric id", `{"resourceType":"Patient","id":1}`, "structure", 0},
		{"too deep", `{"resourceType":"Patient","a":[[[[1]]]]}`, "too-costly", 4},
		{"a lone high surrogate", `{"resourceType":"Patient","a":"\ud800"}`, "structure", 0},
		{"a lone low surrogate", `{"resourceType":"Patient","a":"x\udc00"}`, "structure", 0},
		{"a high surrogate before another escape", `{"resourceType":"Patient","a":"\ud800\u0041"}`, "structure", 0},
		{"deep brackets inside strings do not count", "", "", 0},
		{"a surrogate pair, and an escaped backslash before u, are fine", "", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.body == "" && strings.HasPrefix(tc.name, "deep") {
				body := `{"resourceType":"Patient","x":"` + strings.Repeat("[{", 500) + `"}`
				if _, err := Parse([]byte(body), Limits{MaxDepth: 2}); err != nil {
					t.Fatalf("brackets in a string were counted: %v", err)
				}
				return
			}
			if tc.body == "" {
				body := `{"resourceType":"Patient","x":"\ud83d\ude00 \\ud800 \\\ud83d\ude00"}`
				if _, err := Parse([]byte(body), Limits{}); err != nil {
					t.Fatalf("a valid string was refused: %v", err)
				}
				return
			}
			_, err := Parse([]byte(tc.body), Limits{MaxDepth: tc.depth})
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Code != tc.code {
				t.Fatalf("got %v, want ParseError with code %s", err, tc.code)
			}
		})
	}
}

func TestIdentifiers(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []Identifier
	}{
		{"list", `{"resourceType":"Patient","identifier":[{"system":"s","value":"1"},{"value":"2"},{"system":"no value"}]}`,
			[]Identifier{{"s", "1"}, {"", "2"}}},
		{"single", `{"resourceType":"Bundle","identifier":{"system":"s","value":"b"}}`, []Identifier{{"s", "b"}}},
		{"none", `{"resourceType":"Patient"}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse([]byte(tc.body), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			got := r.Identifiers()
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestParseInstantParam(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"},
		{"2024-05-01T10:00:00.5+02:00", "2024-05-01T08:00:00.5Z"},
		{"2024-05-01", "2024-05-01T00:00:00Z"},
		{"2024-05-01T10:00:00", ""},
		{"yesterday", ""},
	} {
		got, err := ParseInstantParam(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: accepted", tc.in)
			}
			continue
		}
		if err != nil || got.Format(time.RFC3339Nano) != tc.want {
			t.Errorf("%s: got %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParse checks that no input makes Parse panic and that what it accepts
// round-trips through Bytes as a parseable resource.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Patient","id":"a","meta":{"versionId":"1"}}`,
		`{"resourceType":"Observation","valueQuantity":{"value":1.50}}`,
		`{"resourceType":"X","meta":[1]}`,
		`[`, `{"a":"\u00e9\ud83d\ude00"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b, Limits{MaxDepth: 20})
		if err != nil {
			return
		}
		r.SetID("x")
		r.SetMeta(2, time.Unix(1, 0))
		again, err := Parse(r.Bytes(), Limits{MaxDepth: 21})
		if err != nil {
			t.Fatalf("Bytes produced unparseable JSON %q: %v", r.Bytes(), err)
		}
		if again.Type != r.Type || again.ID != "x" {
			t.Fatalf("round trip changed type/id: %q", r.Bytes())
		}
	})
}
