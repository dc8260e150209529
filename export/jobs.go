// Package export runs Bulk Data exports (FHIR Bulk Data Access IG v2,
// docs/export.md): a kick-off stores a job (Jobs.Start) and answers at
// once; a worker (Jobs.Run) on any replica runs it in batches of
// patients, reading each patient's data through the gate, which decides
// it by their consents and records one disclosure per patient before the
// batch counts as done; the client polls the job and downloads its
// ndjson files, sealed at rest with the job's own data key, which is
// erased when the job is deleted or expires. The HTTP side (parameters,
// status, manifest, downloads) is package server's.
package export

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
)

// DefaultRetention is how long an ended export's files are kept.
const DefaultRetention = 24 * time.Hour

const (
	// batchPatients is how many patients a batch exports.
	batchPatients = 100
	// readChunk bounds the provider's resources read at once.
	readChunk = 512
	// partBytes is the size at which a type's buffered output is sealed
	// and stored as a part; bufferedBytes bounds all buffers together.
	partBytes     = 1 << 20
	bufferedBytes = 4 << 20
	// fileResources splits a type's output into files of at most this
	// many resources (a file ends only between parts).
	fileResources = 50_000
	// lease is how long a worker holds a job between two steps before
	// another worker may take it over.
	lease = time.Minute
	// attempts is how many times in a row a batch may fail before the
	// job is failed.
	attempts = 5
)

// Levels of an export.
const (
	System  = "system"
	Patient = "patient"
	Group   = "group"
)

// ErrNotFound says a job does not exist, is not the caller's, or was
// deleted (its key erased).
var ErrNotFound = errors.New("export: no such job of this caller")

