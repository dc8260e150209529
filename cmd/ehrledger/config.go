package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/consent"
	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/export"
	"github.com/ehrledger/ehrledger/server"
	"go.yaml.in/yaml/v3"
)

// serveConfig is everything "ehrledger serve" can be told. Each field comes
// from, in rising precedence: its default, the YAML file (--config or
// EHR_CONFIG), its environment variable, its flag.
type serveConfig struct {
	Addr         string `yaml:"addr"`
	Data         string `yaml:"data"`
	DB           string `yaml:"db"`
	BaseURL      string `yaml:"base_url"`
	MaxBodyBytes int64  `yaml:"max_body_bytes"`
	MaxJSONDepth int    `yaml:"max_json_depth"`
	// The bounds on one request's work (server.Limits).
	MaxCriteria      int           `yaml:"max_search_criteria"`
	MaxValues        int           `yaml:"max_search_values"`
	MaxIncludes      int           `yaml:"max_includes"`
	MaxIndexRows     int           `yaml:"max_index_rows"`
	MaxBundleEntries int           `yaml:"max_bundle_entries"`
	BodyTimeout      time.Duration `yaml:"body_timeout"`
	RequestTimeout   time.Duration `yaml:"request_timeout"`
	ShutdownTimeout  time.Duration `yaml:"shutdown_timeout"`
	LogFormat        string        `yaml:"log_format"`
	LogLevel         string        `yaml:"log_level"`
	// KMS wraps the data keys: "local" (a key file under Data, the
	// embedded default) or "vault" (Vault Transit).
	KMS          string        `yaml:"kms"`
	KeyFile      string        `yaml:"key_file"`
	KeyCacheSize int           `yaml:"key_cache_size"`
	KeyCacheTTL  time.Duration `yaml:"key_cache_ttl"`
	Vault        vaultConfig   `yaml:"vault"`
	// The ledger's origin (<provider-domain>/ehrledger/<log-name>), its
	// checkpoint key file, how often it signs a checkpoint, and how many
	// records may wait for its sequencer before appends are refused.
	LedgerOrigin          string        `yaml:"ledger_origin"`
	LedgerKeyFile         string        `yaml:"ledger_key_file"`
	LedgerCheckpointEvery time.Duration `yaml:"ledger_checkpoint_interval"`
	LedgerMaxPending      int           `yaml:"ledger_max_pending"`
	// Auth: the embedded authorization server and the external issuers
	// whose tokens are accepted; InsecureNoAuth turns authentication off.
	Auth           authConfig `yaml:"auth"`
	InsecureNoAuth bool       `yaml:"insecure_no_auth"`
	// Consent is the provider's consent policy (docs/consent.md).
	Consent consentConfig `yaml:"consent"`
	// AccountingExempt are the purposes of use an accounting of
	// disclosures marks exempt from the legal accounting (docs/accounting.md).
	AccountingExempt []string `yaml:"accounting_exempt"`
	// ExportRetention is how long the files of an ended Bulk Data export
	// are kept (docs/export.md).
	ExportRetention time.Duration `yaml:"export_retention"`
	// Witness is this provider's witness key; Peers the other providers,
	// each witnessed by this one and a witness of its log (docs/peers.md).
	Witness witnessConfig `yaml:"witness"`
	Peers   []peerConfig  `yaml:"peers"`
}

// witnessConfig names this provider's witness and says how many of its
// peers must cosign a checkpoint of its own log for it to be published.
type witnessConfig struct {
	// Name is the witness key's name (default: the ledger origin's domain
	// followed by /ehrledger/witness).
	Name string `yaml:"name"`
	// KeyFile holds its cosigning key (default: witness-key.json under
	// data, created on first start).
	KeyFile string `yaml:"key_file"`
	// Required is how many peers must cosign (default: all of them).
	Required *int `yaml:"required"`
	// Interval is how often peers are mirrored, and a publication that
	// failed is tried again.
	Interval time.Duration `yaml:"interval"`
}

// peerConfig is another provider: its log, its witness and where it
// serves.
type peerConfig struct {
	Name       string `yaml:"name"`
	URL        string `yaml:"url"`
	Origin     string `yaml:"origin"`
	LogKey     string `yaml:"log_key"`     // its /ledger/key
	WitnessKey string `yaml:"witness_key"` // its /witness/key
}

