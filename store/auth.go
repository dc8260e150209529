package store

import (
	"context"
	"fmt"
	"time"
)

// The embedded authorization server's state: registered clients and the
// client assertions used. Registrations are opaque documents here; the
// auth package gives them their meaning.

// AuthClient returns the registration document of the client id, or
// ErrNotFound.
func (s *Store) AuthClient(ctx context.Context, id string) ([]byte, error) {
	var docs []string
	if err := s.db.WithContext(ctx).Raw(`SELECT doc FROM auth_clients WHERE id = ?`, id).Scan(&docs).Error; err != nil {
		return nil, s.classify(fmt.Errorf("store: auth client: %w", err))
	}
	if len(docs) == 0 {
		return nil, ErrNotFound
	}
	return []byte(docs[0]), nil
}

// AuthClients returns every registration document, by client id.
func (s *Store) AuthClients(ctx context.Context) ([][]byte, error) {
	var docs []string
	if err := s.db.WithContext(ctx).Raw(`SELECT doc FROM auth_clients ORDER BY id`).Scan(&docs).Error; err != nil {
		return nil, s.classify(fmt.Errorf("store: auth clients: %w", err))
	}
	out := make([][]byte, len(docs))
	for i, d := range docs {
		out[i] = []byte(d)
	}
	return out, nil
}

// AddAuthClient stores the registration of a new client; it returns false
// and changes nothing when the id is taken.
func (s *Store) AddAuthClient(ctx context.Context, id string, doc []byte) (bool, error) {
	res := s.db.WithContext(ctx).Exec(`INSERT INTO auth_clients (id, doc, updated_us) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		id, string(doc), time.Now().UnixMicro())
	if res.Error != nil {
		return false, s.classify(fmt.Errorf("store: add auth client: %w", res.Error))
	}
	return res.RowsAffected == 1, nil
}

// PutAuthClient stores the registration of a client, new or not; it
// reports whether the client is new.
func (s *Store) PutAuthClient(ctx context.Context, id string, doc []byte) (created bool, err error) {
	if created, err = s.AddAuthClient(ctx, id, doc); err != nil || created {
		return created, err
	}
	err = s.db.WithContext(ctx).Exec(`UPDATE auth_clients SET doc = ?, updated_us = ? WHERE id = ?`,
		string(doc), time.Now().UnixMicro(), id).Error
	if err != nil {
		return false, s.classify(fmt.Errorf("store: put auth client: %w", err))
	}
	return false, nil
}

// DeleteAuthClient removes the registration of a client; it returns false
// when there was none.
func (s *Store) DeleteAuthClient(ctx context.Context, id string) (bool, error) {
	res := s.db.WithContext(ctx).Exec(`DELETE FROM auth_clients WHERE id = ?`, id)
	if res.Error != nil {
		return false, s.classify(fmt.Errorf("store: delete auth client: %w", res.Error))
	}
	return res.RowsAffected == 1, nil
}

// UseAssertion records that client used the assertion jti, valid until
// until, and drops the records expired at now. It returns false when the
// pair is recorded already and has not expired. Of concurrent calls with
// one pair, exactly one returns true, on every replica sharing the
// database.
func (s *Store) UseAssertion(ctx context.Context, client, jti string, until, now time.Time) (bool, error) {
	db := s.db.WithContext(ctx)
	res := db.Exec(`INSERT INTO auth_assertions (client, jti, expires_us) VALUES (?, ?, ?)
ON CONFLICT (client, jti) DO UPDATE SET expires_us = excluded.expires_us
WHERE auth_assertions.expires_us <= ?`, client, jti, until.UnixMicro(), now.UnixMicro())
	if res.Error != nil {
		return false, s.classify(fmt.Errorf("store: use assertion: %w", res.Error))
	}
	if err := db.Exec(`DELETE FROM auth_assertions WHERE expires_us <= ?`, now.UnixMicro()).Error; err != nil {
		return false, s.classify(fmt.Errorf("store: drop expired assertions: %w", err))
	}
	return res.RowsAffected == 1, nil
}
