package keys_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/internal/testvault"
	"github.com/ehrledger/ehrledger/keys"
	vault "github.com/hashicorp/vault/api"
)

// uniqueKey names a Transit key of its own for each test.
func uniqueKey(t *testing.T) string {
	return fmt.Sprintf("ehrledger-test-%d", time.Now().UnixNano())
}

func TestVaultKMS(t *testing.T) {
	env := testvault.Get(t)
	ctx := context.Background()

	t.Run("token over HTTP", func(t *testing.T) {
		v, err := keys.OpenVault(ctx, keys.VaultConfig{Address: env.Addr, Token: env.Token, Key: uniqueKey(t)})
		if err != nil {
			t.Fatal(err)
		}
		keys.KMSContract(t, v)
	})

	t.Run("AppRole over TLS", func(t *testing.T) {
		v, err := keys.OpenVault(ctx, keys.VaultConfig{Address: env.TLSAddr, CACert: env.CACert,
			RoleID: env.RoleID, SecretID: env.SecretID, Key: uniqueKey(t)})
		if err != nil {
			t.Fatal(err)
		}
		keys.KMSContract(t, v)
	})

	t.Run("TLS without the CA is refused", func(t *testing.T) {
		_, err := keys.OpenVault(ctx, keys.VaultConfig{Address: env.TLSAddr, Token: env.Token, Key: uniqueKey(t)})
		if err == nil {
			t.Fatal("connected to a server whose certificate no configured CA signed")
		}
	})

	t.Run("a bad token or AppRole secret is refused at start", func(t *testing.T) {
		if _, err := keys.OpenVault(ctx, keys.VaultConfig{Address: env.Addr, Token: "hvs.nothing", Key: uniqueKey(t)}); err == nil {
			t.Fatal("a bad token was accepted")
		}
		if _, err := keys.OpenVault(ctx, keys.VaultConfig{Address: env.Addr, RoleID: env.RoleID, SecretID: "wrong", Key: uniqueKey(t)}); err == nil {
			t.Fatal("a bad AppRole secret id was accepted")
		}
	})

	t.Run("a Transit key that is not derived is refused", func(t *testing.T) {
		root := rootClient(t, env)
		name := uniqueKey(t)
		if _, err := root.Logical().Write("transit/keys/"+name, map[string]any{"type": "aes256-gcm96"}); err != nil {
			t.Fatal(err)
		}
		if _, err := keys.OpenVault(ctx, keys.VaultConfig{Address: env.Addr, Token: env.Token, Key: name}); err == nil {
			t.Fatal("a key without per-owner derivation was accepted")
		}
	})

	t.Run("AppRole logs in again when its token is revoked", func(t *testing.T) {
		v, err := keys.OpenVault(ctx, keys.VaultConfig{Address: env.Addr, RoleID: env.RoleID, SecretID: env.SecretID, Key: uniqueKey(t)})
		if err != nil {
			t.Fatal(err)
		}
		w, err := v.Wrap(ctx, []string{"Patient/a"}, [][]byte{make([]byte, 32)})
		if err != nil {
			t.Fatal(err)
		}
		root := rootClient(t, env)
		if err := root.Auth().Token().RevokeTree(v.Token()); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Unwrap(ctx, w); err != nil {
			t.Fatalf("after its token was revoked: %v", err)
		}
	})

	t.Run("Vault cut off is ErrUnavailable, quickly, and recovery is automatic", func(t *testing.T) {
		proxy := testvault.NewProxy(t, env.Addr)
		v, err := keys.OpenVault(ctx, keys.VaultConfig{Address: proxy.URL, Token: env.Token, Key: uniqueKey(t), Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		w, err := v.Wrap(ctx, []string{"Patient/a"}, [][]byte{make([]byte, 32)})
		if err != nil {
			t.Fatal(err)
		}
		proxy.Down()
		start := time.Now()
		_, err = v.Unwrap(ctx, w)
		if !errors.Is(err, keys.ErrUnavailable) {
			t.Fatalf("with Vault cut off: %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("failing took %v", d)
		}
		proxy.Up(t)
		if _, err := v.Unwrap(ctx, w); err != nil {
			t.Fatalf("after Vault came back: %v", err)
		}
	})
}

func rootClient(t *testing.T, env testvault.Env) *vault.Client {
	cfg := vault.DefaultConfig()
	cfg.Address = env.Addr
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(env.Token)
	return c
}