// consentConfig is what decides when a patient's consents do not.
type consentConfig struct {
	// Default is opt-out (permit when no consent applies) or opt-in (deny).
	Default string `yaml:"default"`
	// ExplicitPurposes need a consent that permits them in so many words.
	ExplicitPurposes []string `yaml:"explicit_purposes"`
	// Redact are security labels (system|code, or a bare code) whose data
	// only a consent naming them discloses.
	Redact []string `yaml:"redact"`
	// Labels are added on write to resources carrying one of their codes.
	Labels []labelConfig `yaml:"labels"`
}

// labelConfig is a security label (system|code) and the codes (system|code,
// or a bare code) whose resources get it when written.
type labelConfig struct {
	Label string   `yaml:"label"`
	Codes []string `yaml:"codes"`
}

// authConfig configures who may call the server.
type authConfig struct {
	// Server turns the embedded authorization server on (the default).
	Server bool `yaml:"server"`
	// KeyFile holds its token signing key (default: auth-key.json under
	// data, created on first start).
	KeyFile string `yaml:"key_file"`
	// TokenLifetime is the validity of the tokens it issues.
	TokenLifetime time.Duration `yaml:"token_lifetime"`
	// Issuers are external authorization servers whose tokens are
	// accepted.
	Issuers []issuerConfig `yaml:"issuers"`
}

type issuerConfig struct {
	URL      string `yaml:"url"`
	JWKSURL  string `yaml:"jwks_url"`
	TokenURL string `yaml:"token_url"`
	// MaxLifetime bounds the validity of its tokens (default 1h).
	MaxLifetime time.Duration `yaml:"max_lifetime"`
}

type vaultConfig struct {
	Addr          string `yaml:"addr"`
	Token         string `yaml:"token"`
	RoleID        string `yaml:"role_id"`
	SecretID      string `yaml:"secret_id"`
	Namespace     string `yaml:"namespace"`
	CACert        string `yaml:"ca_cert"`
	ClientCert    string `yaml:"client_cert"`
	ClientKey     string `yaml:"client_key"`
	TLSServerName string `yaml:"tls_server_name"`
	Mount         string `yaml:"transit_mount"`
	Key           string `yaml:"transit_key"`
}

func defaultServeConfig() serveConfig {
	return serveConfig{
		Addr:                  "127.0.0.1:8080",
		Data:                  "./data",
		MaxBodyBytes:          server.DefaultMaxBodyBytes,
		MaxJSONDepth:          server.DefaultMaxDepth,
		MaxCriteria:           server.DefaultMaxCriteria,
		MaxValues:             server.DefaultMaxValues,
		MaxIncludes:           server.DefaultMaxIncludes,
		MaxIndexRows:          server.DefaultMaxIndexRows,
		MaxBundleEntries:      server.DefaultMaxBundleEntries,
		BodyTimeout:           server.DefaultBodyTimeout,
		RequestTimeout:        server.DefaultTimeout,
		ShutdownTimeout:       30 * time.Second,
		ExportRetention:       export.DefaultRetention,
		LogFormat:             "text",
		LogLevel:              "info",
		KMS:                   "local",
		KeyCacheSize:          100_000,
		KeyCacheTTL:           10 * time.Minute,
		Vault:                 vaultConfig{Mount: "transit", Key: "ehrledger"},
		LedgerOrigin:          "localhost/ehrledger/main",
		LedgerCheckpointEvery: time.Second,
		LedgerMaxPending:      16384,
		Witness:               witnessConfig{Interval: time.Second},
		Auth:                  authConfig{Server: true, TokenLifetime: 5 * time.Minute},
		Consent:               consentConfig{Default: "opt-out"},
	}
}

// setting is one configurable value with its flag and environment names.
type setting struct {
	flag, env, usage string
	set              func(c *serveConfig, v string) error
}

// intSetting, durationSetting, boolSetting and listSetting parse a
// setting's value into the field that field returns; a list is comma- or
// space-separated.
func intSetting(field func(*serveConfig) *int) func(*serveConfig, string) error {
	return parsed(strconv.Atoi, field)
}

