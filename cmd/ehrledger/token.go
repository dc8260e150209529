package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
)

const tokenUsage = `Usage:
  ehrledger token --client NAME --scope SCOPES [--purpose CODE] [--patient ID]
                  [--actor REFERENCE] [--lifetime D] [serve flags]

Prints an access token of the embedded authorization server (last line of
stdout) that the server using the same --data (or --db and --auth-key-file)
accepts. The token's audience is --base-url, else the base URL the
server last serving that --data recorded there (server.json), else
http://--addr.
--client names a registered client ("admin" exists from the first start);
with the embedded database a new name registers a client for development
on the fly: acting for --actor (default Organization/NAME), allowed the
scopes asked for, the purposes given (default TREAT) and, with --patient,
that patient's own client.
`

// runToken is "ehrledger token": mint a token for development and for
// the operator's scripts, without a client assertion.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ehrledger token", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(stderr, tokenUsage); fs.PrintDefaults() }
	client := fs.String("client", "", "registered client the token is for")
	scope := fs.String("scope", "", "scopes asked for, space-separated (SMART v1 or v2, and "+auth.AdminScope+")")
	var purposes []string
	fs.Func("purpose", "purpose of use asked for, such as TREAT (repeatable, or comma-separated; default: all the client's)", func(v string) error {
		purposes = append(purposes, strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })...)
		return nil
	})
	patient := fs.String("patient", "", "patient in context, for patient/ scopes")
	actor := fs.String("actor", "", "FHIR reference a new development client acts for (default Organization/NAME)")
	lifetime := fs.Duration("lifetime", auth.MaxLifetime, "validity of the token (at most 1h)")
	cfg, err := loadConfig(fs, args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	if *client == "" || strings.TrimSpace(*scope) == "" {
		fmt.Fprintln(stderr, "ehrledger token: --client and --scope are required")
		fs.Usage()
		return errUsage
	}
	if !cfg.Auth.Server {
		return errors.New("the embedded authorization server is off (auth.server); ask the configured issuer for tokens")
	}
	authority, err := cfg.authority()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	st, err := store.Open(ctx, store.Config{DSN: cfg.dsn(), Logger: cfg.logger(stderr)})
	if err != nil {
		return err
	}
	defer st.Close()
	var dev func() (auth.Client, error)
	if cfg.embedded() {
		dev = func() (auth.Client, error) { return devClient(*client, *scope, purposes, *patient, *actor) }
	}
	base := cfg.BaseURL
	if base == "" {
		// The base URL the server on this data folder recorded, whatever
		// address it listens on; else http://--addr.
		if base, err = recordedBase(cfg.Data); err != nil {
			return err
		}
	}
	if base == "" {
		base = cfg.publicBase()
	}
	tok, err := server.MintToken(ctx, st, authority, base, auth.TokenRequest{
		Client: *client, Scope: *scope, Purposes: purposes, Patient: *patient, Lifetime: *lifetime,
	}, dev)
	if errors.Is(err, auth.ErrUnknownClient) {
		return fmt.Errorf("client %q is not registered; register it through PUT /auth/clients/%s", *client, *client)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "token for %s at %s: scope %q, expires %s\n", *client, base, tok.Scope,
		time.Now().Add(time.Duration(tok.ExpiresIn)*time.Second).Format(time.RFC3339))
	fmt.Fprintln(stdout, tok.AccessToken)
	return nil
}

// devClient is the registration a new client name gets in embedded mode.
func devClient(name, scope string, purposes []string, patient, actor string) (auth.Client, error) {
	if actor == "" {
		actor = "Organization/" + name
	}
	if len(purposes) == 0 {
		purposes = []string{"TREAT"}
	}
	c := auth.Client{ID: name, Actor: actor, Purposes: purposes, Patient: patient}
	for _, raw := range strings.Fields(scope) {
		sc, err := auth.ParseScope(raw)
		if err != nil {
			return c, err
		}
		c.Scopes = append(c.Scopes, sc)
	}
	return c, nil
}
