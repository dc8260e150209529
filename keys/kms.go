package keys

import (
	"context"
	"errors"
)

// The KMSs.
var (
	_ KMS = (*Local)(nil)
	_ KMS = (*Vault)(nil)
)

// Wrapped is a data key as a KMS wrapped it.
type Wrapped struct {
	Owner   string
	Version int    // the KMS key version that wrapped it
	Blob    []byte // the KMS's ciphertext
}

// KMS wraps and unwraps data keys under a key it never reveals. Each
// owner's key is wrapped with the owner as context, so a wrapped key
// copied to another owner does not unwrap. Calls take batches so that a
// search spanning many patients costs one round trip.
type KMS interface {
	// Name identifies the service and its key; it is stored beside every
	// wrapped key so that a server pointed at another KMS refuses to start.
	Name() string
	// Wrap wraps keys[i] for owners[i] under the newest key version.
	Wrap(ctx context.Context, owners []string, keys [][]byte) ([]Wrapped, error)
	// Unwrap returns the plaintext of each wrapped key.
	Unwrap(ctx context.Context, wrapped []Wrapped) ([][]byte, error)
	// Rewrap wraps each key again under the newest key version without
	// revealing it to the caller.
	Rewrap(ctx context.Context, wrapped []Wrapped) ([]Wrapped, error)
	// Rotate makes a new key version the newest and returns its number.
	Rotate(ctx context.Context) (int, error)
	// Latest returns the newest key version.
	Latest(ctx context.Context) (int, error)
}

// ErrUnavailable wraps failures to reach the KMS (the server answers 503
// and recovers when the KMS does).
var ErrUnavailable = errors.New("keys: key management service unavailable")
