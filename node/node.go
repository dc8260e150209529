// Package node is the composition root of a serving ehrledger: Open
// builds its parts from their configuration (the store, the keyring, the
// ledger, the peers, the server with its gate and export worker), and Run
// runs every goroutine they need and stops them in one order:
//
//  1. stop accepting connections and let the requests in flight finish
//     (within Config.ShutdownTimeout);
//  2. stop the workers (Bulk Data exports, the write-AuditEvent follower);
//  3. stop the publisher of checkpoints and the mirror of peers' logs;
//  4. stop the ledger (a request still in flight until step 1 ended got
//     its record);
//  5. close the store.
//
// "ehrledger serve", the benchmarks' servers and the server's tests are
// all built here.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/audit/mirror"
	"github.com/ehrledger/ehrledger/audit/witness"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
)

// The store is what the ledger's peers keep their state in.
var (
	_ witness.Store         = (*store.Store)(nil)
	_ witness.CosignedStore = (*store.Store)(nil)
	_ mirror.Store          = (*store.Store)(nil)
)

// Config is what a node is built from.
type Config struct {
	// Store opens the database (its DSN, migrating it); Store.Logger and
	// Store.OnRetry default to the node's logger and the server's
	// metrics.
	Store store.Config
	// KMS wraps the data keys; KeyOptions size the keyring's cache.
	KMS        keys.KMS
	KeyOptions keys.Options
	// Ledger is the log's configuration (origin, checkpoint key, ...);
	// LedgerKey its verifier key, served at /ledger/key.
	Ledger    audit.Config
	LedgerKey string
	// Peers, when set, makes this provider a witness of its peers' logs
	// and, with peers, the publisher of its own checkpoints to them and
	// the mirror of theirs.
	Peers *Peers
	// Server is the rest of the server's configuration: its Store, Keys,
	// Ledger, LedgerKey, Witness, WitnessKey, Publisher and Mirror are the
	// node's.
	Server server.Config
	// ShutdownTimeout bounds the wait for requests in flight (default
	// 30 s).
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
}

// Peers are this provider among its peers.
type Peers struct {
	// WitnessSigner cosigns peers' checkpoints; WitnessKey is its
	// cosignature/v1 verifier key.
	WitnessSigner note.Signer
	WitnessKey    string
	// Logs are the peers' logs this provider witnesses and mirrors.
	Logs []witness.Log
	// Witnesses are the peers that witness this provider's log, Required
	// of which must cosign a checkpoint before it is published.
	Witnesses []witness.Peer
	Required  int
	// Cosigners are the witnesses whose cosignatures a mirrored
	// checkpoint may carry (this provider's own included).
	Cosigners []note.Verifier
	// Interval is how often publication and mirroring are retried.
	Interval time.Duration
}

// Node is a serving ehrledger's parts.
type Node struct {
	Store  *store.Store
	Keys   *keys.Keyring
	Ledger *audit.Log
	Server *server.Server

	publisher *witness.Publisher
	mirror    *mirror.Mirror
	cfg       Config
}