func durationSetting(field func(*serveConfig) *time.Duration) func(*serveConfig, string) error {
	return parsed(time.ParseDuration, field)
}

func boolSetting(field func(*serveConfig) *bool) func(*serveConfig, string) error {
	return parsed(strconv.ParseBool, field)
}

func listSetting(field func(*serveConfig) *[]string) func(*serveConfig, string) error {
	return parsed(func(v string) ([]string, error) {
		return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }), nil
	}, field)
}

func parsed[T any](parse func(string) (T, error), field func(*serveConfig) *T) func(*serveConfig, string) error {
	return func(c *serveConfig, v string) error {
		x, err := parse(v)
		if err != nil {
			return err
		}
		*field(c) = x
		return nil
	}
}

// booleanFlags may stand alone on the command line (--insecure-no-auth).
var booleanFlags = map[string]bool{"insecure-no-auth": true, "auth-server": true}

var serveSettings = []setting{
	{"addr", "EHR_ADDR", "listen address HOST:PORT (port 0 picks a free one)", func(c *serveConfig, v string) error { c.Addr = v; return nil }},
	{"data", "EHR_DATA", "directory for the embedded database and key files", func(c *serveConfig, v string) error { c.Data = v; return nil }},
	{"db", "EHR_DB", "database: postgres://..., cockroach://... or sqlite:PATH (default: SQLite under --data)", func(c *serveConfig, v string) error { c.DB = v; return nil }},
	{"base-url", "EHR_BASE_URL", "public base URL of the FHIR endpoint, which access tokens must name (default: http://ADDR, and its other loopback names; required with external issuers)", func(c *serveConfig, v string) error { c.BaseURL = v; return nil }},
	{"max-body-bytes", "EHR_MAX_BODY_BYTES", "largest request body accepted", func(c *serveConfig, v string) (err error) {
		c.MaxBodyBytes, err = strconv.ParseInt(v, 10, 64)
		return err
	}},
	{"max-json-depth", "EHR_MAX_JSON_DEPTH", "deepest JSON nesting accepted", intSetting(func(c *serveConfig) *int { return &c.MaxJSONDepth })},
	{"max-search-criteria", "EHR_MAX_SEARCH_CRITERIA", "most criteria one search or condition takes", intSetting(func(c *serveConfig) *int { return &c.MaxCriteria })},
	{"max-search-values", "EHR_MAX_SEARCH_VALUES", "most values one search or condition takes", intSetting(func(c *serveConfig) *int { return &c.MaxValues })},
	{"max-includes", "EHR_MAX_INCLUDES", "most distinct _include and _revinclude in one search", intSetting(func(c *serveConfig) *int { return &c.MaxIncludes })},
	{"max-index-rows", "EHR_MAX_INDEX_ROWS", "most search index rows one resource may store", intSetting(func(c *serveConfig) *int { return &c.MaxIndexRows })},
	{"max-bundle-entries", "EHR_MAX_BUNDLE_ENTRIES", "most entries of a transaction or batch", intSetting(func(c *serveConfig) *int { return &c.MaxBundleEntries })},
	{"body-timeout", "EHR_BODY_TIMEOUT", "longest time a request body may take to arrive", durationSetting(func(c *serveConfig) *time.Duration { return &c.BodyTimeout })},
	{"request-timeout", "EHR_REQUEST_TIMEOUT", "longest time one request may work", durationSetting(func(c *serveConfig) *time.Duration { return &c.RequestTimeout })},
	{"shutdown-timeout", "EHR_SHUTDOWN_TIMEOUT", "how long SIGTERM waits for in-flight requests", durationSetting(func(c *serveConfig) *time.Duration { return &c.ShutdownTimeout })},
	{"log-format", "EHR_LOG_FORMAT", "log format: text or json", func(c *serveConfig, v string) error { c.LogFormat = v; return nil }},
	{"log-level", "EHR_LOG_LEVEL", "log level: debug, info, warn or error", func(c *serveConfig, v string) error { c.LogLevel = v; return nil }},
	{"kms", "EHR_KMS", "what wraps the data keys: local (key file under --data) or vault", func(c *serveConfig, v string) error { c.KMS = v; return nil }},
	{"key-file", "EHR_KEY_FILE", "local KMS key file (default: keys.json under --data)", func(c *serveConfig, v string) error { c.KeyFile = v; return nil }},
	{"key-cache-size", "EHR_KEY_CACHE_SIZE", "most unwrapped data keys kept in memory", intSetting(func(c *serveConfig) *int { return &c.KeyCacheSize })},
	{"key-cache-ttl", "EHR_KEY_CACHE_TTL", "how long an unwrapped data key stays in memory", durationSetting(func(c *serveConfig) *time.Duration { return &c.KeyCacheTTL })},
	{"ledger-origin", "EHR_LEDGER_ORIGIN", "origin of the ledger's checkpoints: <provider-domain>/ehrledger/<log-name>", func(c *serveConfig, v string) error { c.LedgerOrigin = v; return nil }},
	{"ledger-key-file", "EHR_LEDGER_KEY_FILE", "checkpoint signing key (default: ledger-key.json under --data, created on first start)", func(c *serveConfig, v string) error { c.LedgerKeyFile = v; return nil }},
	{"ledger-checkpoint-interval", "EHR_LEDGER_CHECKPOINT_INTERVAL", "how often the ledger signs a checkpoint when it grew", durationSetting(func(c *serveConfig) *time.Duration { return &c.LedgerCheckpointEvery })},
	{"ledger-max-pending", "EHR_LEDGER_MAX_PENDING", "records that may wait for the ledger's sequencer; past it a disclosing request answers 503 with Retry-After", intSetting(func(c *serveConfig) *int { return &c.LedgerMaxPending })},
	{"insecure-no-auth", "EHR_INSECURE_NO_AUTH", "serve every request without an access token, with every scope: for development only", boolSetting(func(c *serveConfig) *bool { return &c.InsecureNoAuth })},
	{"auth-server", "EHR_AUTH_SERVER", "run the embedded authorization server at /auth (--auth-server=false turns it off)", boolSetting(func(c *serveConfig) *bool { return &c.Auth.Server })},
	{"auth-key-file", "EHR_AUTH_KEY_FILE", "the embedded authorization server's signing key (default: auth-key.json under --data, created on first start)", func(c *serveConfig, v string) error { c.Auth.KeyFile = v; return nil }},
	{"auth-token-lifetime", "EHR_AUTH_TOKEN_LIFETIME", "validity of the access tokens the embedded authorization server issues (at most 1h)", durationSetting(func(c *serveConfig) *time.Duration { return &c.Auth.TokenLifetime })},
	{"auth-issuer", "EHR_AUTH_ISSUER", "an external authorization server whose tokens are accepted: its issuer URL (with --auth-jwks-url)", func(c *serveConfig, v string) error {
		c.oneIssuer().URL = v
		return nil
	}},
	{"auth-jwks-url", "EHR_AUTH_JWKS_URL", "the JWKS URL of --auth-issuer", func(c *serveConfig, v string) error { c.oneIssuer().JWKSURL = v; return nil }},
	{"auth-token-url", "EHR_AUTH_TOKEN_URL", "the token endpoint of --auth-issuer, for /.well-known/smart-configuration", func(c *serveConfig, v string) error {
		c.oneIssuer().TokenURL = v
		return nil
	}},
	{"auth-issuer-max-lifetime", "EHR_AUTH_ISSUER_MAX_LIFETIME", "the longest validity of --auth-issuer's tokens (default 1h)", durationSetting(func(c *serveConfig) *time.Duration { return &c.oneIssuer().MaxLifetime })},
	{"consent-default", "EHR_CONSENT_DEFAULT", "what decides when no consent of the patient applies: opt-out (permit) or opt-in (deny)", func(c *serveConfig, v string) error {
		c.Consent.Default = v
		return nil
	}},
	{"consent-explicit-purposes", "EHR_CONSENT_EXPLICIT_PURPOSES", "purposes of use only a consent naming them permits, comma-separated (e.g. HRESCH)", listSetting(func(c *serveConfig) *[]string { return &c.Consent.ExplicitPurposes })},
	{"consent-redact", "EHR_CONSENT_REDACT", "security labels only a consent naming them discloses, comma-separated system|code (e.g. http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R)", listSetting(func(c *serveConfig) *[]string { return &c.Consent.Redact })},
	{"accounting-exempt", "EHR_ACCOUNTING_EXEMPT", "purposes of use an accounting of disclosures marks exempt from the legal accounting, comma-separated (default TREAT,HPAYMT,HOPERAT; \"none\" for none)", listSetting(func(c *serveConfig) *[]string { return &c.AccountingExempt })},
	{"export-retention", "EHR_EXPORT_RETENTION", "how long the files of an ended Bulk Data export are kept", durationSetting(func(c *serveConfig) *time.Duration { return &c.ExportRetention })},
	{"vault-addr", "EHR_VAULT_ADDR", "Vault address", func(c *serveConfig, v string) error { c.Vault.Addr = v; return nil }},
	{"vault-token", "EHR_VAULT_TOKEN", "Vault token (or use AppRole)", func(c *serveConfig, v string) error { c.Vault.Token = v; return nil }},
	{"vault-role-id", "EHR_VAULT_ROLE_ID", "Vault AppRole role id", func(c *serveConfig, v string) error { c.Vault.RoleID = v; return nil }},
	{"vault-secret-id", "EHR_VAULT_SECRET_ID", "Vault AppRole secret id", func(c *serveConfig, v string) error { c.Vault.SecretID = v; return nil }},
	{"vault-namespace", "EHR_VAULT_NAMESPACE", "Vault Enterprise namespace", func(c *serveConfig, v string) error { c.Vault.Namespace = v; return nil }},
	{"vault-ca-cert", "EHR_VAULT_CA_CERT", "PEM file of the CA that signed Vault's certificate", func(c *serveConfig, v string) error { c.Vault.CACert = v; return nil }},
	{"vault-client-cert", "EHR_VAULT_CLIENT_CERT", "PEM certificate for TLS client authentication to Vault", func(c *serveConfig, v string) error { c.Vault.ClientCert = v; return nil }},
	{"vault-client-key", "EHR_VAULT_CLIENT_KEY", "PEM key for TLS client authentication to Vault", func(c *serveConfig, v string) error { c.Vault.ClientKey = v; return nil }},
	{"vault-tls-server-name", "EHR_VAULT_TLS_SERVER_NAME", "server name expected in Vault's certificate", func(c *serveConfig, v string) error { c.Vault.TLSServerName = v; return nil }},
	{"vault-transit-mount", "EHR_VAULT_TRANSIT_MOUNT", "path of Vault's Transit engine", func(c *serveConfig, v string) error { c.Vault.Mount = v; return nil }},
	{"vault-transit-key", "EHR_VAULT_TRANSIT_KEY", "name of the Transit key that wraps the data keys", func(c *serveConfig, v string) error { c.Vault.Key = v; return nil }},
}