// Config is what Jobs works with.
type Config struct {
	Store *store.Store
	Keys  *keys.Keyring
	// Gate reads the patients' and the provider's data for the jobs.
	Gate   *disclosure.Gate
	Logger *slog.Logger
	// Retention is how long the files of an ended job are kept; 0 means
	// DefaultRetention.
	Retention time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Jobs stores, runs, serves and deletes export jobs.
type Jobs struct {
	store     *store.Store
	keys      *keys.Keyring
	gate      *disclosure.Gate
	log       *slog.Logger
	retention time.Duration
	now       func() time.Time
	// wake tells Run that a job was accepted.
	wake chan struct{}
}

// New returns the jobs of cfg.Store.
func New(cfg Config) *Jobs {
	j := &Jobs{store: cfg.Store, keys: cfg.Keys, gate: cfg.Gate, log: cfg.Logger, retention: cfg.Retention, now: cfg.Now,
		wake: make(chan struct{}, 1)}
	if j.retention <= 0 {
		j.retention = DefaultRetention
	}
	if j.now == nil {
		j.now = time.Now
	}
	if j.log == nil {
		j.log = slog.Default()
	}
	return j
}

// Spec is what a job exports and for whom, as stored with it.
type Spec struct {
	// Request is the kick-off URL, for the manifest.
	Request string `json:"request"`
	Level   string `json:"level"`
	// Members are the key owners of the group's patients, sorted.
	Members []string `json:"members,omitempty"`
	// Patients, when not nil, are the only patients (key owners, sorted)
	// whose data may be exported: the patient parameter.
	Patients []string `json:"patients,omitempty"`
	Types    []string `json:"types"`
	Since    int64    `json:"since_us,omitempty"`
	// TypeFilters are the _typeFilter queries by type, any of which a
	// resource of the type must meet.
	TypeFilters map[string][]string `json:"type_filters,omitempty"`
	Caller      Caller              `json:"caller"`
}

// Caller is the caller who kicked an export off, as the job acts
// for them.
type Caller struct {
	Open     bool     `json:"open,omitempty"`
	Issuer   string   `json:"iss,omitempty"`
	Subject  string   `json:"sub,omitempty"`
	ClientID string   `json:"client_id,omitempty"`
	Scope    string   `json:"scope,omitempty"`
	Patient  string   `json:"patient,omitempty"`
	FHIRUser string   `json:"fhir_user,omitempty"`
	Actor    string   `json:"actor,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	Purposes []string `json:"purposes,omitempty"`
	Purpose  string   `json:"purpose,omitempty"`
}

// CallerOf is c as an export job keeps it. The embedded
// authorization server's issuer is kept as its path, since its URL
// follows the server's base (a restart on another address).
func CallerOf(c *disclosure.Caller, base string) Caller {
	e := Caller{Open: c.Open, Purpose: c.Purpose}
	if cl := c.Claims; cl != nil {
		e.Issuer, e.Subject, e.ClientID, e.Scope = cl.Issuer, cl.Subject, cl.ClientID, cl.RawScope
		if e.Issuer == auth.IssuerURL(base) {
			e.Issuer = auth.EmbeddedIssuerPath
		}
		e.Patient, e.FHIRUser, e.Actor, e.Roles, e.Purposes = cl.Patient, cl.FHIRUser, cl.Actor, cl.Roles, cl.PurposeOfUse
	}
	return e
}

func (e Caller) caller() *disclosure.Caller {
	if e.Open {
		return &disclosure.Caller{Open: true, Purpose: e.Purpose}
	}
	cl := &auth.Claims{Issuer: e.Issuer, Subject: e.Subject, ClientID: e.ClientID, RawScope: e.Scope, Patient: e.Patient,
		FHIRUser: e.FHIRUser, Actor: e.Actor, Roles: e.Roles, PurposeOfUse: e.Purposes}
	cl.Scopes, cl.IgnoredScopes = auth.ParseScopes(e.Scope)
	return &disclosure.Caller{Claims: cl, Purpose: e.Purpose}
}

// same reports whether e and o are the same caller as far as what they
// may reach goes (the purpose of one request aside).
func (e Caller) same(o Caller) bool {
	set := func(xs []string) string {
		xs = slices.Clone(xs)
		slices.Sort(xs)
		return strings.Join(slices.Compact(xs), " ")
	}
	return e.Open == o.Open && e.Issuer == o.Issuer && e.Subject == o.Subject && e.ClientID == o.ClientID &&
		e.Patient == o.Patient && e.FHIRUser == o.FHIRUser && e.Actor == o.Actor &&
		set(strings.Fields(e.Scope)) == set(strings.Fields(o.Scope)) && set(e.Roles) == set(o.Roles) && set(e.Purposes) == set(o.Purposes)
}

// Start stores a job exporting spec for client and wakes a worker; it
// returns the job's id. The job's own key seals what it stores, its
// request included: a Group's members, a filter, may say something of
// patients.
func (j *Jobs) Start(ctx context.Context, client string, spec *Spec) (string, error) {
	id := newID()
	dk, err := j.keys.Ensure(ctx, []string{keys.ExportOwner(id)})
	if err != nil {
		return "", err
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	sealed, err := dk[keys.ExportOwner(id)].Seal(aad(id, "spec", 0), raw)
	if err != nil {
		return "", err
	}
	if err := j.store.CreateExport(ctx, &store.ExportJob{ID: id, Client: client, Spec: sealed}); err != nil {
		return "", err
	}
	select {
	case j.wake <- struct{}{}:
	default:
	}
	return id, nil
}

// Job is a stored job opened for its caller.
type Job struct {
	*store.ExportJob
	Spec *Spec
	key  *keys.DataKey
}

// Own returns job id when caller (of client) is who started it: the same
// client, acting for the same user, patient and actor, with the same
// scopes and purposes (another token of the client with fewer scopes may
// not read what the export holds). ErrNotFound for anyone else, who
// learns nothing of it.
func (j *Jobs) Own(ctx context.Context, id, client string, caller Caller) (*Job, error) {
	sj, err := j.store.Export(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && sj.Client != client {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	key, err := jobKey(ctx, j.keys, sj.ID)
	if err != nil {
		return nil, err
	}
	spec, err := openSpec(key, sj)
	if err != nil {
		return nil, err
	}
	if !spec.Caller.same(caller) {
		return nil, ErrNotFound
	}
	return &Job{ExportJob: sj, Spec: spec, key: key}, nil
}

// Delete cancels job id or deletes its files, and erases its key.
func (j *Jobs) Delete(ctx context.Context, id string) error { return drop(ctx, j.store, j.keys, id) }

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// jobKey is the data key of job; ErrNotFound once it is erased.
func jobKey(ctx context.Context, kr *keys.Keyring, job string) (*keys.DataKey, error) {
	dk, err := kr.Keys(ctx, []string{keys.ExportOwner(job)})
	if err != nil {
		return nil, err
	}
	key := dk[keys.ExportOwner(job)]
	if key == nil || key.Erased() {
		return nil, ErrNotFound
	}
	return key, nil
}

// openSpec opens the stored spec of job j.
func openSpec(key *keys.DataKey, j *store.ExportJob) (*Spec, error) {
	raw, err := key.Open(aad(j.ID, "spec", 0), j.Spec)
	if err != nil {
		return nil, err
	}
	var spec Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("export: job %s: the stored request: %w", j.ID, err)
	}
	return &spec, nil
}

// drop erases job's key, which makes its files unreadable at once,
// then deletes the job and its files.
func drop(ctx context.Context, st *store.Store, kr *keys.Keyring, job string) error {
	if _, err := kr.Erase(ctx, keys.ExportOwner(job), nil); err != nil && !errors.Is(err, keys.ErrNoKey) {
		return err
	}
	err := st.DeleteExport(ctx, job)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted meanwhile
	}
	return err
}

// DropPatient deletes every Bulk Data export job that holds, or
// may come to hold, data of the patient with id: every system and Patient
// export, and the Group exports that list them. Crypto-shredding a
// patient thereby leaves no readable copy of their data in an export's
// files either. It returns how many jobs it deleted.
func DropPatient(ctx context.Context, st *store.Store, kr *keys.Keyring, id string) (int, error) {
	jobs, err := st.Exports(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, j := range jobs {
		key, err := jobKey(ctx, kr, j.ID)
		if errors.Is(err, ErrNotFound) {
			continue // being deleted
		}
		if err != nil {
			return n, err
		}
		// A job whose request cannot be read may hold anyone's data.
		if spec, err := openSpec(key, j); err == nil {
			x := running{spec: spec}
			if from := x.listed(); from != nil && !slices.Contains(from, keys.PatientOwner(id)) {
				continue
			}
		}
		if err := drop(ctx, st, kr, j.ID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// aad binds a sealed part to its job, type and place.
func aad(job, typ string, seq int64) []byte {
	return []byte("export/" + job + "/" + typ + "/" + strconv.FormatInt(seq, 10))
}
