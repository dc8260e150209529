package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/audit/balp"
	"github.com/ehrledger/ehrledger/erasure"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
)

// What the keyring and the store are to each other.
var (
	_ keys.Store    = keyStore{}
	_ store.Sealer  = sealer{}
	_ store.DataKey = (*keys.DataKey)(nil)
	_ store.Blinder = (*keys.Blind)(nil)
)

// OpenKeys puts a keyring over kms in front of st: st keeps the wrapped
// data keys, seals and opens every body through the keyring, and stores
// the search values that identify patients blind. The blind index key and
// the provider's key are created on first start; the KMS must be reachable.
func OpenKeys(ctx context.Context, st *store.Store, kms keys.KMS, opts keys.Options) (*keys.Keyring, error) {
	kr := keys.NewKeyring(kms, keyStore{st}, opts)
	ks, err := kr.Ensure(ctx, []string{keys.BlindOwner, keys.ProviderOwner})
	if err != nil {
		return nil, err
	}
	st.UseKeys(sealer{kr}, keys.NewBlind(ks[keys.BlindOwner]))
	return kr, nil
}

// OpenLedger opens the ledger stored in st (verifying it against its last
// checkpoint), sealing the openings of its records under the keyring's
// data keys. The caller runs the log (Log.Run).
func OpenLedger(ctx context.Context, st *store.Store, kr *keys.Keyring, cfg audit.Config) (*audit.Log, error) {
	cfg.Keys = kr
	return audit.Open(ctx, st, cfg)
}

// keyStore is the store as the keyring's keys.Store.
type keyStore struct{ st *store.Store }

func toRecords(ws []store.WrappedKey) []keys.Record {
	out := make([]keys.Record, len(ws))
	for i, w := range ws {
		out[i] = keys.Record{Owner: w.Owner, KMS: w.KMS, Version: w.Version, Blob: w.Blob, Erased: w.Erased}
	}
	return out
}

func fromRecords(rs []keys.Record) []store.WrappedKey {
	out := make([]store.WrappedKey, len(rs))
	for i, r := range rs {
		out[i] = store.WrappedKey{Owner: r.Owner, KMS: r.KMS, Version: r.Version, Blob: r.Blob, Erased: r.Erased}
	}
	return out
}

func (k keyStore) WrappedKeys(ctx context.Context, owners []string) ([]keys.Record, error) {
	ws, err := k.st.WrappedKeys(ctx, owners)
	return toRecords(ws), err
}

func (k keyStore) AddWrappedKeys(ctx context.Context, recs []keys.Record) error {
	return k.st.AddWrappedKeys(ctx, fromRecords(recs))
}

func (k keyStore) StaleWrappedKeys(ctx context.Context, kms string, latest int, after string, limit int) ([]keys.Record, error) {
	ws, err := k.st.StaleWrappedKeys(ctx, kms, latest, after, limit)
	return toRecords(ws), err
}

func (k keyStore) UpdateWrappedKeys(ctx context.Context, recs []keys.Record) error {
	return k.st.UpdateWrappedKeys(ctx, fromRecords(recs))
}

func (k keyStore) EraseKey(ctx context.Context, owner string, record []byte) (int, error) {
	n, err := k.st.EraseKey(ctx, owner, record)
	if errors.Is(err, store.ErrNotFound) {
		return 0, keys.ErrNoKey
	}
	return n, err
}

// sealer is the keyring as the store's store.Sealer.
type sealer struct{ kr *keys.Keyring }

func (s sealer) Keys(ctx context.Context, wrapped []store.WrappedKey) (map[string]store.DataKey, error) {
	ks, err := s.kr.Open(ctx, toRecords(wrapped))
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.DataKey, len(ks))
	for o, k := range ks {
		out[o] = k
	}
	return out, nil
}

// erase is POST /Patient/{id}/$erase: crypto-shredding. The patient's data
// key is destroyed, so every version of every resource sealed under it can
// never be read again; those resources leave search and read as 410, and
// the Bulk Data exports that may hold them are deleted. An
// administrator's operation; it answers an OperationOutcome saying how
// many resources were withdrawn, and 410 when the patient was erased before.
func (s *Server) erase(w http.ResponseWriter, r *http.Request) error {
	if err := requireAdmin(r); err != nil {
		return err
	}
	typ, id := chi.URLParam(r, "type"), chi.URLParam(r, "id")
	if typ != "Patient" {
		return reqErr(errNotFound, "not-supported", "$erase is supported on Patient only")
	}
	if !idPattern.MatchString(id) {
		return store.ErrNotFound
	}
	if err := s.store.Exists(r.Context(), typ, id); err != nil && !isDeleted(err) {
		return err // unknown: 404; erased before: 410
	}
	res, err := erasure.Patient(r.Context(), s.store, s.keys, s.ledger, id, s.now())
	if errors.Is(err, erasure.ErrNoKey) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	if res.Incomplete != nil {
		s.log.Error("erase: the key is erased, but not everything after it was done", "request_id", requestID(r), "err", res.Incomplete)
	}
	s.log.Warn("patient data erased", "request_id", requestID(r), "patient", id, "resources", res.Withdrawn)
	s.writeJSON(w, r, http.StatusOK, erasureOutcome(id, res.Withdrawn, res.Record, res.Opening))
	return nil
}

// erasureOutcome is the answer to an erasure: an OperationOutcome saying
// how many resources were withdrawn, carrying the erasure record's leaf
// and the opening that proves the record is about the patient, which the
// server does not keep.
func erasureOutcome(id string, n int, leaf, opening []byte) operationOutcome {
	oo := outcome(info(fmt.Sprintf("erased the data key of Patient/%s: %d resources can no longer be read; "+
		"the erasure record's opening is in this answer only", id, n)))
	oo.Extension = []balp.Extension{
		{URL: ledgerRecordExt, ValueBase64Binary: base64.StdEncoding.EncodeToString(leaf)},
		{URL: ledgerOpeningExt, ValueBase64Binary: base64.StdEncoding.EncodeToString(opening)},
	}
	return oo
}
