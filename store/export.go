package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Bulk Data export jobs and their output. A job is claimed by one worker
// at a time under a lease; every change a worker makes checks that it
// still holds the job, so a worker that lost it (its lease ran out, or the
// client deleted the job) stops at its next step.

// Export job statuses.
const (
	ExportAccepted  = "accepted"
	ExportRunning   = "in-progress"
	ExportCompleted = "completed"
	ExportFailed    = "failed"
)

// ExportPartsPerBatch numbers a job's parts: those of batch b are
// b*ExportPartsPerBatch and up, so that a batch redone after a worker
// stopped replaces exactly what it had written.
const ExportPartsPerBatch = 1 << 20

// ErrExportLost says the worker no longer holds the job: it was deleted,
// or its lease ran out and another worker took it.
var ErrExportLost = errors.New("store: the export job was deleted or taken over")

// ExportJob is one Bulk Data export.
type ExportJob struct {
	ID     string
	Client string // the client that asked: the only one that may see it
	// Spec is what to export and for whom, sealed by the server.
	Spec   []byte
	Status string
	// ResumeAt is where the next batch starts (the server's cursor);
	// Batch its number.
	ResumeAt                    string
	Batch                       int64
	PatientsDone, PatientsTotal int64
	Resources                   int64
	Error                       string
	Created, Updated            time.Time
	Expires                     time.Time // zero until the job ends
}

// ExportProgress is where a job stands after a batch.
type ExportProgress struct {
	ResumeAt      string
	Batch         int64
	PatientsDone  int64
	PatientsTotal int64
	Resources     int64
}

// ExportPart is one sealed part of an output file.
type ExportPart struct {
	Type string
	Seq  int64
	N    int // resources in it
	Data []byte
}

type exportRow struct {
	ID, Client                         string
	Spec                               []byte
	Status, ResumeAt                   string
	Batch, PatientsDone, PatientsTotal int64
	Resources                          int64
	Error                              string
	CreatedUs, UpdatedUs, ExpiresUs    int64
}

const exportColumns = `id, client, spec, status, resume_at, batch, patients_done, patients_total, resources, error, created_us, updated_us, expires_us`

func (r exportRow) job() *ExportJob {
	j := &ExportJob{ID: r.ID, Client: r.Client, Spec: r.Spec, Status: r.Status,
		ResumeAt: r.ResumeAt, Batch: r.Batch, PatientsDone: r.PatientsDone, PatientsTotal: r.PatientsTotal,
		Resources: r.Resources, Error: r.Error, Created: time.UnixMicro(r.CreatedUs), Updated: time.UnixMicro(r.UpdatedUs)}
	if r.ExpiresUs > 0 {
		j.Expires = time.UnixMicro(r.ExpiresUs)
	}
	return j
}

// CreateExport stores a new job, accepted and due at once. It is durable
// when it returns.
func (s *Store) CreateExport(ctx context.Context, j *ExportJob) error {
	now := time.Now().UnixMicro()
	err := s.InTx(ctx, func(tx *Tx) error {
		return tx.db.WithContext(ctx).Exec(`INSERT INTO export_jobs (`+exportColumns+`, worker, lease_us)
			VALUES (?, ?, ?, ?, '', 0, 0, 0, 0, '', ?, ?, 0, '', 0)`,
			j.ID, j.Client, j.Spec, ExportAccepted, now, now).Error
	})
	if err != nil {
		return fmt.Errorf("store: create export: %w", err)
	}
	return nil
}

// Export returns job id, or ErrNotFound.
func (s *Store) Export(ctx context.Context, id string) (*ExportJob, error) {
	var rows []exportRow
	if err := s.db.WithContext(ctx).Raw(`SELECT `+exportColumns+` FROM export_jobs WHERE id = ?`, id).Scan(&rows).Error; err != nil {
		return nil, s.classify(fmt.Errorf("store: export job: %w", err))
	}
	if len(rows) == 0 {
		return nil, ErrNotFound
	}
	return rows[0].job(), nil
}

