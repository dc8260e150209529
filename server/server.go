package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/audit/mirror"
	"github.com/ehrledger/ehrledger/audit/witness"
	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/consent"
	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/export"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxBodyBytes = 16 << 20 // 16 MiB
	DefaultMaxDepth     = fhir.DefaultMaxDepth
	DefaultPageSize     = 50
	MaxPageSize         = 1000
	DefaultTimeout      = 60 * time.Second
)

// Config wires a Server.
type Config struct {
	Store *store.Store
	// Keys seals what Store holds (OpenKeys); it creates patients' data
	// keys and erases them.
	Keys *keys.Keyring
	// Ledger records every write and disclosure (OpenLedger); LedgerKey is
	// its checkpoint verifier key,
	// served at /ledger/key. The caller runs the ledger.
	Ledger    *audit.Log
	LedgerKey string
	// BaseURL is the public base of the FHIR endpoint: the audience its
	// access tokens must name, the base of the embedded authorization
	// server's issuer, and of Location and fullUrl. It comes from
	// configuration, never from a request (a Host header naming another
	// server must not make its tokens good here); required unless
	// authentication is off.
	BaseURL string
	// Aliases are further base URLs the server answers as: a request
	// whose Host names one is served as that base (the loopback names of a
	// development server, http://localhost:8080 beside
	// http://127.0.0.1:8080). Any other Host is served as BaseURL.
	Aliases []string
	// MaxBodyBytes bounds request bodies (413 beyond); 0 means the default.
	MaxBodyBytes int64
	// MaxDepth bounds the JSON nesting of request bodies; 0 means the default.
	MaxDepth int
	// Timeout bounds the work of one request; 0 means the default.
	Timeout time.Duration
	// Limits bound what one request may ask (limits.go).
	Limits Limits
	// Metrics receives request and database figures; nil makes a private set.
	Metrics *Metrics
	Logger  *slog.Logger
	// Version is the software version shown in the CapabilityStatement.
	Version string
	// Issuers are the external authorization servers whose access tokens
	// are accepted.
	Issuers []Issuer
	// Authority, when set, is the embedded authorization server, mounted
	// at /auth and trusted beside Issuers.
	Authority *Authority
	// InsecureNoAuth serves every request without a token, with every
	// scope: for development only. The caller should say so loudly.
	InsecureNoAuth bool
	// Consent is the provider's consent policy: the default when a
	// patient has no consent that applies, and the purposes that need an
	// explicit permit. A zero Default means opt-out (permit).
	Consent consent.Config
	// Labels add security labels on write to the resources that carry
	// given codes (sensitive diagnoses, say), for consents and redaction
	// to act on.
	Labels []disclosure.LabelRule
	// Witness, when set, cosigns the checkpoints of the peers' logs
	// (POST /witness/add-checkpoint); Publisher, when set, gathers the
	// cosignatures of this provider's witnesses on its own log's
	// checkpoints. The caller runs it.
	// WitnessKey is the witness's cosignature/v1 verifier key, served at
	// /witness/key for peers to configure.
	Witness    *witness.Witness
	WitnessKey string
	Publisher  *witness.Publisher
	// Mirror, when set, holds copies of the peers' logs, served under
	// /mirror/<origin>/. The caller runs it.
	Mirror *mirror.Mirror
	// AccountingExempt are the purposes of use that an accounting of
	// disclosures marks exempt from the legal accounting (marked, never
	// left out); nil means DefaultAccountingExempt.
	AccountingExempt []string
	// ExportRetention is how long the files of an ended Bulk Data export
	// are kept; 0 means export.DefaultRetention.
	ExportRetention time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is the FHIR REST API over a Store. It is an http.Handler.
type Server struct {
	cfg     Config
	store   *store.Store
	keys    *keys.Keyring
	ledger  *audit.Log
	log     *slog.Logger
	metrics *Metrics
	router  chi.Router
	now     func() time.Time
	limits  fhir.Limits
	started time.Time
	// verifier checks access tokens (nil when authentication is off);
	// authServer is the embedded authorization server, nil when off.
	verifier   *auth.Verifier
	authServer *auth.Server
	// gate is the only road to patient data (package disclosure).
	gate *disclosure.Gate
	// capCache holds the encoded CapabilityStatement by base URL.
	capCache sync.Map
	// exports stores and runs the Bulk Data export jobs.
	exports *export.Jobs
	// ledgerHandler is the log's own HTTP face, under /ledger/.
	ledgerHandler http.Handler
}

// New checks cfg and builds the Server with its routes. With an
// Authority it registers the bootstrap clients that are not registered
// yet.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: Config.Store is required")
	}
	if cfg.BaseURL == "" && !cfg.InsecureNoAuth {
		return nil, errors.New("server: Config.BaseURL is required: access tokens are checked against it, not against the request's Host")
	}
	if cfg.Keys == nil {
		return nil, errors.New("server: Config.Keys is required (OpenKeys)")
	}
	if cfg.Ledger == nil {
		return nil, errors.New("server: Config.Ledger is required (OpenLedger)")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = DefaultMaxDepth
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Consent.Default == consent.Inherit {
		cfg.Consent.Default = consent.Permit
	}
	gate, err := disclosure.New(disclosure.Config{Store: cfg.Store, Keys: cfg.Keys, Ledger: cfg.Ledger,
		Consent: cfg.Consent, Labels: cfg.Labels, OnBreakGlass: cfg.Metrics.breakGlassDisclosures.Inc, Logger: cfg.Logger, Now: cfg.Now})
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		store:   cfg.Store,
		keys:    cfg.Keys,
		ledger:  cfg.Ledger,
		log:     cfg.Logger,
		metrics: cfg.Metrics,
		now:     cfg.Now,
		limits:  fhir.Limits{MaxDepth: cfg.MaxDepth},
		started: cfg.Now(),
		gate:    gate,
		exports: export.New(export.Config{Store: cfg.Store, Keys: cfg.Keys, Gate: gate, Logger: cfg.Logger,
			Retention: cfg.ExportRetention, Now: cfg.Now}),
	}
	if cfg.Ledger != nil {
		s.ledgerHandler = http.StripPrefix("/ledger", cfg.Ledger.Handler(cfg.LedgerKey, s.trustedCheckpoint, s.writeError))
	}
	if cfg.Authority != nil {
		var err error
		if s.authServer, err = newAuthorizationServer(ctx, cfg.Store, cfg.Authority, s.baseURL); err != nil {
			return nil, err
		}
	}
	if !cfg.InsecureNoAuth {
		var err error
		if s.verifier, err = newVerifier(cfg, s.authServer); err != nil {
			return nil, err
		}
	}
	fhir.ResourceTypes()                                             // load the R4 model now, not during the first request
	s.metrics.dbRetries.WithLabelValues(string(cfg.Store.Dialect())) // show 0 before the first retry
	s.metrics.watchKeys(cfg.Keys)
	s.router = s.routes()
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

