package export

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
)

// Run runs the export jobs of this and every other replica as they
// come (one at a time), taking over those whose worker stopped, and
// deletes ended jobs once they expire, until ctx ends.
func (j *Jobs) Run(ctx context.Context) {
	worker := newID()
	sweep := time.NewTicker(min(time.Minute, j.retention))
	defer sweep.Stop()
	j.sweep(ctx)
	for {
		sj, err := j.store.ClaimExport(ctx, worker, lease)
		if err != nil && ctx.Err() == nil {
			j.log.Error("export: claiming a job failed", "err", err)
		}
		if sj != nil {
			j.run(ctx, worker, sj)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-j.wake:
		case <-sweep.C:
			j.sweep(ctx)
		case <-time.After(2 * time.Second):
		}
	}
}

// sweep deletes the ended jobs that have expired.
func (j *Jobs) sweep(ctx context.Context) {
	ids, err := j.store.ExpiredExports(ctx, j.now())
	if err != nil {
		if ctx.Err() == nil {
			j.log.Error("export: listing expired jobs failed", "err", err)
		}
		return
	}
	for _, id := range ids {
		if err := drop(ctx, j.store, j.keys, id); err != nil {
			j.log.Error("export: deleting an expired job failed", "job", id, "err", err)
			continue
		}
		j.log.Info("export: expired and deleted", "job", id)
	}
}

// run runs job sj, claimed by worker, batch by batch to its end, or
// until the worker loses it or ctx ends (another worker then resumes it
// from its last batch).
func (j *Jobs) run(ctx context.Context, worker string, sj *store.ExportJob) {
	key, err := jobKey(ctx, j.keys, sj.ID)
	if errors.Is(err, ErrNotFound) {
		// Its key is erased: the job was being deleted; finish that.
		if err := drop(ctx, j.store, j.keys, sj.ID); err != nil && ctx.Err() == nil {
			j.log.Error("export: deleting a job whose key is erased failed", "job", sj.ID, "err", err)
		}
		return
	}
	var spec *Spec
	if err == nil {
		if spec, err = openSpec(key, sj); errors.Is(err, keys.ErrTampered) {
			j.log.Error("export: the stored request failed its integrity check", "job", sj.ID)
			j.finish(ctx, worker, sj, store.ExportFailed, "the stored request failed its integrity check")
			return
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			j.log.Error("export: the job cannot start; it is retried once its lease runs out", "job", sj.ID, "err", err)
		}
		return
	}
	jctx := disclosure.WithCaller(ctx, spec.Caller.caller())
	x := &running{j: j, worker: worker, job: sj, spec: spec, key: key, p: store.ExportProgress{ResumeAt: sj.ResumeAt, Batch: sj.Batch,
		PatientsDone: sj.PatientsDone, PatientsTotal: sj.PatientsTotal, Resources: sj.Resources}}
	if x.p.Batch == 0 {
		if x.p.PatientsTotal, err = x.patientsTotal(jctx); err != nil {
			if ctx.Err() == nil {
				j.log.Error("export: the job cannot start; it is retried once its lease runs out", "job", sj.ID, "err", err)
			}
			return
		}
	}
	j.log.Info("export: running", "job", sj.ID, "level", spec.Level, "from_batch", x.p.Batch)
	failures := 0
	logged := time.Now()
	for {
		done, err := x.batch(jctx)
		switch {
		case err == nil:
		case errors.Is(err, store.ErrExportLost):
			j.log.Info("export: stopped: the job was deleted or taken over", "job", sj.ID)
			return
		case ctx.Err() != nil:
			j.log.Info("export: interrupted; another worker or the next start resumes it", "job", sj.ID, "batch", x.p.Batch)
			return
		default:
			if failures++; failures == attempts {
				j.log.Error("export: failed", "job", sj.ID, "batch", x.p.Batch, "err", err)
				j.finish(ctx, worker, sj, store.ExportFailed, "an internal error stopped it; see the server log")
				return
			}
			j.log.Error("export: a batch failed; retrying", "job", sj.ID, "batch", x.p.Batch, "attempt", failures, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(failures) * time.Second):
			}
			continue
		}
		failures = 0
		if done || time.Since(logged) > 5*time.Second {
			logged = time.Now()
			j.log.Info("export: progress", "job", sj.ID, "patients_done", x.p.PatientsDone, "patients_total", x.p.PatientsTotal, "resources", x.p.Resources)
		}
		if done {
			j.finish(ctx, worker, sj, store.ExportCompleted, "")
			return
		}
	}
}

func (j *Jobs) finish(ctx context.Context, worker string, sj *store.ExportJob, status, msg string) {
	err := j.store.FinishExport(ctx, sj.ID, worker, status, msg, j.now().Add(j.retention))
	if err != nil && !errors.Is(err, store.ErrExportLost) {
		j.log.Error("export: the job's end could not be stored", "job", sj.ID, "err", err)
		return
	}
	if status == store.ExportCompleted {
		j.log.Info("export: completed", "job", sj.ID)
	}
}

