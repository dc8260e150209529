package archtest

import (
	"encoding/json"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// storeReads are the methods of store.Store and store.Tx that return
// patient data (bodies, or which resources match criteria). Only the
// gate (package disclosure) may call them: a handler that did would read
// around the scopes, the consents and the ledger.
var storeReads = map[string]bool{
	"Read": true, "VRead": true, "ReadMany": true, "Current": true, "Search": true, "History": true,
	"References": true, "Referrers": true, "CountByOwner": true, "MatchOwned": true,
	"CurrentOf": true, "OwnedKeys": true, "OwnerKeys": true,
}

// TestHandlersReadThroughTheGate fails when package server (the HTTP
// handlers) or package export (the Bulk Data jobs) calls a store method
// that reads patient data: every such read goes through package
// disclosure.
func TestHandlersReadThroughTheGate(t *testing.T) {
	for _, pkg := range []string{"server", "export"} {
		t.Run(pkg, func(t *testing.T) { readsThroughTheGate(t, module+"/"+pkg) })
	}
}

// readsThroughTheGate fails when package path calls a store method that
// reads patient data.
func readsThroughTheGate(t *testing.T, path string) {
	pkgs := exportData(t, path)
	fset := token.NewFileSet()
	srv := pkgs[path]
	var files []*ast.File
	for _, name := range srv.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(srv.Dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		p, ok := pkgs[path]
		if !ok || p.Export == "" {
			return nil, os.ErrNotExist
		}
		return os.Open(p.Export)
	})
	info := &types.Info{Selections: map[*ast.SelectorExpr]*types.Selection{}}
	if _, err := (&types.Config{Importer: imp}).Check(path, fset, files, info); err != nil {
		t.Fatal(err)
	}
	found := 0
	for sel, s := range info.Selections {
		fn, ok := s.Obj().(*types.Func)
		if !ok || fn.Pkg() == nil || fn.Pkg().Path() != module+"/store" {
			continue
		}
		recv := types.TypeString(s.Recv(), nil)
		if !strings.HasSuffix(recv, "store.Store") && !strings.HasSuffix(recv, "store.Tx") {
			continue
		}
		found++
		if storeReads[fn.Name()] {
			t.Errorf("%s: %s calls %s.%s, which reads patient data: go through the gate (package disclosure)", fset.Position(sel.Pos()), path, recv, fn.Name())
		}
	}
	if found == 0 {
		t.Fatalf("no call of a store method found in package %s: the check sees nothing", path)
	}
}

type listed struct {
	ImportPath, Dir, Export string
	GoFiles                 []string
}

// exportData lists pkg and its dependencies with their compiled export
// data (go list -export builds it).
func exportData(t *testing.T, pkg string) map[string]listed {
	t.Helper()
	out, err := exec.Command("go", "list", "-export", "-deps", "-json", pkg).Output()
	if err != nil {
		t.Fatalf("go list -export: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	pkgs := map[string]listed{}
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}
