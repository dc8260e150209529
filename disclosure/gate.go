package disclosure

import (
	"errors"
	"log/slog"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/consent"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
	lru "github.com/hashicorp/golang-lru/v2"
)

// Config wires a Gate.
type Config struct {
	// Store holds the resources, Keys seals them (creating a patient's
	// data key on their first write).
	Store *store.Store
	Keys  *keys.Keyring
	// Ledger records every write and disclosure; it must have been opened
	// with a keyring, which seals the records' openings.
	Ledger *audit.Log
	// Consent is the provider's consent policy: the default when a
	// patient has no consent that applies, and the purposes that need an
	// explicit permit. A zero Default means opt-out (permit).
	Consent consent.Config
	// Labels add security labels on write to the resources that carry
	// given codes (sensitive diagnoses, say), for consents and redaction
	// to act on.
	Labels []LabelRule
	// OnBreakGlass, when set, is called for each break-glass disclosure
	// recorded (a metric).
	OnBreakGlass func()
	Logger       *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Gate decides and records what callers may see of the patient data in
// its store. It is safe for concurrent use.
type Gate struct {
	cfg    Config
	store  *store.Store
	keys   *keys.Keyring
	ledger *audit.Log
	log    *slog.Logger
	now    func() time.Time
	// policyCache keeps patients' compiled consent policies (consent.go).
	policyCache *lru.Cache[string, cachedPolicy]
}

// New checks cfg and builds the Gate.
func New(cfg Config) (*Gate, error) {
	if cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("disclosure: Config.Store and Config.Keys are required")
	}
	if cfg.Ledger == nil {
		return nil, errors.New("disclosure: Config.Ledger is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Consent.Default == consent.Inherit {
		cfg.Consent.Default = consent.Permit
	}
	g := &Gate{cfg: cfg, store: cfg.Store, keys: cfg.Keys, ledger: cfg.Ledger, log: cfg.Logger, now: cfg.Now}
	g.policyCache, _ = lru.New[string, cachedPolicy](policyCacheSize) // a positive size never fails
	return g, nil
}