// running is a job as a worker runs it.
type running struct {
	j      *Jobs
	worker string
	job    *store.ExportJob
	spec   *Spec
	key    *keys.DataKey
	p      store.ExportProgress
	out    *output
	// redo says the last batch failed and must first drop what it stored.
	redo bool
}

// The phases of a job, the prefix of its cursor: the patients' data,
// then (for a system export) the provider's own.
const (
	phasePatients = "patients:"
	phaseProvider = "provider:"
)

// listed are the patients (key owners, sorted) the job goes through,
// nil for every patient with data: a Group's members, those the patient
// parameter names, and, for a token with a patient in context, that
// patient alone.
func (x *running) listed() []string {
	var from []string
	if x.spec.Level == Group {
		from = x.spec.Members
	}
	if x.spec.Patients != nil {
		if from == nil {
			from = x.spec.Patients
		} else {
			from = slices.DeleteFunc(slices.Clone(from), func(o string) bool { return !slices.Contains(x.spec.Patients, o) })
		}
	}
	if self := x.spec.Caller.Patient; self != "" {
		own := keys.PatientOwner(self)
		if from != nil && !slices.Contains(from, own) {
			return []string{}
		}
		from = []string{own}
	}
	return from
}

// patientsTotal is how many patients the job will go through.
func (x *running) patientsTotal(ctx context.Context) (int64, error) {
	if from := x.listed(); from != nil {
		return int64(len(from)), nil
	}
	return x.j.store.CountPatientOwners(ctx)
}

// owners are the next patients (key owners) after after.
func (x *running) owners(ctx context.Context, after string) ([]string, error) {
	from := x.listed()
	if from == nil {
		return x.j.store.PatientOwners(ctx, after, batchPatients)
	}
	i, _ := slices.BinarySearch(from, after)
	if i < len(from) && from[i] == after {
		i++
	}
	return from[i:min(i+batchPatients, len(from))], nil
}

func (x *running) since() time.Time {
	if x.spec.Since == 0 {
		return time.Time{}
	}
	return time.UnixMicro(x.spec.Since)
}

// batch exports the next batch and advances the job past it; done when
// nothing is left.
func (x *running) batch(ctx context.Context) (done bool, err error) {
	if x.redo {
		// The last attempt failed after storing some of its parts.
		if err := x.j.store.RedoExportBatch(ctx, x.job.ID, x.worker, lease, x.p.Batch); err != nil {
			return false, err
		}
		x.redo = false
	}
	defer func() { x.redo = err != nil }()
	if x.out == nil {
		x.out = &output{x: x, bufs: map[string]*buffer{}}
	}
	out := x.out // its buffers are reused from batch to batch
	out.reset(x.p.Batch * store.ExportPartsPerBatch)
	next := x.p
	next.Batch++
	cursor := x.p.ResumeAt
	switch {
	case cursor == "" || strings.HasPrefix(cursor, phasePatients):
		after := strings.TrimPrefix(cursor, phasePatients)
		owners, err := x.owners(ctx, after)
		if err != nil {
			return false, err
		}
		if len(owners) == 0 {
			if x.spec.Level != System {
				return true, nil
			}
			next.ResumeAt = phaseProvider
			break
		}
		if err := x.patients(ctx, owners, out); err != nil {
			return false, err
		}
		next.ResumeAt = phasePatients + owners[len(owners)-1]
		next.PatientsDone += int64(len(owners))
	case strings.HasPrefix(cursor, phaseProvider):
		var after store.Key
		after.Type, after.ID, _ = strings.Cut(strings.TrimPrefix(cursor, phaseProvider), "/")
		last, err := x.j.gate.ExportProvider(ctx, after, readChunk, x.gateSpec(), func(v *store.Version) error { return out.add(ctx, v) })
		if err != nil || last == (store.Key{}) {
			return err == nil, err
		}
		next.ResumeAt = phaseProvider + last.Type + "/" + last.ID
	default:
		return false, fmt.Errorf("export: job %s: unknown cursor %q", x.job.ID, cursor)
	}
	if err := out.flush(ctx); err != nil {
		return false, err
	}
	next.Resources += out.count
	if err := x.j.store.AdvanceExport(ctx, x.job.ID, x.worker, lease, next); err != nil {
		return false, err
	}
	x.p = next
	return false, nil
}

// patients exports the data of owners through the gate, which records
// one disclosure per patient (and one denial per patient with data
// withheld) before the batch is done.
func (x *running) patients(ctx context.Context, owners []string, out *output) error {
	return x.j.gate.ExportPatients(ctx, owners, x.gateSpec(), func(v *store.Version) error { return out.add(ctx, v) })
}

// gateSpec is what the job reads, as the gate takes it.
func (x *running) gateSpec() disclosure.ExportSpec {
	spec := disclosure.ExportSpec{Types: x.spec.Types, Since: x.since()}
	for typ, raws := range x.spec.TypeFilters {
		if spec.Filters == nil {
			spec.Filters = map[string][]url.Values{}
		}
		for _, raw := range raws {
			q, _ := url.ParseQuery(raw) // checked at kick-off
			spec.Filters[typ] = append(spec.Filters[typ], q)
		}
	}
	return spec
}