// Exports lists every job, oldest first.
func (s *Store) Exports(ctx context.Context) ([]*ExportJob, error) {
	var rows []exportRow
	if err := s.db.WithContext(ctx).Raw(`SELECT ` + exportColumns + ` FROM export_jobs ORDER BY created_us, id`).Scan(&rows).Error; err != nil {
		return nil, s.classify(fmt.Errorf("store: export jobs: %w", err))
	}
	out := make([]*ExportJob, len(rows))
	for i, r := range rows {
		out[i] = r.job()
	}
	return out, nil
}

// ClaimExport gives worker, for lease, the oldest unfinished job that no
// worker holds (never claimed, or its lease ran out), and drops the parts
// of the batch it will redo; nil when there is none.
func (s *Store) ClaimExport(ctx context.Context, worker string, lease time.Duration) (*ExportJob, error) {
	now := time.Now().UnixMicro()
	var claimed *ExportJob
	err := s.InTx(ctx, func(tx *Tx) error {
		claimed = nil
		db := tx.db.WithContext(ctx)
		var rows []exportRow
		err := db.Raw(`SELECT `+exportColumns+` FROM export_jobs WHERE status IN (?, ?) AND lease_us < ? ORDER BY created_us LIMIT 1`,
			ExportAccepted, ExportRunning, now).Scan(&rows).Error
		if err != nil || len(rows) == 0 {
			return err
		}
		j := rows[0].job()
		res := db.Exec(`UPDATE export_jobs SET status = ?, worker = ?, lease_us = ?, updated_us = ? WHERE id = ? AND status IN (?, ?) AND lease_us < ?`,
			ExportRunning, worker, now+lease.Microseconds(), now, j.ID, ExportAccepted, ExportRunning, now)
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error // another worker was quicker
		}
		if err := dropPartsFrom(ctx, tx, j.ID, j.Batch); err != nil {
			return err
		}
		j.Status = ExportRunning
		claimed = j
		return nil
	})
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: claim export: %w", err))
	}
	return claimed, nil
}

// dropPartsFrom deletes job's parts of batch and later ones: what a batch
// that did not finish stored.
func dropPartsFrom(ctx context.Context, tx *Tx, job string, batch int64) error {
	return tx.db.WithContext(ctx).Exec(`DELETE FROM export_parts WHERE job = ? AND seq >= ?`, job, batch*ExportPartsPerBatch).Error
}

// RedoExportBatch deletes the parts a failed attempt at batch stored, so
// that worker, which must still hold job, can run the batch again.
func (s *Store) RedoExportBatch(ctx context.Context, job, worker string, lease time.Duration, batch int64) error {
	err := s.InTx(ctx, func(tx *Tx) error {
		if err := hold(ctx, tx, job, worker, lease); err != nil {
			return err
		}
		return dropPartsFrom(ctx, tx, job, batch)
	})
	if err != nil && !errors.Is(err, ErrExportLost) {
		return s.classify(fmt.Errorf("store: redo export batch: %w", err))
	}
	return err
}

// hold renews worker's lease on job inside tx, or returns ErrExportLost.
func hold(ctx context.Context, tx *Tx, job, worker string, lease time.Duration) error {
	now := time.Now().UnixMicro()
	res := tx.db.WithContext(ctx).Exec(`UPDATE export_jobs SET lease_us = ?, updated_us = ? WHERE id = ? AND worker = ? AND status = ?`,
		now+lease.Microseconds(), now, job, worker, ExportRunning)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return ErrExportLost
	}
	return nil
}