// oneIssuer is the issuer the --auth-issuer flags set: the first one
// configured, made if there is none.
func (c *serveConfig) oneIssuer() *issuerConfig {
	if len(c.Auth.Issuers) == 0 {
		c.Auth.Issuers = []issuerConfig{{}}
	}
	return &c.Auth.Issuers[0]
}

// loadServeConfig reads defaults, file, environment and flags, in that
// order, and validates the result.
func loadServeConfig(args []string, getenv func(string) string, stderr io.Writer) (serveConfig, error) {
	return loadConfig(flag.NewFlagSet("ehrledger serve", flag.ContinueOnError), args, getenv, stderr)
}

// loadConfig is loadServeConfig for any command that opens the database
// and keys; fs may carry the command's own flags.
func loadConfig(fs *flag.FlagSet, args []string, getenv func(string) string, stderr io.Writer) (serveConfig, error) {
	fs.SetOutput(stderr)
	configFile := fs.String("config", getenv("EHR_CONFIG"), "optional YAML configuration file (env EHR_CONFIG)")
	given := map[string]string{}
	for _, s := range serveSettings {
		name := s.flag
		record := func(v string) error { given[name] = v; return nil }
		if booleanFlags[name] {
			fs.BoolFunc(name, s.usage+" (env "+s.env+")", record)
		} else {
			fs.Func(name, s.usage+" (env "+s.env+")", record)
		}
	}
	if err := fs.Parse(args); err != nil {
		return serveConfig{}, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return serveConfig{}, errUsage
	}
	cfg := defaultServeConfig()
	if *configFile != "" {
		b, err := os.ReadFile(*configFile)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config %s: %w", *configFile, err)
		}
	}
	for _, s := range serveSettings {
		if v := getenv(s.env); v != "" {
			if err := s.set(&cfg, v); err != nil {
				return cfg, fmt.Errorf("%s=%q: %w", s.env, v, err)
			}
		}
		if v, ok := given[s.flag]; ok {
			if err := s.set(&cfg, v); err != nil {
				return cfg, fmt.Errorf("--%s=%q: %w", s.flag, v, err)
			}
		}
	}
	return cfg, cfg.Validate()
}