func (s *Server) routes() chi.Router {
	r := chi.NewRouter()
	r.Use(s.requestID, s.logRequests, s.recoverPanics, middleware.StripSlashes)
	r.NotFound(s.handle("unknown", func(w http.ResponseWriter, r *http.Request) error {
		return reqErr(errNotFound, "not-supported", "no FHIR endpoint at %s %s", r.Method, r.URL.Path)
	}))
	r.MethodNotAllowed(s.handle("unknown", func(w http.ResponseWriter, r *http.Request) error {
		return reqErr(errMethodNotAllowed, "not-supported", "%s is not supported on %s", r.Method, r.URL.Path)
	}))

	// Open to everyone: health, metrics, what the server can do, how to
	// get a token, and the ledger, which holds nothing but PHI-free
	// records and is meant to be published.
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Handle("/metrics", s.metrics.Handler())
	r.Get("/metadata", s.handle("capabilities", s.capabilities))
	r.Get("/.well-known/smart-configuration", s.handleAs("smart-configuration", false, s.smartConfiguration))
	if s.authServer != nil {
		r.Post("/auth/token", s.authServer.ServeHTTP)
		r.Get("/auth/jwks", s.authServer.ServeHTTP)
	}
	for _, path := range []string{"/ledger/checkpoint", "/ledger/key", "/ledger/tile/*", "/ledger/proof/inclusion", "/ledger/proof/consistency"} {
		r.Get(path, s.handleAs("ledger", false, s.ledgerFace))
	}
	r.Get("/ledger/checkpoint/cosigned", s.handleAs("ledger", false, s.ledgerCosigned))
	r.Get("/ledger/peers", s.handleAs("ledger", false, s.peersStatus))
	r.Get("/ledger/peers/evidence", s.handleAs("ledger", false, s.peerEvidence))
	// The witness protocol is authenticated by the checkpoints' signatures.
	r.Post("/witness/add-checkpoint", s.handleAs("witness", false, s.witnessAdd))
	r.Get("/witness/checkpoint", s.handleAs("witness", false, s.witnessCheckpoint))
	r.Get("/witness/key", s.handleAs("witness", false, s.witnessKey))
	r.Get("/mirror/*", s.handleAs("mirror", false, s.mirrored))

	// Everything else needs an access token.
	a := r.With(s.authenticate)
	if s.authServer != nil {
		a.Get("/auth/clients", s.handleAs("clients", false, s.listClients))
		a.Get("/auth/clients/{id}", s.handleAs("clients", false, s.getClient))
		a.Put("/auth/clients/{id}", s.handleAs("clients", false, s.putClient))
		a.Delete("/auth/clients/{id}", s.handleAs("clients", false, s.deleteClient))
	}
	// AuditEvent search is the ledger's view (docs/ledger.md), not a
	// search of stored resources.
	a.Get("/AuditEvent", s.handle("audit-search", s.auditEvents))
	a.Get("/_history", s.handle("history-system", s.historySystem))
	a.Get("/$export", s.handle("export", s.exportSystemLevel))
	a.Post("/$export", s.handle("export", s.exportSystemLevel))
	a.Get("/$export-status/{job}", s.handleAs("export-status", false, s.exportStatus))
	a.Delete("/$export-status/{job}", s.handleAs("export-status", false, s.exportDelete))
	a.Get("/$export-file/{job}/{file}", s.handleAs("export-file", false, s.exportFileGet))
	a.Post("/ledger/peers/trust", s.handleAs("peers", false, s.trustPeer))
	a.Get("/ledger/opening/{n}", s.handleAs("ledger-opening", false, s.ledgerOpening))
	a.Get("/ledger/written/{type}/{id}/{vid}", s.handleAs("ledger-opening", false, s.ledgerWritten))
	a.Post("/", s.handle("transaction", s.transactionOrBatch))

	// Flat patterns (no sub-routers), so that Match, and with it the Allow
	// header of a 405, sees every method of a path.
	t := a.With(s.checkType)
	t.Get("/{type}", s.handle("search-type", s.search))
	t.Post("/{type}/_search", s.handle("search-type", s.search))
	t.Post("/{type}", s.handle("create", scoped(auth.Create, s.create)))
	t.Put("/{type}", s.handle("conditional-update", scoped(auth.Update, s.conditionalUpdate)))
	t.Patch("/{type}", s.handle("conditional-patch", scoped(auth.Patch, s.conditionalPatch)))
	t.Delete("/{type}", s.handle("conditional-delete", scoped(auth.Delete, s.conditionalDelete)))
	t.Get("/{type}/_history", s.handle("history-type", s.historyType))
	t.Get("/{type}/$export", s.handle("export", s.exportPatients))
	t.Post("/{type}/$export", s.handle("export", s.exportPatients))
	t.Post("/{type}/$validate", s.handle("validate", s.validate))
	t.Get("/{type}/{id}", s.handle("read", s.read))
	t.Put("/{type}/{id}", s.handle("update", scoped(auth.Update, s.update)))
	t.Patch("/{type}/{id}", s.handle("patch", scoped(auth.Patch, s.patch)))
	t.Delete("/{type}/{id}", s.handle("delete", scoped(auth.Delete, s.delete)))
	t.Get("/{type}/{id}/_history", s.handle("history-instance", s.historyInstance))
	t.Get("/{type}/{id}/_history/{vid}", s.handle("vread", s.vread))
	t.Post("/{type}/{id}/$validate", s.handle("validate", s.validate))
	t.Get("/{type}/{id}/$everything", s.handle("everything", s.everything))
	t.Get("/{type}/{id}/$disclosures", s.handle("disclosures", s.disclosures))
	t.Get("/{type}/{id}/$export", s.handle("export", s.exportGroup))
	t.Post("/{type}/{id}/$export", s.handle("export", s.exportGroup))
	t.Post("/{type}/{id}/$erase", s.handle("erase", s.erase))
	t.Get("/{type}/{id}/{ctype}", s.handle("search-compartment", s.compartmentSearch))
	return r
}