// AddExportParts stores parts of job, which worker must still hold, and
// renews its lease.
func (s *Store) AddExportParts(ctx context.Context, job, worker string, lease time.Duration, parts []ExportPart) error {
	err := s.InTx(ctx, func(tx *Tx) error {
		if err := hold(ctx, tx, job, worker, lease); err != nil {
			return err
		}
		for _, p := range parts {
			if err := tx.db.WithContext(ctx).Exec(`INSERT INTO export_parts (job, res_type, seq, n, data) VALUES (?, ?, ?, ?, ?)`,
				job, p.Type, p.Seq, p.N, p.Data).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrExportLost) {
		return s.classify(fmt.Errorf("store: export parts: %w", err))
	}
	return err
}

// AdvanceExport records that job, which worker must still hold, has done
// a batch, and renews the lease.
func (s *Store) AdvanceExport(ctx context.Context, job, worker string, lease time.Duration, p ExportProgress) error {
	err := s.InTx(ctx, func(tx *Tx) error {
		if err := hold(ctx, tx, job, worker, lease); err != nil {
			return err
		}
		return tx.db.WithContext(ctx).Exec(`UPDATE export_jobs SET resume_at = ?, batch = ?, patients_done = ?, patients_total = ?, resources = ? WHERE id = ?`,
			p.ResumeAt, p.Batch, p.PatientsDone, p.PatientsTotal, p.Resources, job).Error
	})
	if err != nil && !errors.Is(err, ErrExportLost) {
		return s.classify(fmt.Errorf("store: advance export: %w", err))
	}
	return err
}

// FinishExport ends job, which worker must still hold, as completed or
// failed (with errText), to be deleted after expires.
func (s *Store) FinishExport(ctx context.Context, job, worker, status, errText string, expires time.Time) error {
	err := s.InTx(ctx, func(tx *Tx) error {
		if err := hold(ctx, tx, job, worker, 0); err != nil {
			return err
		}
		return tx.db.WithContext(ctx).Exec(`UPDATE export_jobs SET status = ?, error = ?, expires_us = ?, worker = '' WHERE id = ?`,
			status, errText, expires.UnixMicro(), job).Error
	})
	if err != nil && !errors.Is(err, ErrExportLost) {
		return s.classify(fmt.Errorf("store: finish export: %w", err))
	}
	return err
}

// DeleteExport deletes job and its output; ErrNotFound when there is no
// such job. A worker running it stops at its next step.
func (s *Store) DeleteExport(ctx context.Context, job string) error {
	var n int64
	err := s.InTx(ctx, func(tx *Tx) error {
		db := tx.db.WithContext(ctx)
		if err := db.Exec(`DELETE FROM export_parts WHERE job = ?`, job).Error; err != nil {
			return err
		}
		res := db.Exec(`DELETE FROM export_jobs WHERE id = ?`, job)
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return s.classify(fmt.Errorf("store: delete export: %w", err))
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// ExpiredExports lists the ended jobs whose expiry has passed by now.
func (s *Store) ExpiredExports(ctx context.Context, now time.Time) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Raw(`SELECT id FROM export_jobs WHERE status IN (?, ?) AND expires_us <= ? ORDER BY id`,
		ExportCompleted, ExportFailed, now.UnixMicro()).Scan(&ids).Error
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: expired exports: %w", err))
	}
	return ids, nil
}

// ExportIndex lists job's parts without their data, by type and
// sequence.
func (s *Store) ExportIndex(ctx context.Context, job string) ([]ExportPart, error) {
	var out []ExportPart
	err := s.db.WithContext(ctx).Raw(`SELECT res_type AS type, seq, n FROM export_parts WHERE job = ? ORDER BY res_type, seq`,
		job).Scan(&out).Error
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: export index: %w", err))
	}
	return out, nil
}

// ExportPartAfter returns the part of job's file of typ that follows seq
// (-1: the first), or ErrNotFound past the last.
func (s *Store) ExportPartAfter(ctx context.Context, job, typ string, seq int64) (*ExportPart, error) {
	var rows []struct {
		Seq  int64
		N    int
		Data []byte
	}
	err := s.db.WithContext(ctx).Raw(`SELECT seq, n, data FROM export_parts WHERE job = ? AND res_type = ? AND seq > ? ORDER BY seq LIMIT 1`,
		job, typ, seq).Scan(&rows).Error
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: export part: %w", err))
	}
	if len(rows) == 0 {
		return nil, ErrNotFound
	}
	return &ExportPart{Type: typ, Seq: rows[0].Seq, N: rows[0].N, Data: rows[0].Data}, nil
}

// patientOwners bounds the key owners of patients ("Patient/..."): '0'
// follows '/'.
const patientOwnersLow, patientOwnersHigh = "Patient/", "Patient0"

// PatientOwners returns up to limit key owners of patients after after
// ("" for the first), in order: the patients who have data.
func (s *Store) PatientOwners(ctx context.Context, after string, limit int) ([]string, error) {
	var out []string
	err := s.db.WithContext(ctx).Raw(`SELECT DISTINCT key_owner FROM resources WHERE key_owner > ? AND key_owner >= ? AND key_owner < ? ORDER BY key_owner LIMIT ?`,
		after, patientOwnersLow, patientOwnersHigh, limit).Scan(&out).Error
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: patient owners: %w", err))
	}
	return out, nil
}

