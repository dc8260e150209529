package keys

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Each patient's data is sealed under their own data key, wrapped by the
// KMS; erasing the key crypto-shreds everything sealed under it.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "keys-example")
	defer os.RemoveAll(dir)
	kms, _ := OpenLocal(filepath.Join(dir, "kek.json"))
	kr := NewKeyring(kms, newMemStore(), Options{})

	alice := PatientOwner("alice")
	ks, _ := kr.Ensure(ctx, []string{alice})
	aad := []byte("Patient/alice/_history/1")
	sealed, _ := ks[alice].Seal(aad, []byte(`{"resourceType":"Patient","id":"alice"}`))
	plain, _ := ks[alice].Open(aad, sealed)
	fmt.Println(string(plain))
	_, err := ks[alice].Open([]byte("Patient/bob/_history/1"), sealed)
	fmt.Println(errors.Is(err, ErrTampered))

	kr.Erase(ctx, alice, nil)
	ks, _ = kr.Keys(ctx, []string{alice})
	fmt.Println(ks[alice].Erased())
	// Output:
	// {"resourceType":"Patient","id":"alice"}
	// true
	// true
}
