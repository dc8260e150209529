package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const fetchUsage = `Usage:
  ehrledger fetch --key-file FILE --public-key
      Print the public half of the client key in FILE as a JWK set, to
      register the client with a provider; FILE (an ES384 private JWK) is
      created on first use.
  ehrledger fetch --server URL --client ID --key-file FILE --scope SCOPES [--purpose CODE] PATH
      Get an access token from the provider at URL as a SMART Backend
      Services client (private_key_jwt with the key in FILE) and GET PATH
      (such as /Patient/123/$everything). The body goes to stdout; the
      Ledger-Index of the provider's disclosure record to stderr.

Flags:
`

// runFetch is "ehrledger fetch": one provider reading another's records
// with its own credentials (docs/sharing.md).
func runFetch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ehrledger fetch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, fetchUsage); fs.PrintDefaults() }
	server := fs.String("server", "", "base URL of the provider to read from")
	client := fs.String("client", "", "client id registered with that provider")
	keyFile := fs.String("key-file", "", "the client's private key (an ES384 JWK, created when missing)")
	scope := fs.String("scope", "system/*.rs", "scopes to ask for")
	purpose := fs.String("purpose", "", "purpose of use to ask for (v3 ActReason code)")
	public := fs.Bool("public-key", false, "print the public key to register, and nothing else")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	problem := ""
	switch {
	case *keyFile == "":
		problem = "--key-file is required"
	case *public && fs.NArg() > 0:
		problem = "--public-key takes no path"
	case !*public && (*server == "" || *client == "" || fs.NArg() != 1 || !strings.HasPrefix(fs.Arg(0), "/")):
		problem = "give --server, --client and one path starting with /"
	}
	if problem != "" {
		fmt.Fprintf(stderr, "ehrledger fetch: %s\n", problem)
		return errUsage
	}
	key, err := loadClientKey(*keyFile)
	if err != nil {
		return err
	}
	if *public {
		return json.NewEncoder(stdout).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{key.Public()}})
	}
	base := strings.TrimRight(*server, "/")
	hc := &http.Client{Timeout: 60 * time.Second}
	token, err := backendToken(ctx, hc, base, *client, key, *scope, *purpose)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+fs.Arg(0), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/fhir+json")
	if *purpose != "" {
		req.Header.Set("Purpose-Of-Use", *purpose)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		return err
	}
	if idx := resp.Header.Get("Ledger-Index"); idx != "" {
		fmt.Fprintf(stderr, "Ledger-Index: %s\n", idx)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	return nil
}

// loadClientKey reads the client's private JWK at path, creating a P-384
// key (mode 0600) when there is none.
func loadClientKey(path string) (jose.JSONWebKey, error) {
	b, err := readKeyFile(path, func() ([]byte, error) {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			return nil, err
		}
		var kid [8]byte
		rand.Read(kid[:])
		return json.Marshal(jose.JSONWebKey{Key: k, KeyID: hex.EncodeToString(kid[:]), Algorithm: string(jose.ES384), Use: "sig"})
	})
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("client key: %w", err)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(b); err != nil || k.IsPublic() || k.KeyID == "" {
		return jose.JSONWebKey{}, fmt.Errorf("client key %s: not a private JWK with a kid", path)
	}
	return k, nil
}

// backendToken gets an access token with a client assertion (SMART
// Backend Services), from the token endpoint the provider advertises.
func backendToken(ctx context.Context, hc *http.Client, base, client string, key jose.JSONWebKey, scope, purpose string) (string, error) {
	var conf struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := getJSON(ctx, hc, base+"/.well-known/smart-configuration", &conf); err != nil {
		return "", err
	}
	if conf.TokenEndpoint == "" {
		return "", fmt.Errorf("%s advertises no token endpoint", base)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	var jti [16]byte
	rand.Read(jti[:])
	now := time.Now()
	assertion, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: client, Subject: client, Audience: jwt.Audience{conf.TokenEndpoint},
		ID: hex.EncodeToString(jti[:]), IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(4 * time.Minute))}).Serialize()
	if err != nil {
		return "", err
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	if purpose != "" {
		form.Set("purpose_of_use", purpose)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, conf.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil || (tok.AccessToken == "" && tok.Error == "") {
		return "", fmt.Errorf("token endpoint %s: %s, not a token answer", conf.TokenEndpoint, resp.Status)
	}
	if tok.AccessToken == "" {
		return "", fmt.Errorf("token endpoint %s refused: %s: %s", conf.TokenEndpoint, tok.Error, tok.Description)
	}
	return tok.AccessToken, nil
}

func getJSON(ctx context.Context, hc *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		return errors.Join(fmt.Errorf("GET %s", u), err)
	}
	return nil
}
