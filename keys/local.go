package keys

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Local is the embedded-mode KMS: key-encryption keys (KEKs) kept in a
// file readable by its owner only, created on first use. Rotation appends
// a KEK version; older versions stay to unwrap keys not yet rewrapped.
type Local struct {
	path string
	mu   sync.Mutex
	keks map[int]cipher.AEAD
	last int
}

type localFile struct {
	KEKs []localKEK `json:"keks"`
}

type localKEK struct {
	Version int    `json:"version"`
	Key     []byte `json:"key"` // 32 bytes, base64 in JSON
}

// OpenLocal loads the KEK file at path, creating it (mode 0600) with a
// first KEK when it does not exist. It refuses a file that others may read.
func OpenLocal(path string) (*Local, error) {
	l := &Local{path: path}
	if err := l.load(); errors.Is(err, fs.ErrNotExist) {
		if err := l.create(); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Local) create() error {
	key, err := randomKey()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(l.path), 0o700); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	b, _ := json.Marshal(localFile{KEKs: []localKEK{{Version: 1, Key: key}}})
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return l.load() // another process created it first
	} else if err != nil {
		return fmt.Errorf("keys: create key file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("keys: write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keys: write key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return l.load()
}

// load reads the file, replacing the KEKs in memory.
func (l *Local) load() error {
	fi, err := os.Stat(l.path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("keys: key file %s has mode %v; it must be readable by its owner only (chmod 600)", l.path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(l.path)
	if err != nil {
		return fmt.Errorf("keys: read key file: %w", err)
	}
	var f localFile
	if err := json.Unmarshal(b, &f); err != nil || len(f.KEKs) == 0 {
		return fmt.Errorf("keys: key file %s is not a key file", l.path)
	}
	keks := map[int]cipher.AEAD{}
	last := 0
	for _, k := range f.KEKs {
		block, err := aes.NewCipher(k.Key)
		if err != nil || len(k.Key) != 32 || k.Version < 1 {
			return fmt.Errorf("keys: key file %s: version %d is not a 256-bit key", l.path, k.Version)
		}
		keks[k.Version], _ = cipher.NewGCM(block)
		last = max(last, k.Version)
	}
	l.keks, l.last = keks, last
	return nil
}

// Name implements KMS.
func (l *Local) Name() string { return "local" }

func wrapAAD(owner string) []byte { return []byte("ehrledger data key\x00" + owner) }

// Wrap implements KMS.
func (l *Local) Wrap(_ context.Context, owners []string, keys [][]byte) ([]Wrapped, error) {
	l.mu.Lock()
	kek, v := l.keks[l.last], l.last
	l.mu.Unlock()
	out := make([]Wrapped, len(owners))
	for i, o := range owners {
		blob := make([]byte, kek.NonceSize(), kek.NonceSize()+len(keys[i])+kek.Overhead())
		if _, err := rand.Read(blob); err != nil {
			return nil, err
		}
		out[i] = Wrapped{Owner: o, Version: v, Blob: kek.Seal(blob, blob, keys[i], wrapAAD(o))}
	}
	return out, nil
}

// Unwrap implements KMS. A version it does not know makes it read the file
// again: another process may have rotated.
func (l *Local) Unwrap(_ context.Context, wrapped []Wrapped) ([][]byte, error) {
	out := make([][]byte, len(wrapped))
	for i, w := range wrapped {
		kek, err := l.kek(w.Version)
		if err != nil {
			return nil, err
		}
		ns := kek.NonceSize()
		if len(w.Blob) < ns {
			return nil, fmt.Errorf("%w: wrapped key of %s is truncated", ErrTampered, w.Owner)
		}
		key, err := kek.Open(nil, w.Blob[:ns], w.Blob[ns:], wrapAAD(w.Owner))
		if err != nil {
			return nil, fmt.Errorf("%w: wrapped key of %s does not unwrap", ErrTampered, w.Owner)
		}
		out[i] = key
	}
	return out, nil
}

func (l *Local) kek(version int) (cipher.AEAD, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k, ok := l.keks[version]; ok {
		return k, nil
	}
	if err := l.load(); err != nil {
		return nil, err
	}
	if k, ok := l.keks[version]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("keys: key file %s has no key-encryption key version %d", l.path, version)
}

// Rewrap implements KMS. The local KMS runs in this process, so rewrapping
// is unwrap and wrap; the plaintext never leaves it.
func (l *Local) Rewrap(ctx context.Context, wrapped []Wrapped) ([]Wrapped, error) {
	plain, err := l.Unwrap(ctx, wrapped)
	if err != nil {
		return nil, err
	}
	owners := make([]string, len(wrapped))
	for i, w := range wrapped {
		owners[i] = w.Owner
	}
	return l.Wrap(ctx, owners, plain)
}

// Rotate implements KMS: it appends a new KEK version to the file
// (written to a temporary file, synced and renamed into place).
func (l *Local) Rotate(context.Context) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.load(); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(l.path)
	if err != nil {
		return 0, err
	}
	var f localFile
	if err := json.Unmarshal(b, &f); err != nil {
		return 0, err
	}
	key, err := randomKey()
	if err != nil {
		return 0, err
	}
	f.KEKs = append(f.KEKs, localKEK{Version: l.last + 1, Key: key})
	b, _ = json.Marshal(f)
	tmp, err := os.CreateTemp(filepath.Dir(l.path), ".keys-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), l.path); err != nil {
		return 0, err
	}
	if err := l.load(); err != nil {
		return 0, err
	}
	return l.last, nil
}

// Latest implements KMS.
func (l *Local) Latest(context.Context) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.load(); err != nil {
		return 0, err
	}
	return l.last, nil
}
