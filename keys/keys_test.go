package keys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func openLocal(t *testing.T) *Local {
	t.Helper()
	l, err := OpenLocal(filepath.Join(t.TempDir(), "keys", "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLocalKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	if _, err := OpenLocal(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLocal(path); err == nil {
		t.Fatal("a key file others can read was accepted")
	}
	os.Chmod(path, 0o600)
	if err := os.WriteFile(path, []byte("not keys"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLocal(path); err == nil {
		t.Fatal("a file that is not a key file was accepted")
	}
}

// kmsContract checks what every KMS must do.
func kmsContract(t *testing.T, kms KMS) {
	ctx := context.Background()
	owners := []string{"Patient/a", "Patient/b"}
	plain := [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}
	w, err := kms.Wrap(ctx, owners, plain)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != 2 || bytes.Contains(w[0].Blob, plain[0]) {
		t.Fatalf("wrapped %v", w)
	}
	got, err := kms.Unwrap(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[0], plain[0]) || !bytes.Equal(got[1], plain[1]) {
		t.Fatal("unwrap did not return the wrapped keys")
	}

	t.Run("a wrapped key moved to another owner does not unwrap", func(t *testing.T) {
		moved := w[0]
		moved.Owner = "Patient/b"
		if _, err := kms.Unwrap(ctx, []Wrapped{moved}); !errors.Is(err, ErrTampered) {
			t.Fatalf("got %v, want ErrTampered", err)
		}
	})

	t.Run("rotation then rewrap moves keys to the new version and keeps them", func(t *testing.T) {
		before, err := kms.Latest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v, err := kms.Rotate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v != before+1 {
			t.Fatalf("rotated to %d after %d", v, before)
		}
		if got, err := kms.Unwrap(ctx, w); err != nil || !bytes.Equal(got[1], plain[1]) {
			t.Fatalf("keys wrapped under the old version no longer unwrap: %v", err)
		}
		nw, err := kms.Rewrap(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		if nw[0].Version != v || nw[1].Version != v || bytes.Equal(nw[0].Blob, w[0].Blob) {
			t.Fatalf("rewrapped to versions %d, %d, want %d", nw[0].Version, nw[1].Version, v)
		}
		got, err := kms.Unwrap(ctx, nw)
		if err != nil || !bytes.Equal(got[0], plain[0]) {
			t.Fatalf("rewrapped key does not unwrap to the same key: %v", err)
		}
	})
}

func TestLocalKMS(t *testing.T) { kmsContract(t, openLocal(t)) }

func TestLocalRotationSeenByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	server, _ := OpenLocal(path)
	cli, _ := OpenLocal(path)
	ctx := context.Background()
	if _, err := cli.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := cli.Wrap(ctx, []string{"Patient/a"}, [][]byte{make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.Unwrap(ctx, w); err != nil {
		t.Fatalf("a key wrapped under a version rotated by another process: %v", err)
	}
}

func TestSealOpen(t *testing.T) {
	raw, _ := randomKey()
	k, err := newDataKey("Patient/a", raw)
	if err != nil {
		t.Fatal(err)
	}
	aad := []byte("Patient\x00a\x001")
	sealed, err := k.Seal(aad, []byte(`{"resourceType":"Patient"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.Open(aad, sealed); err != nil || string(got) != `{"resourceType":"Patient"}` {
		t.Fatalf("open: %q, %v", got, err)
	}
	other, _ := randomKey()
	k2, _ := newDataKey("Patient/b", other)
	flipped := slices.Clone(sealed)
	flipped[len(flipped)/2] ^= 1
	for name, try := range map[string]func() ([]byte, error){
		"a flipped byte":       func() ([]byte, error) { return k.Open(aad, flipped) },
		"another row's AAD":    func() ([]byte, error) { return k.Open([]byte("Patient\x00b\x001"), sealed) },
		"another version":      func() ([]byte, error) { return k.Open([]byte("Patient\x00a\x002"), sealed) },
		"the wrong key":        func() ([]byte, error) { return k2.Open(aad, sealed) },
		"a truncated body":     func() ([]byte, error) { return k.Open(aad, sealed[:10]) },
		"a body left in clear": func() ([]byte, error) { return k.Open(aad, []byte(`{"resourceType":"Patient"}`)) },
	} {
		if got, err := try(); !errors.Is(err, ErrTampered) || got != nil {
			t.Errorf("%s: got %q, %v; want ErrTampered", name, got, err)
		}
	}
	gone := erasedKey("Patient/a")
	if _, err := gone.Open(aad, sealed); !errors.Is(err, ErrErased) {
		t.Errorf("erased key opened: %v", err)
	}
	if _, err := gone.Seal(aad, []byte("x")); !errors.Is(err, ErrErased) {
		t.Errorf("erased key sealed: %v", err)
	}
}

// memStore is a keys.Store in memory, for the keyring's own logic; the
// SQL store is tested behind it in the server's integration tests.
type memStore struct {
	mu      sync.Mutex
	recs    map[string]Record
	failUpd int // UpdateWrappedKeys calls that fail after this many succeed (-1: never)
	updates int
}

func newMemStore() *memStore { return &memStore{recs: map[string]Record{}, failUpd: -1} }

func (m *memStore) WrappedKeys(_ context.Context, owners []string) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Record
	for _, o := range owners {
		if r, ok := m.recs[o]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

func (m *memStore) AddWrappedKeys(_ context.Context, recs []Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		if _, ok := m.recs[r.Owner]; !ok {
			m.recs[r.Owner] = r
		}
	}
	return nil
}

func (m *memStore) StaleWrappedKeys(_ context.Context, kms string, latest int, after string, limit int) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Record
	for _, r := range m.recs {
		if r.KMS == kms && r.Version < latest && r.Owner > after && !r.Erased {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Owner < out[j].Owner })
	return out[:min(limit, len(out))], nil
}

func (m *memStore) UpdateWrappedKeys(_ context.Context, recs []Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failUpd >= 0 && m.updates >= m.failUpd {
		return errors.New("database went away")
	}
	m.updates++
	for _, r := range recs {
		m.recs[r.Owner] = r
	}
	return nil
}

func (m *memStore) EraseKey(_ context.Context, owner string, _ []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[owner]
	if !ok {
		return 0, ErrNoKey
	}
	r.Blob, r.Erased = nil, true
	m.recs[owner] = r
	return 1, nil
}

// countingKMS counts the keys each call unwraps and can be made slow.
type countingKMS struct {
	KMS
	unwrapCalls, unwrapped atomic.Int64
	delay                  time.Duration
}

func (c *countingKMS) Unwrap(ctx context.Context, w []Wrapped) ([][]byte, error) {
	c.unwrapCalls.Add(1)
	c.unwrapped.Add(int64(len(w)))
	time.Sleep(c.delay)
	return c.KMS.Unwrap(ctx, w)
}

func TestKeyringCachesAndLoadsOnce(t *testing.T) {
	ctx := context.Background()
	kms := &countingKMS{KMS: openLocal(t), delay: 20 * time.Millisecond}
	st := newMemStore()
	creator := NewKeyring(kms, st, Options{})
	owners := make([]string, 10)
	for i := range owners {
		owners[i] = fmt.Sprintf("Patient/p%d", i)
	}
	created, err := creator.Ensure(ctx, owners)
	if err != nil {
		t.Fatal(err)
	}
	// A second keyring (another replica, or a restart) starts cold.
	kr := NewKeyring(kms, st, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := range 1000 {
		wg.Go(func() {
			o := owners[i%len(owners)]
			ks, err := kr.Keys(ctx, []string{o})
			if err != nil {
				errs <- err
				return
			}
			sealed, _ := created[o].Seal(nil, []byte("x"))
			if _, err := ks[o].Open(nil, sealed); err != nil {
				errs <- fmt.Errorf("%s: the loaded key is not the created one: %w", o, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := kms.unwrapped.Load(); n != int64(len(owners)) {
		t.Fatalf("1,000 reads of %d patients unwrapped %d keys through the KMS, want %d", len(owners), n, len(owners))
	}
	t.Logf("KMS calls for 1,000 concurrent reads of 10 patients: %d", kms.unwrapCalls.Load())

	t.Run("a batch unwraps every missing key in one call", func(t *testing.T) {
		cold := NewKeyring(kms, st, Options{})
		before := kms.unwrapCalls.Load()
		if _, err := cold.Keys(ctx, owners); err != nil {
			t.Fatal(err)
		}
		if n := kms.unwrapCalls.Load() - before; n != 1 {
			t.Fatalf("%d KMS calls for one batch", n)
		}
	})

	t.Run("the cache is bounded and its entries expire", func(t *testing.T) {
		small := NewKeyring(kms, st, Options{CacheSize: 2, TTL: 50 * time.Millisecond})
		before := kms.unwrapped.Load()
		small.Keys(ctx, owners[:3]) // the first falls out
		small.Keys(ctx, owners[2:3])
		if n := kms.unwrapped.Load() - before; n != 3 {
			t.Fatalf("%d unwraps, want 3 (the cached one reused)", n)
		}
		small.Keys(ctx, owners[:1])
		if n := kms.unwrapped.Load() - before; n != 4 {
			t.Fatalf("an evicted key was not unwrapped again (%d unwraps)", n)
		}
		time.Sleep(80 * time.Millisecond)
		small.Keys(ctx, owners[:1])
		if n := kms.unwrapped.Load() - before; n != 5 {
			t.Fatalf("an expired key was not unwrapped again (%d unwraps)", n)
		}
	})
}

func TestEnsureConcurrentCreatesOneKey(t *testing.T) {
	ctx := context.Background()
	kms := openLocal(t)
	st := newMemStore()
	var keys [8]*DataKey
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			ks, err := NewKeyring(kms, st, Options{}).Ensure(ctx, []string{"Patient/x"})
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = ks["Patient/x"]
		})
	}
	wg.Wait()
	sealed, _ := keys[0].Seal(nil, []byte("x"))
	for i, k := range keys {
		if _, err := k.Open(nil, sealed); err != nil {
			t.Fatalf("replica %d got another key for the same patient", i)
		}
	}
}

func TestEraseAndRewrap(t *testing.T) {
	ctx := context.Background()
	kms := openLocal(t)
	st := newMemStore()
	kr := NewKeyring(kms, st, Options{})
	var owners []string
	for i := range 25 {
		owners = append(owners, fmt.Sprintf("Patient/p%02d", i))
	}
	before, err := kr.Ensure(ctx, owners)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := kr.Erase(ctx, ProviderOwner, nil); err == nil {
		t.Fatal("the provider's key was erased")
	}
	if _, err := kr.Erase(ctx, "Patient/nobody", nil); !errors.Is(err, ErrNoKey) {
		t.Fatalf("erasing an unknown patient: %v", err)
	}
	if _, err := kr.Erase(ctx, "Patient/p03", nil); err != nil {
		t.Fatal(err)
	}
	ks, _ := kr.Ensure(ctx, []string{"Patient/p03"})
	if !ks["Patient/p03"].Erased() {
		t.Fatal("an erased patient got a new key")
	}

	if _, err := kms.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	st.failUpd = 2 // interrupted after two batches of 5
	n, err := kr.Rewrap(ctx, 5, nil)
	if err == nil || n != 10 {
		t.Fatalf("interrupted rewrap: %d, %v", n, err)
	}
	st.failUpd = -1
	n, err = kr.Rewrap(ctx, 5, nil)
	if err != nil || n != 14 {
		t.Fatalf("resumed rewrap: rewrapped %d (%v), want the 14 left", n, err)
	}
	fresh := NewKeyring(kms, st, Options{})
	after, err := fresh.Keys(ctx, owners)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range owners {
		r := st.recs[o]
		if o == "Patient/p03" {
			if !r.Erased || !after[o].Erased() {
				t.Fatal("rotation revived an erased key")
			}
			continue
		}
		if r.Version != 2 {
			t.Fatalf("%s still under version %d", o, r.Version)
		}
		sealed, _ := before[o].Seal(nil, []byte("x"))
		if _, err := after[o].Open(nil, sealed); err != nil {
			t.Fatalf("%s: rewrapping changed the data key", o)
		}
	}
}
