package keys

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// VaultConfig says how to reach Vault and which Transit key wraps the
// data keys.
type VaultConfig struct {
	Address   string // https://vault.example:8200
	Namespace string // Vault Enterprise namespace, if any
	// Token authenticates directly; otherwise RoleID and SecretID log in
	// through AppRole (at AppRoleMount, default "approle"), again whenever
	// the token is refused.
	Token              string
	RoleID, SecretID   string
	AppRoleMount       string
	CACert             string // PEM file of the CA that signed Vault's certificate
	ClientCert         string // PEM files for TLS client authentication
	ClientKey          string
	TLSServerName      string
	InsecureSkipVerify bool
	// Mount is the Transit engine's path (default "transit"); Key the name
	// of the key (default "ehrledger"), created as a derived key when it
	// does not exist.
	Mount, Key string
	// Timeout bounds one call (default 5 s); an unreachable Vault fails fast
	// so that requests answer 503 instead of hanging.
	Timeout time.Duration
}

// Vault wraps data keys with one Transit key in derived mode: each
// owner's name is the derivation context, so a wrapped key only unwraps
// for its owner, and the whole population rotates by rotating one key
// (docs/security.md weighs this against a Transit key per patient).
type Vault struct {
	cfg    VaultConfig
	client *vault.Client
	login  sync.Mutex
}