// Validate reports the first setting that cannot work.
func (c *serveConfig) Validate() error {
	switch {
	case c.Addr == "":
		return errors.New("config: addr is empty")
	case c.Data == "":
		return errors.New("config: data is empty")
	case c.MaxBodyBytes <= 0:
		return errors.New("config: max_body_bytes must be positive")
	case c.MaxJSONDepth <= 0:
		return errors.New("config: max_json_depth must be positive")
	case len(c.Auth.Issuers) > 0 && c.BaseURL == "":
		return errors.New("config: base_url (--base-url) is required with external issuers: their tokens name the resource server they are for, which must not be taken from the request")
	case c.MaxCriteria <= 0 || c.MaxValues <= 0 || c.MaxIncludes <= 0 || c.MaxIndexRows <= 0 || c.MaxBundleEntries <= 0:
		return errors.New("config: max_search_criteria, max_search_values, max_includes, max_index_rows and max_bundle_entries must be positive")
	case c.RequestTimeout <= 0 || c.ShutdownTimeout <= 0 || c.BodyTimeout <= 0:
		return errors.New("config: timeouts must be positive")
	case c.ExportRetention <= 0:
		return errors.New("config: export_retention must be positive")
	case c.KMS != "local" && c.KMS != "vault":
		return fmt.Errorf("config: kms must be local or vault, not %q", c.KMS)
	case c.KMS == "vault" && c.Vault.Addr == "":
		return errors.New("config: kms vault needs vault.addr (--vault-addr)")
	case c.KMS == "vault" && c.Vault.Token == "" && (c.Vault.RoleID == "" || c.Vault.SecretID == ""):
		return errors.New("config: kms vault needs a token or an AppRole role id and secret id")
	case c.LedgerOrigin == "" || strings.ContainsAny(c.LedgerOrigin, "+ \t\n"):
		return fmt.Errorf("config: ledger_origin %q must be non-empty, without spaces or '+'", c.LedgerOrigin)
	case c.LedgerCheckpointEvery <= 0:
		return errors.New("config: ledger_checkpoint_interval must be positive")
	case c.LedgerMaxPending <= 0:
		return errors.New("config: ledger_max_pending must be positive")
	case c.KeyCacheSize <= 0 || c.KeyCacheTTL <= 0:
		return errors.New("config: key_cache_size and key_cache_ttl must be positive")
	case c.LogFormat != "text" && c.LogFormat != "json":
		return fmt.Errorf("config: log_format must be text or json, not %q", c.LogFormat)
	case c.Auth.TokenLifetime <= 0 || c.Auth.TokenLifetime > auth.MaxLifetime:
		return fmt.Errorf("config: auth.token_lifetime must be between 0 and %v", auth.MaxLifetime)
	case c.Consent.Default != "opt-out" && c.Consent.Default != "opt-in":
		return fmt.Errorf("config: consent.default must be opt-out or opt-in, not %q", c.Consent.Default)
	case slices.ContainsFunc(c.Consent.Labels, func(l labelConfig) bool { return coding(l.Label).Code == "" || len(l.Codes) == 0 }):
		return errors.New("config: each of consent.labels needs a label (system|code) and codes")
	case !c.InsecureNoAuth && !c.Auth.Server && len(c.Auth.Issuers) == 0:
		return errors.New("config: nobody could get a token: keep the embedded authorization server (auth.server) or configure auth.issuers")
	}
	names := map[string]bool{}
	for i, p := range c.Peers {
		switch {
		case p.Name == "" || p.URL == "" || p.Origin == "" || p.LogKey == "" || p.WitnessKey == "":
			return fmt.Errorf("config: peers[%d] needs name, url, origin, log_key and witness_key", i)
		case names[p.Name]:
			return fmt.Errorf("config: peers[%d]: the name %q is used twice", i, p.Name)
		case p.Origin == c.LedgerOrigin:
			return fmt.Errorf("config: peers[%d] has this provider's own origin %q", i, p.Origin)
		}
		names[p.Name] = true
	}
	if r := c.Witness.Required; r != nil && (*r < 0 || *r > len(c.Peers)) {
		return fmt.Errorf("config: witness.required is %d, but there are %d peers", *r, len(c.Peers))
	}
	if c.Witness.Interval <= 0 {
		return errors.New("config: witness.interval must be positive")
	}
	for i, iss := range c.Auth.Issuers {
		if iss.URL == "" || iss.JWKSURL == "" {
			return fmt.Errorf("config: auth.issuers[%d] needs url and jwks_url (--auth-issuer and --auth-jwks-url)", i)
		}
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("config: log_level: %w", err)
	}
	return nil
}

