package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/server"
	jose "github.com/go-jose/go-jose/v4"
)

// loadAuthKey reads the embedded authorization server's signing key, an
// ECDSA P-256 JWK, creating it on first start.
func loadAuthKey(path string) (*jose.JSONWebKey, error) {
	b, err := readKeyFile(path, func() ([]byte, error) {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		k := jose.JSONWebKey{Key: priv, Algorithm: string(jose.ES256), Use: "sig"}
		thumb, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, err
		}
		k.KeyID = fmt.Sprintf("%x", thumb[:8])
		return json.Marshal(k)
	})
	if err != nil {
		return nil, fmt.Errorf("auth key: %w", err)
	}
	var k jose.JSONWebKey
	if err := json.Unmarshal(b, &k); err != nil || k.IsPublic() {
		return nil, fmt.Errorf("auth key %s: not a private JWK", path)
	}
	return &k, nil
}

// authority is the embedded authorization server's configuration, nil
// when it is off.
func (c *serveConfig) authority() (*server.Authority, error) {
	if !c.Auth.Server {
		return nil, nil
	}
	key, err := loadAuthKey(c.authKeyFile())
	if err != nil {
		return nil, err
	}
	return &server.Authority{Key: key, Lifetime: c.Auth.TokenLifetime, Bootstrap: []auth.Client{server.AdminClient()}}, nil
}

// issuers are the external authorization servers configured.
func (c *serveConfig) issuers() []server.Issuer {
	var out []server.Issuer
	for _, iss := range c.Auth.Issuers {
		out = append(out, server.Issuer{Issuer: auth.Issuer{URL: iss.URL, JWKSURL: iss.JWKSURL, MaxLifetime: iss.MaxLifetime}, TokenURL: iss.TokenURL})
	}
	return out
}

// logAuth says how callers authenticate, loudly when they do not.
func (c *serveConfig) logAuth(log *slog.Logger) {
	if c.InsecureNoAuth {
		for range 3 {
			log.Warn("AUTHENTICATION IS OFF (--insecure-no-auth): every request is served with every scope, without a token; never run this with real patient data")
		}
		return
	}
	if c.Auth.Server {
		log.Info("embedded authorization server at /auth: get a token with ehrledger token --data " + shellQuote(c.Data) + " --client admin --scope 'system/*.cruds'")
	}
	for _, iss := range c.Auth.Issuers {
		log.Info("accepting tokens of", "issuer", iss.URL)
	}
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