// OpenVault connects to Vault, logs in and makes sure the Transit key
// exists and is derived.
func OpenVault(ctx context.Context, cfg VaultConfig) (*Vault, error) {
	if cfg.Address == "" {
		return nil, errors.New("keys: vault: no address")
	}
	if cfg.Token == "" && (cfg.RoleID == "" || cfg.SecretID == "") {
		return nil, errors.New("keys: vault: give a token, or an AppRole role id and secret id")
	}
	if cfg.Mount == "" {
		cfg.Mount = "transit"
	}
	if cfg.Key == "" {
		cfg.Key = "ehrledger"
	}
	if cfg.AppRoleMount == "" {
		cfg.AppRoleMount = "approle"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	vc := vault.DefaultConfig()
	vc.Address = cfg.Address
	vc.Timeout = cfg.Timeout
	vc.MaxRetries = 1
	if err := vc.ConfigureTLS(&vault.TLSConfig{
		CACert: cfg.CACert, ClientCert: cfg.ClientCert, ClientKey: cfg.ClientKey,
		TLSServerName: cfg.TLSServerName, Insecure: cfg.InsecureSkipVerify,
	}); err != nil {
		return nil, fmt.Errorf("keys: vault TLS: %w", err)
	}
	if vc.Error != nil {
		return nil, fmt.Errorf("keys: vault: %w", vc.Error)
	}
	client, err := vault.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("keys: vault: %w", err)
	}
	client.ClearToken() // never a token from the environment
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	v := &Vault{cfg: cfg, client: client}
	if cfg.Token != "" {
		client.SetToken(cfg.Token)
	} else if err := v.appRoleLogin(ctx); err != nil {
		return nil, err
	}
	if err := v.ensureKey(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

func (v *Vault) appRoleLogin(ctx context.Context) error {
	v.login.Lock()
	defer v.login.Unlock()
	s, err := v.client.Logical().WriteWithContext(ctx, "auth/"+v.cfg.AppRoleMount+"/login",
		map[string]any{"role_id": v.cfg.RoleID, "secret_id": v.cfg.SecretID})
	if err != nil {
		return v.classify("AppRole login", err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return errors.New("keys: vault: AppRole login returned no token")
	}
	v.client.SetToken(s.Auth.ClientToken)
	return nil
}

func (v *Vault) keyPath() string { return v.cfg.Mount + "/keys/" + v.cfg.Key }

func (v *Vault) ensureKey(ctx context.Context) error {
	s, err := v.call(ctx, "read key", func() (*vault.Secret, error) {
		return v.client.Logical().ReadWithContext(ctx, v.keyPath())
	})
	if err != nil {
		return err
	}
	if s == nil {
		_, err := v.call(ctx, "create key", func() (*vault.Secret, error) {
			return v.client.Logical().WriteWithContext(ctx, v.keyPath(), map[string]any{"type": "aes256-gcm96", "derived": true})
		})
		return err
	}
	if derived, _ := s.Data["derived"].(bool); !derived {
		return fmt.Errorf("keys: vault: transit key %s exists but is not derived; data keys need a derived key (one context per owner)", v.keyPath())
	}
	return nil
}

// Name implements KMS.
func (v *Vault) Name() string { return "vault:" + v.cfg.Mount + "/" + v.cfg.Key }

func ownerContext(owner string) string { return base64.StdEncoding.EncodeToString([]byte(owner)) }

// Wrap implements KMS with one batch encrypt.
func (v *Vault) Wrap(ctx context.Context, owners []string, keys [][]byte) ([]Wrapped, error) {
	items := make([]any, len(owners))
	for i, o := range owners {
		items[i] = map[string]any{"plaintext": base64.StdEncoding.EncodeToString(keys[i]), "context": ownerContext(o)}
	}
	results, err := v.batch(ctx, "encrypt", items)
	if err != nil {
		return nil, err
	}
	out := make([]Wrapped, len(owners))
	for i, r := range results {
		if out[i], err = wrappedOf(owners[i], r["ciphertext"]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Unwrap implements KMS with one batch decrypt.
func (v *Vault) Unwrap(ctx context.Context, wrapped []Wrapped) ([][]byte, error) {
	results, err := v.batch(ctx, "decrypt", ciphertextItems(wrapped))
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(wrapped))
	for i, r := range results {
		s, _ := r["plaintext"].(string)
		if out[i], err = base64.StdEncoding.DecodeString(s); err != nil || len(out[i]) != 32 {
			return nil, fmt.Errorf("%w: vault returned no 256-bit key for %s", ErrTampered, wrapped[i].Owner)
		}
	}
	return out, nil
}

// Rewrap implements KMS with one batch rewrap: Vault decrypts and
// encrypts again inside itself.
func (v *Vault) Rewrap(ctx context.Context, wrapped []Wrapped) ([]Wrapped, error) {
	results, err := v.batch(ctx, "rewrap", ciphertextItems(wrapped))
	if err != nil {
		return nil, err
	}
	out := make([]Wrapped, len(wrapped))
	for i, r := range results {
		if out[i], err = wrappedOf(wrapped[i].Owner, r["ciphertext"]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Rotate implements KMS.
func (v *Vault) Rotate(ctx context.Context) (int, error) {
	if _, err := v.call(ctx, "rotate", func() (*vault.Secret, error) {
		return v.client.Logical().WriteWithContext(ctx, v.keyPath()+"/rotate", nil)
	}); err != nil {
		return 0, err
	}
	return v.Latest(ctx)
}

// Latest implements KMS.
func (v *Vault) Latest(ctx context.Context) (int, error) {
	s, err := v.call(ctx, "read key", func() (*vault.Secret, error) {
		return v.client.Logical().ReadWithContext(ctx, v.keyPath())
	})
	if err != nil {
		return 0, err
	}
	if s == nil {
		return 0, fmt.Errorf("keys: vault: transit key %s is gone", v.keyPath())
	}
	n, err := strconv.Atoi(fmt.Sprint(s.Data["latest_version"]))
	if err != nil {
		return 0, fmt.Errorf("keys: vault: transit key %s has no latest_version", v.keyPath())
	}
	return n, nil
}

func ciphertextItems(wrapped []Wrapped) []any {
	items := make([]any, len(wrapped))
	for i, w := range wrapped {
		items[i] = map[string]any{"ciphertext": string(w.Blob), "context": ownerContext(w.Owner)}
	}
	return items
}

// wrappedOf reads a Transit ciphertext, "vault:vN:...", and its version.
func wrappedOf(owner string, c any) (Wrapped, error) {
	s, _ := c.(string)
	rest, ok := strings.CutPrefix(s, "vault:v")
	num, _, ok2 := strings.Cut(rest, ":")
	n, err := strconv.Atoi(num)
	if !ok || !ok2 || err != nil {
		return Wrapped{}, fmt.Errorf("keys: vault returned no ciphertext for %s", owner)
	}
	return Wrapped{Owner: owner, Version: n, Blob: []byte(s)}, nil
}

// batch calls a Transit operation with batch_input and returns its
// batch_results, failing on the first item that failed.
func (v *Vault) batch(ctx context.Context, op string, items []any) ([]map[string]any, error) {
	s, err := v.call(ctx, op, func() (*vault.Secret, error) {
		return v.client.Logical().WriteWithContext(ctx, v.cfg.Mount+"/"+op+"/"+v.cfg.Key, map[string]any{"batch_input": items})
	})
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("keys: vault %s returned nothing", op)
	}
	raw, _ := s.Data["batch_results"].([]any)
	if len(raw) != len(items) {
		return nil, fmt.Errorf("keys: vault %s returned %d results for %d items", op, len(raw), len(items))
	}
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		m, _ := r.(map[string]any)
		if e, _ := m["error"].(string); e != "" {
			if op == "encrypt" {
				return nil, fmt.Errorf("keys: vault encrypt refused item %d: %s", i, e)
			}
			return nil, fmt.Errorf("%w: vault %s refused item %d: %s", ErrTampered, op, i, e)
		}
		out[i] = m
	}
	return out, nil
}

// call runs one request, logging in again through AppRole once when the
// token was refused (expired), and classifies its failure.
func (v *Vault) call(ctx context.Context, what string, do func() (*vault.Secret, error)) (*vault.Secret, error) {
	s, err := do()
	var re *vault.ResponseError
	if err != nil && errors.As(err, &re) && re.StatusCode == 403 && v.cfg.Token == "" {
		if lerr := v.appRoleLogin(ctx); lerr != nil {
			return nil, lerr
		}
		s, err = do()
	}
	if err != nil {
		return nil, v.classify(what, err)
	}
	return s, nil
}

// classify sorts a Vault failure: unreachable, sealed or overloaded is
// ErrUnavailable (503, retried by clients); a ciphertext that decrypt or
// rewrap refuses is ErrTampered; anything else (a denied policy, a bad
// request) is a configuration error.
func (v *Vault) classify(what string, err error) error {
	var re *vault.ResponseError
	var ne net.Error
	var ue *url.Error
	switch {
	case errors.As(err, &re) && re.StatusCode >= 500, errors.As(err, &re) && re.StatusCode == 429:
		return fmt.Errorf("%w: vault %s: %s", ErrUnavailable, what, strings.Join(re.Errors, "; "))
	case errors.As(err, &re) && re.StatusCode == 400 && (what == "decrypt" || what == "rewrap"):
		return fmt.Errorf("%w: vault %s: %s", ErrTampered, what, strings.Join(re.Errors, "; "))
	case errors.As(err, &re):
		return fmt.Errorf("keys: vault %s: HTTP %d: %s", what, re.StatusCode, strings.Join(re.Errors, "; "))
	case errors.As(err, &ne), errors.As(err, &ue), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: vault %s: %w", ErrUnavailable, what, err)
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("%w: vault %s: unreadable answer: %w", ErrUnavailable, what, err)
	}
	return fmt.Errorf("keys: vault %s: %w", what, err)
}

// Token is the Vault token in use (for tests that revoke it).
func (v *Vault) Token() string { return v.client.Token() }