// dsn is the database to open: the configured one or the embedded SQLite
// file under the data directory.
func (c *serveConfig) dsn() string {
	if c.DB != "" {
		return c.DB
	}
	return "sqlite:" + filepath.Join(c.Data, "ehrledger.db")
}

// ledgerKeyFile is the ledger's checkpoint key file.
func (c *serveConfig) ledgerKeyFile() string {
	if c.LedgerKeyFile != "" {
		return c.LedgerKeyFile
	}
	return filepath.Join(c.Data, "ledger-key.json")
}

// accountingExempt is what an accounting marks exempt: the configured
// purposes ("none": none), or the server's default.
func (c *serveConfig) accountingExempt() []string {
	switch {
	case c.AccountingExempt == nil:
		return nil
	case slices.Equal(c.AccountingExempt, []string{"none"}):
		return []string{}
	}
	return c.AccountingExempt
}

// consent is the consent engine's configuration.
func (c *serveConfig) consent() consent.Config {
	cfg := consent.Config{Default: consent.Permit, ExplicitPurposes: c.Consent.ExplicitPurposes}
	for _, l := range c.Consent.Redact {
		cfg.Redact = append(cfg.Redact, coding(l))
	}
	if c.Consent.Default == "opt-in" {
		cfg.Default = consent.Deny
	}
	return cfg
}

