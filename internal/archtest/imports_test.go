// Package archtest checks the house rules on imports that keep the data
// flow visible: dependencies point downward (cmd → node → server → erasure →
// export → disclosure → {consent, audit, auth} → {store, keys} → fhir), gorm stays inside store, and nobody
// logs through the standard library's log package.
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/ehrledger/ehrledger"

type pkg struct {
	ImportPath  string
	Imports     []string
	TestImports []string
}

func packages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// layer of each top-level package; a package may import only packages of a
// lower layer (or its own sub-packages).
var layer = map[string]int{
	"fhir": 0, "migrations": 0,
	"store": 1, "keys": 1,
	"consent": 2, "audit": 2, "auth": 2,
	"disclosure": 3,
	"export":     4,
	"erasure":    5,
	"server":     6,
	"node":       7,
	"cmd":        8, "conformance": 8, "bench": 8,
}

func top(importPath string) string {
	rest := strings.TrimPrefix(importPath, module+"/")
	first, _, _ := strings.Cut(rest, "/")
	return first
}

func TestImportRules(t *testing.T) {
	for _, p := range packages(t) {
		from := top(p.ImportPath)
		for _, imp := range p.Imports {
			switch {
			case imp == "log":
				t.Errorf("%s imports the standard log package; use log/slog", p.ImportPath)
			case strings.HasPrefix(imp, "gorm.io/") && from != "store":
				t.Errorf("%s imports %s; only store may use gorm", p.ImportPath, imp)
			case from == "fhir" && strings.HasPrefix(imp, module+"/") && top(imp) != "fhir":
				t.Errorf("%s imports %s; fhir imports nothing else of ours", p.ImportPath, imp)
			case (from == "consent" || from == "keys") && imp == "net/http":
				t.Errorf("%s imports net/http; %s stays free of HTTP", p.ImportPath, from)
			case strings.HasPrefix(imp, module+"/") && from != "internal":
				to := top(imp)
				lf, okf := layer[from]
				lt, okt := layer[to]
				if to == "internal" || to == from || to == "migrations" {
					continue
				}
				if !okf || !okt {
					t.Errorf("%s imports %s: add both packages' layers to archtest", p.ImportPath, imp)
				} else if lt >= lf {
					t.Errorf("%s imports %s: dependencies must point downward", p.ImportPath, imp)
				}
			}
		}
	}
}