// handlerFunc is a FHIR interaction: it writes a success itself and returns
// any failure for writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts an interaction to http, with its deadline, error answer and
// metrics.
func (s *Server) handle(interaction string, h handlerFunc) http.HandlerFunc {
	return s.handleAs(interaction, true, h)
}

// handleAs is handle, with FHIR content negotiation or without (the
// ledger's endpoints serve notes, tiles and plain JSON).
func (s *Server) handleAs(interaction string, fhirMedia bool, h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
		defer cancel()
		r = r.WithContext(ctx)
		sw := &statusWriter{ResponseWriter: w}
		if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			// r.URL.Query() would drop the malformed part and go on: a
			// search would then match more than asked.
			s.writeError(sw, r, reqErr(errInvalid, "invalid", "malformed query string: %v", err))
		} else if err := negotiate(r); fhirMedia && err != nil {
			s.writeError(sw, r, err)
		} else if err := h(sw, r); err != nil {
			s.writeError(sw, r, err)
		}
		setInteraction(r, interaction)
		s.metrics.observe(interaction, sw.status(), time.Since(start))
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status":"ok"}`))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.writeError(w, r, errors.Join(store.ErrUnavailable, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status":"ready"}`))
}

// checkType answers 404 for a path segment that is not an R4 resource type.
func (s *Server) checkType(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		typ := chi.URLParam(r, "type")
		if !fhir.IsResourceType(typ) {
			s.handle("unknown", func(w http.ResponseWriter, r *http.Request) error {
				return reqErr(errNotFound, "not-supported", "%q is not a FHIR R4 resource type", typ)
			})(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func requestID(r *http.Request) string { return middleware.GetReqID(r.Context()) }