// coding reads system|code, or a bare code.
func coding(s string) consent.Coding {
	system, code, ok := strings.Cut(s, "|")
	if !ok {
		return consent.Coding{Code: s}
	}
	return consent.Coding{System: system, Code: code}
}

// labelRules are the labels added on write.
func (c *serveConfig) labelRules() []disclosure.LabelRule {
	var out []disclosure.LabelRule
	for _, l := range c.Consent.Labels {
		rule := disclosure.LabelRule{Label: coding(l.Label)}
		for _, code := range l.Codes {
			rule.Codes = append(rule.Codes, coding(code))
		}
		out = append(out, rule)
	}
	return out
}

// authKeyFile is the embedded authorization server's key file.
func (c *serveConfig) authKeyFile() string {
	if c.Auth.KeyFile != "" {
		return c.Auth.KeyFile
	}
	return filepath.Join(c.Data, "auth-key.json")
}

// embedded reports whether the database is the embedded SQLite one.
func (c *serveConfig) embedded() bool {
	dsn := c.dsn()
	return !strings.Contains(dsn, "://")
}

// publicBase is the FHIR base URL clients use: the configured one, else
// the listen address over plain HTTP.
func (c *serveConfig) publicBase() string {
	if c.BaseURL != "" {
		return strings.TrimSuffix(c.BaseURL, "/")
	}
	return "http://" + c.Addr
}

// keyFile is the local KMS's key file.
func (c *serveConfig) keyFile() string {
	if c.KeyFile != "" {
		return c.KeyFile
	}
	return filepath.Join(c.Data, "keys.json")
}

func (c *serveConfig) logger(w io.Writer) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(c.LogLevel)) // checked by Validate
	opts := &slog.HandlerOptions{Level: l}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