// CountPatientOwners counts the patients who have data.
func (s *Store) CountPatientOwners(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Raw(`SELECT COUNT(DISTINCT key_owner) FROM resources WHERE key_owner >= ? AND key_owner < ?`,
		patientOwnersLow, patientOwnersHigh).Scan(&n).Error
	if err != nil {
		return 0, s.classify(fmt.Errorf("store: count patient owners: %w", err))
	}
	return n, nil
}

// OwnedKey is a live resource and the owner of its data key.
type OwnedKey struct {
	Owner string
	Key
}

// OwnedKeys lists the live resources of the given types whose key owners
// are among owners, last updated after since (zero: any time), by owner,
// type and id.
func (s *Store) OwnedKeys(ctx context.Context, owners, types []string, since time.Time) ([]OwnedKey, error) {
	var out []OwnedKey
	if len(owners) == 0 || len(types) == 0 {
		return nil, nil
	}
	var b builder
	b.w(`SELECT key_owner, res_type, res_id FROM resources WHERE deleted = `).arg(false)
	list(b.w(" AND key_owner IN "), owners)
	list(b.w(" AND res_type IN "), types)
	if !since.IsZero() {
		b.w(" AND updated_us > ").arg(since.UnixMicro())
	}
	b.w(" ORDER BY key_owner, res_type, res_id")
	rows, err := s.db.WithContext(ctx).Raw(b.sql(), b.args...).Rows()
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: owned resources: %w", err))
	}
	defer rows.Close()
	for rows.Next() {
		var k OwnedKey
		if err := rows.Scan(&k.Owner, &k.Type, &k.ID); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// OwnerKeys lists up to limit live resources of the given types whose key
// owner is owner (the provider's, say), last updated after since, after
// the resource after (zero: from the first), by type and id.
func (s *Store) OwnerKeys(ctx context.Context, owner string, types []string, since time.Time, after Key, limit int) ([]Key, error) {
	if len(types) == 0 {
		return nil, nil
	}
	var b builder
	b.w(`SELECT res_type, res_id FROM resources WHERE key_owner = `).arg(owner).w(" AND deleted = ").arg(false)
	list(b.w(" AND res_type IN "), types)
	if !since.IsZero() {
		b.w(" AND updated_us > ").arg(since.UnixMicro())
	}
	b.w(" AND (res_type > ").arg(after.Type).w(" OR (res_type = ").arg(after.Type).w(" AND res_id > ").arg(after.ID).w("))")
	b.w(" ORDER BY res_type, res_id LIMIT ").arg(limit)
	var out []Key
	rows, err := s.db.WithContext(ctx).Raw(b.sql(), b.args...).Rows()
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: %s resources: %w", owner, err))
	}
	defer rows.Close()
	for rows.Next() {
		var k Key
		if err := rows.Scan(&k.Type, &k.ID); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}
