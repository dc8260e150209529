package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	// maxJWKSBytes bounds the size of a JWKS document.
	maxJWKSBytes = 1 << 20
	// fetchTimeout bounds one JWKS request.
	fetchTimeout = 10 * time.Second
	// maxKeyAge is how long fetched keys are used before they are fetched
	// again on the next verification, so that keys an issuer withdraws stop
	// being trusted even when no unknown kid shows up. A failed refresh
	// keeps the old keys.
	maxKeyAge = time.Hour
	// minRSABits is the smallest RSA modulus accepted from a JWKS.
	minRSABits = 2048
)

// keySet caches the verification keys of one issuer, by kid. A static
// set (no url) holds keys given in the configuration and never fetches.
type keySet struct {
	url    string
	client *http.Client
	now    func() time.Time
	every  time.Duration
	// maxLifetime bounds the validity of the issuer's tokens; 0 for none
	// (the embedded server's own keys, whose tokens it minted itself).
	maxLifetime time.Duration

	mu      sync.RWMutex
	keys    map[string][]jose.JSONWebKey
	fetched time.Time // time of the last successful fetch

	fetchMu   sync.Mutex // serializes fetches
	attempted time.Time  // time of the last fetch attempt
}

// lookup returns the keys with the given kid, fetching the JWKS when the
// kid is unknown or the keys are stale, at most once per s.every.
func (s *keySet) lookup(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	if s.url == "" {
		if keys := s.keys[kid]; len(keys) > 0 {
			return keys, nil
		}
		return nil, errors.New("kid not among the issuer's configured keys")
	}
	keys, fresh := s.get(kid)
	if len(keys) > 0 && fresh {
		return keys, nil
	}
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	// Another request may have fetched while this one waited.
	keys, fresh = s.get(kid)
	if len(keys) > 0 && fresh {
		return keys, nil
	}
	var fetchErr error
	if s.attempted.IsZero() || s.now().Sub(s.attempted) >= s.every {
		s.attempted = s.now()
		fetchErr = s.fetch(ctx)
		keys, _ = s.get(kid)
	}
	if len(keys) == 0 {
		if fetchErr != nil {
			return nil, fmt.Errorf("kid not in cached keys and JWKS refresh failed: %w", fetchErr)
		}
		return nil, errors.New("kid not in the issuer's JWKS")
	}
	return keys, nil
}

// get returns the cached keys with the given kid and whether the cache is
// younger than maxKeyAge.
func (s *keySet) get(kid string) ([]jose.JSONWebKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keys[kid], !s.fetched.IsZero() && s.now().Sub(s.fetched) < maxKeyAge
}

// fetch downloads the JWKS and replaces the cached keys; on failure the
// cached keys stay.
func (s *keySet) fetch(ctx context.Context) error {
	// The fetch serves every request waiting for this issuer's keys, so it
	// does not stop when the request that started it is canceled.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return fmt.Errorf("JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("JWKS fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("JWKS fetch: HTTP status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("JWKS read: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("JWKS larger than %d bytes", maxJWKSBytes)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.keys = keys
	s.fetched = s.now()
	s.mu.Unlock()
	return nil
}

// staticKeys makes the key set of an issuer whose keys are configured:
// their public halves, each with a kid and strong enough for the
// accepted algorithms.
func staticKeys(given []jose.JSONWebKey) (*keySet, error) {
	s := &keySet{keys: map[string][]jose.JSONWebKey{}}
	for _, k := range given {
		pub := k.Public()
		if k.KeyID == "" || !pub.Valid() || !usableKey(pub.Key) {
			return nil, fmt.Errorf("key %q is not an RSA (2048 bits or more) or P-256/P-384 key with a kid", k.KeyID)
		}
		s.keys[k.KeyID] = append(s.keys[k.KeyID], pub)
	}
	return s, nil
}

// parseJWKS reads a JWKS document and keeps the usable signature keys by
// kid. Keys that go-jose cannot read, keys without kid, keys meant for
// encryption, symmetric keys, RSA keys under 2048 bits and elliptic keys
// off P-256 and P-384 are skipped, so that one odd key does not disable
// the others.
func parseJWKS(body []byte) (map[string][]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("JWKS decode: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`JWKS decode: no "keys" member`)
	}
	keys := map[string][]jose.JSONWebKey{}
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if k.KeyID == "" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		pub := k.Public()
		if !pub.Valid() || !usableKey(pub.Key) {
			continue
		}
		keys[k.KeyID] = append(keys[k.KeyID], pub)
	}
	return keys, nil
}

// usableKey reports whether key is an RSA or ECDSA public key strong
// enough for the accepted algorithms.
func usableKey(key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return k.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		return k.Curve == elliptic.P256() || k.Curve == elliptic.P384()
	}
	return false
}

// keyFits reports whether a JWK may verify a signature made with alg: its
// type matches the algorithm family (and curve), and its own "alg", when
// present, is alg.
func keyFits(k jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	switch alg {
	case jose.RS256, jose.RS384:
		_, ok := k.Key.(*rsa.PublicKey)
		return ok
	case jose.ES256:
		ec, ok := k.Key.(*ecdsa.PublicKey)
		return ok && ec.Curve == elliptic.P256()
	case jose.ES384:
		ec, ok := k.Key.(*ecdsa.PublicKey)
		return ok && ec.Curve == elliptic.P384()
	}
	return false
}