// Open builds the node: it opens the store (migrating it), puts the
// keyring in front of it, opens the ledger (verifying it against its last
// checkpoint) and builds the peers and the server. Nothing runs until Run.
// On an error, what was opened is closed.
func Open(ctx context.Context, cfg Config) (n *Node, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.Server.Metrics == nil {
		cfg.Server.Metrics = server.NewMetrics()
	}
	if cfg.Server.Logger == nil {
		cfg.Server.Logger = cfg.Logger
	}
	if cfg.Ledger.Logger == nil {
		cfg.Ledger.Logger = cfg.Logger
	}
	if cfg.Store.Logger == nil {
		cfg.Store.Logger = cfg.Logger
	}
	if cfg.Store.OnRetry == nil {
		cfg.Store.OnRetry = cfg.Server.Metrics.DBRetry
	}
	n = &Node{cfg: cfg}
	if n.Store, err = store.Open(ctx, cfg.Store); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.Store.Close()
		}
	}()
	if n.Keys, err = server.OpenKeys(ctx, n.Store, cfg.KMS, cfg.KeyOptions); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	cfg.Logger.Info("keys ready", "kms", cfg.KMS.Name())
	if n.Ledger, err = server.OpenLedger(ctx, n.Store, n.Keys, cfg.Ledger); err != nil {
		if errors.Is(err, audit.ErrTampered) {
			cfg.Logger.Error("ALARM: the ledger's stored records do not match what it signed; refusing to run", "err", err)
		}
		return nil, err
	}
	sc := cfg.Server
	sc.Store, sc.Keys, sc.Ledger, sc.LedgerKey = n.Store, n.Keys, n.Ledger, cfg.LedgerKey
	if p := cfg.Peers; p != nil {
		metrics := cfg.Server.Metrics
		sc.Witness = witness.New(n.Store, p.WitnessSigner, p.Logs, cfg.Logger)
		sc.Witness.OnEvidence = metrics.Evidence
		sc.WitnessKey = p.WitnessKey
		if len(p.Witnesses) > 0 {
			if n.publisher, err = witness.NewPublisher(n.Store, n.Ledger, p.Witnesses, p.Required, cfg.Logger); err != nil {
				return nil, err
			}
			n.publisher.OnPublished = metrics.Published
			mirrored := make([]mirror.Peer, len(p.Logs))
			for i, l := range p.Logs {
				mirrored[i] = mirror.Peer{Origin: l.Origin, Verifier: l.Verifier, URL: l.URL}
			}
			n.mirror = mirror.New(n.Store, mirrored, p.Cosigners, cfg.Logger)
			n.mirror.OnEvidence = metrics.Evidence
			sc.Publisher, sc.Mirror = n.publisher, n.mirror
		}
	}
	if n.Server, err = server.New(ctx, sc); err != nil {
		return nil, err
	}
	return n, nil
}

// Run serves HTTP on ln (nil: no listener; the caller serves n.Server as
// a handler) and runs the node's goroutines until ctx ends or serving
// fails, then stops them all in the package's order and closes the
// store. It returns the serving error, or nil after a clean stop.
func (n *Node) Run(ctx context.Context, ln net.Listener) error {
	defer n.Store.Close()
	// Each stage has its own context, cancelled in the order of stopping.
	ledgerCtx, stopLedger := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLedger()
	peersCtx, stopPeers := context.WithCancel(ledgerCtx)
	defer stopPeers()
	workersCtx, stopWorkers := context.WithCancel(peersCtx)
	defer stopWorkers()

	var ledger, peers, workers sync.WaitGroup
	ledger.Go(func() { n.Ledger.Run(ledgerCtx) })
	if n.publisher != nil {
		interval := n.cfg.Peers.Interval
		peers.Go(func() { n.publisher.Run(peersCtx, interval) })
		peers.Go(func() { n.mirror.Run(peersCtx, interval) })
	}
	workers.Go(func() { n.Server.RunAuditEvents(workersCtx) })
	workers.Go(func() { n.Server.RunExports(workersCtx) })

	var served error
	if ln != nil {
		timeout := n.cfg.Server.Timeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		hs := &http.Server{
			Handler:           n.Server,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       timeout,
			WriteTimeout:      timeout + 10*time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    1 << 20,
		}
		done := make(chan error, 1)
		go func() { done <- hs.Serve(ln) }()
		select {
		case served = <-done:
		case <-ctx.Done():
			n.cfg.Logger.Info("shutting down", "grace", n.cfg.ShutdownTimeout)
			sctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
			if err := hs.Shutdown(sctx); err != nil {
				served = fmt.Errorf("shutdown: %w", err)
				hs.Close()
			}
			cancel()
			if err := <-done; !errors.Is(err, http.ErrServerClosed) && served == nil {
				served = err
			}
		}
	} else {
		<-ctx.Done()
	}
	stopWorkers()
	workers.Wait()
	stopPeers()
	peers.Wait()
	stopLedger()
	ledger.Wait()
	return served
}
