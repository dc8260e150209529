package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/ehrledger/ehrledger/server"
)

// runServe is "ehrledger serve": open the database (migrating it), serve
// FHIR until ctx ends (SIGINT or SIGTERM), then stop taking connections,
// let in-flight requests finish within the shutdown timeout, and close the
// database.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadServeConfig(args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	log := cfg.logger(stderr)
	metrics := server.NewMetrics()
	st, kr, err := openBackend(ctx, cfg, log, metrics.DBRetry)
	if err != nil {
		return err
	}
	defer st.Close()
	ledger, vkey, err := openLedger(ctx, cfg, st, kr, log)
	if err != nil {
		return err
	}
	// The ledger runs until the HTTP server has finished every request:
	// responses in flight still wait for their records.
	lctx, stopLedger := context.WithCancel(context.Background())
	ledgerDone := make(chan struct{})
	go func() { ledger.Run(lctx); close(ledgerDone) }()
	defer func() { stopLedger(); <-ledgerDone }()
	peers, err := openPeers(cfg, st, ledger, metrics, log)
	if err != nil {
		return err
	}
	if peers.publisher != nil {
		// Publication and mirroring run beside the ledger: a peer down
		// delays them, never a request.
		peersDone := make(chan struct{}, 2)
		go func() { peers.publisher.Run(lctx, cfg.Witness.Interval); peersDone <- struct{}{} }()
		go func() { peers.mirror.Run(lctx, cfg.Witness.Interval); peersDone <- struct{}{} }()
		defer func() { stopLedger(); <-peersDone; <-peersDone }()
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
	srv, err := server.New(ctx, server.Config{
		Store:        st,
		Keys:         kr,
		Ledger:       ledger,
		LedgerKey:    vkey,
		BaseURL:      base,
		Aliases:      aliases,
		MaxBodyBytes: cfg.MaxBodyBytes,
		MaxDepth:     cfg.MaxJSONDepth,
		Timeout:      cfg.RequestTimeout,
		Limits: server.Limits{Criteria: cfg.MaxCriteria, Values: cfg.MaxValues, Includes: cfg.MaxIncludes,
			IndexRows: cfg.MaxIndexRows, BundleEntries: cfg.MaxBundleEntries, BodyTimeout: cfg.BodyTimeout},
		Metrics:          metrics,
		Logger:           log,
		Version:          version,
		Issuers:          cfg.issuers(),
		Authority:        authority,
		InsecureNoAuth:   cfg.InsecureNoAuth,
		Consent:          cfg.consent(),
		Labels:           cfg.labelRules(),
		AccountingExempt: cfg.accountingExempt(),
		ExportRetention:  cfg.ExportRetention,
		Witness:          peers.witness,
		WitnessKey:       peers.witnessKey,
		Publisher:        peers.publisher,
		Mirror:           peers.mirror,
	})
	if err != nil {
		return err
	}
	// Exports run beside the ledger, which records their disclosures; an
	// export stopped here is resumed by another replica or the next start.
	background := make(chan struct{}, 2)
	go func() { srv.RunAuditEvents(lctx); background <- struct{}{} }()
	go func() { srv.RunExports(lctx); background <- struct{}{} }()
	defer func() { stopLedger(); <-background; <-background }()
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.RequestTimeout,
		WriteTimeout:      cfg.RequestTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
	}
	url := "http://" + ln.Addr().String()
	log.Info("listening", "url", url, "base_url", base, "db", string(st.Dialect()), "data", cfg.Data)
	fmt.Fprintln(stdout, "ehrledger serving FHIR R4 at", url)

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}
