package main

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// harnessTB is the minimal testing.TB that vault.TestCore* helpers need
// outside of "go test". Fatal* print to stderr and exit the process;
// Cleanup functions run (last first) when runCleanups is called at shutdown.
// Methods not implemented here panic through the nil embedded interface.
type harnessTB struct {
	testing.TB

	mu       sync.Mutex
	failed   bool
	cleanups []func()
}

func (t *harnessTB) Name() string { return "vaultdev" }
func (t *harnessTB) Helper()      {}

func (t *harnessTB) Log(args ...any) { fmt.Fprintln(stderr, append([]any{"vaultdev:"}, args...)...) }
func (t *harnessTB) Logf(format string, args ...any) {
	fmt.Fprintf(stderr, "vaultdev: "+format+"\n", args...)
}

func (t *harnessTB) Error(args ...any) { t.Log(args...); t.Fail() }
func (t *harnessTB) Errorf(format string, args ...any) {
	t.Logf(format, args...)
	t.Fail()
}
func (t *harnessTB) Fatal(args ...any) { t.Log(args...); t.FailNow() }
func (t *harnessTB) Fatalf(format string, args ...any) {
	t.Logf(format, args...)
	t.FailNow()
}

func (t *harnessTB) Fail() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
}

func (t *harnessTB) FailNow() { os.Exit(1) }

func (t *harnessTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *harnessTB) Skip(args ...any)                 { t.Fatal(append([]any{"skip:"}, args...)...) }
func (t *harnessTB) Skipf(format string, args ...any) { t.Fatalf("skip: "+format, args...) }
func (t *harnessTB) SkipNow()                         { t.Fatal("skip") }
func (t *harnessTB) Skipped() bool                    { return false }

func (t *harnessTB) TempDir() string {
	dir, err := os.MkdirTemp("", "vaultdev")
	if err != nil {
		t.Fatalf("TempDir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (t *harnessTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *harnessTB) runCleanups() {
	for {
		t.mu.Lock()
		if len(t.cleanups) == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[len(t.cleanups)-1]
		t.cleanups = t.cleanups[:len(t.cleanups)-1]
		t.mu.Unlock()
		f()
	}
}
