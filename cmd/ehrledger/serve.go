package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/node"
	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
)

// runServe is "ehrledger serve": open the database (migrating it), serve
// FHIR until ctx ends (SIGINT or SIGTERM), then stop taking connections,
// let in-flight requests finish within the shutdown timeout, stop the
// background work and close the database (package node, in that order).
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadServeConfig(args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	log := cfg.logger(stderr)
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	kms, err := openKMS(ctx, cfg)
	if err != nil {
		return err
	}
	ledger, vkey, err := ledgerConfig(cfg, log)
	if err != nil {
		return err
	}
	peers, err := peersConfig(cfg)
	if err != nil {
		return err
	}
	authority, err := cfg.authority()
	if err != nil {
		return err
	}
	cfg.logAuth(log)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	base, aliases := identityOf(cfg.BaseURL, ln.Addr())
	if err := recordIdentity(cfg.Data, base); err != nil {
		return err
	}
	n, err := node.Open(ctx, node.Config{
		Store:           store.Config{DSN: cfg.dsn()},
		KMS:             kms,
		KeyOptions:      keys.Options{CacheSize: cfg.KeyCacheSize, TTL: cfg.KeyCacheTTL},
		Ledger:          ledger,
		LedgerKey:       vkey,
		Peers:           peers,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Logger:          log,
		Server: server.Config{
			BaseURL:      base,
			Aliases:      aliases,
			MaxBodyBytes: cfg.MaxBodyBytes,
			MaxDepth:     cfg.MaxJSONDepth,
			Timeout:      cfg.RequestTimeout,
			Limits: server.Limits{Criteria: cfg.MaxCriteria, Values: cfg.MaxValues, Includes: cfg.MaxIncludes,
				IndexRows: cfg.MaxIndexRows, BundleEntries: cfg.MaxBundleEntries, BodyTimeout: cfg.BodyTimeout},
			Version:          version,
			Issuers:          cfg.issuers(),
			Authority:        authority,
			InsecureNoAuth:   cfg.InsecureNoAuth,
			Consent:          cfg.consent(),
			Labels:           cfg.labelRules(),
			AccountingExempt: cfg.accountingExempt(),
			ExportRetention:  cfg.ExportRetention,
		},
	})
	if err != nil {
		return err
	}
	url := "http://" + ln.Addr().String()
	log.Info("listening", "url", url, "base_url", base, "db", string(n.Store.Dialect()), "data", cfg.Data)
	fmt.Fprintln(stdout, "ehrledger serving FHIR R4 at", url)
	if err := n.Run(ctx, ln); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}
