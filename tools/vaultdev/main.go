// Command vaultdev runs a real, in-process HashiCorp Vault server for
// ehrledger's integration tests.
//
// It starts one unsealed in-memory Vault core, mounts the transit secrets
// engine at transit/, enables AppRole auth at approle/ with a role
// "ehrledger" whose policy allows everything under transit/*, and serves the
// Vault HTTP API on a plain HTTP and a self-signed HTTPS loopback listener.
// Once ready it atomically writes an env file (see -env) with the addresses,
// CA certificate path, root token and AppRole credentials, prints
// "vaultdev ready" to stderr, and runs until SIGINT or SIGTERM.
//
// This is a TEST HARNESS ONLY. It lives in its own Go module so that it is
// never linked into the ehrledger product binary: the Vault server code
// (github.com/hashicorp/vault) is not licensed for redistribution in it.
// The main module must not import this module.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/builtin/credential/approle"
	"github.com/hashicorp/vault/builtin/logical/transit"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/internalshared/configutil"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/vault"
)

// stderr is the process's real standard error (see run).
var stderr = os.Stderr

const policy = `path "transit/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
`

func main() {
	envPath := flag.String("env", "", "file to write the env (KEY=value lines) to once ready (required); the CA certificate goes to FILE.ca.pem")
	listen := flag.String("listen", "127.0.0.1:0", "address of the plain HTTP listener")
	tlsListen := flag.String("tls-listen", "127.0.0.1:0", "address of the HTTPS listener")
	flag.Parse()
	if *envPath == "" {
		fatalf("-env is required")
	}
	if err := run(*envPath, *listen, *tlsListen); err != nil {
		fatalf("%v", err)
	}
}

func run(envPath, listen, tlsListen string) error {
	envPath, err := filepath.Abs(envPath)
	if err != nil {
		return err
	}
	caPath := envPath + ".ca.pem"
	// A stale env file would make a waiting test runner connect to a dead server.
	if err := os.Remove(envPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}

	t := &harnessTB{}
	defer t.runCleanups()

	// The core logs errors only. vault.TestCore* additionally builds a
	// trace-level logger on os.Stderr for the in-memory storage layer; point
	// os.Stderr at /dev/null while it is created to keep that quiet too.
	logger := hclog.New(&hclog.LoggerOptions{Name: "vault", Level: hclog.Error, Output: stderr})
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer devNull.Close()
	os.Stderr = devNull
	core, _, rootToken := vault.TestCoreUnsealedWithConfig(t, &vault.CoreConfig{
		Logger:             logger,
		LogicalBackends:    map[string]logical.Factory{"transit": transit.Factory},
		CredentialBackends: map[string]logical.Factory{"approle": approle.Factory},
	})
	os.Stderr = stderr

	handler := vaulthttp.Handler.Handler(&vault.HandlerProperties{
		Core:           core,
		ListenerConfig: &configutil.Listener{Address: "127.0.0.1"},
	})

	certPEM, tlsCert, err := selfSignedCert()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	tlsLn, err := tls.Listen("tcp", tlsListen, &tls.Config{
		Certificates: []tls.Certificate{tlsCert},
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		ln.Close()
		return err
	}
	if err := writeFileAtomic(caPath, certPEM); err != nil {
		ln.Close()
		tlsLn.Close()
		return err
	}
	addr := "http://" + ln.Addr().String()
	tlsAddr := "https://" + tlsLn.Addr().String()

	servers := []*http.Server{
		{Handler: handler, ReadHeaderTimeout: 10 * time.Second},
		{Handler: handler, ReadHeaderTimeout: 10 * time.Second},
	}
	serveErr := make(chan error, 2)
	for i, l := range []net.Listener{ln, tlsLn} {
		go func() { serveErr <- servers[i].Serve(l) }()
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range servers {
			s.Shutdown(ctx)
		}
	}()

	roleID, secretID, err := configure(addr, rootToken)
	if err != nil {
		return err
	}

	env := fmt.Sprintf("EHR_TEST_VAULT_ADDR=%s\nEHR_TEST_VAULT_TLS_ADDR=%s\nEHR_TEST_VAULT_CACERT=%s\n"+
		"EHR_TEST_VAULT_TOKEN=%s\nEHR_TEST_VAULT_ROLE_ID=%s\nEHR_TEST_VAULT_SECRET_ID=%s\n",
		addr, tlsAddr, caPath, rootToken, roleID, secretID)
	if err := writeFileAtomic(envPath, []byte(env)); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "vaultdev ready: %s %s (env %s)\n", addr, tlsAddr, envPath)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "vaultdev shutting down")
		return nil
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
}

// configure sets up transit, the ehrledger policy and the ehrledger AppRole
// through the HTTP API and returns the role's role_id and a fresh secret_id.
func configure(addr, rootToken string) (roleID, secretID string, err error) {
	c, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		return "", "", err
	}
	c.SetToken(rootToken)
	c.ClearNamespace()
	sys := c.Sys()
	if err := sys.Mount("transit", &api.MountInput{Type: "transit"}); err != nil {
		return "", "", fmt.Errorf("mount transit: %w", err)
	}
	if err := sys.EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		return "", "", fmt.Errorf("enable approle: %w", err)
	}
	if err := sys.PutPolicy("ehrledger", policy); err != nil {
		return "", "", fmt.Errorf("write policy: %w", err)
	}
	l := c.Logical()
	if _, err := l.Write("auth/approle/role/ehrledger", map[string]any{
		"token_policies": "ehrledger",
		"token_ttl":      "1h",
		"token_max_ttl":  "4h",
	}); err != nil {
		return "", "", fmt.Errorf("create approle role: %w", err)
	}
	s, err := l.Read("auth/approle/role/ehrledger/role-id")
	if err != nil || s == nil {
		return "", "", fmt.Errorf("read role_id: %v", err)
	}
	roleID, _ = s.Data["role_id"].(string)
	s, err = l.Write("auth/approle/role/ehrledger/secret-id", nil)
	if err != nil || s == nil {
		return "", "", fmt.Errorf("generate secret_id: %v", err)
	}
	secretID, _ = s.Data["secret_id"].(string)
	if roleID == "" || secretID == "" {
		return "", "", errors.New("empty role_id or secret_id")
	}
	return roleID, secretID, nil
}

// selfSignedCert returns a fresh self-signed ECDSA certificate for
// 127.0.0.1 and localhost, as PEM and as a tls.Certificate.
func selfSignedCert() ([]byte, tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vaultdev"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// writeFileAtomic writes data to a temporary file next to path and renames
// it into place, so readers never observe a partial file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(stderr, "vaultdev: "+format+"\n", args...)
	os.Exit(1)
}
