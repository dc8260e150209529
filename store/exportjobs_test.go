package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/internal/testkeys"
	"github.com/ehrledger/ehrledger/store"
)

// TestExportTakeover follows one job through two workers: the first
// stops mid-batch, the second takes the job over once the lease has run
// out, redoes that batch from scratch and ends it, and the first can
// change nothing any more.
func TestExportTakeover(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		s, _ := testkeys.Open(t, store.Config{DSN: dsn})
		ctx := context.Background()
		if err := s.CreateExport(ctx, &store.ExportJob{ID: "job1", Client: "bulk", Spec: []byte("sealed")}); err != nil {
			t.Fatal(err)
		}
		const lease = time.Second
		j, err := s.ClaimExport(ctx, "w1", lease)
		if err != nil || j == nil || j.Status != store.ExportRunning {
			t.Fatalf("claim: %+v, %v", j, err)
		}
		if again, err := s.ClaimExport(ctx, "w2", time.Minute); err != nil || again != nil {
			t.Fatalf("a held job was claimed again: %+v, %v", again, err)
		}
		part := func(typ string, seq int64) store.ExportPart {
			return store.ExportPart{Type: typ, Seq: seq, N: 1, Data: []byte(typ)}
		}
		// Batch 0 is done; batch 1 is half written when w1 stops.
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(s.AddExportParts(ctx, "job1", "w1", lease, []store.ExportPart{part("Patient", 0), part("Observation", 1)}))
		must(s.AdvanceExport(ctx, "job1", "w1", lease, store.ExportProgress{ResumeAt: "p:1", Batch: 1, PatientsDone: 1, Resources: 2}))
		must(s.AddExportParts(ctx, "job1", "w1", lease, []store.ExportPart{part("Patient", store.ExportPartsPerBatch)}))
		time.Sleep(lease + 200*time.Millisecond)

		j, err = s.ClaimExport(ctx, "w2", time.Minute)
		if err != nil || j == nil || j.ResumeAt != "p:1" || j.Batch != 1 || j.Resources != 2 {
			t.Fatalf("takeover: %+v, %v", j, err)
		}
		index, err := s.ExportIndex(ctx, "job1")
		must(err)
		if !slices.EqualFunc(index, []store.ExportPart{{Type: "Observation", Seq: 1, N: 1}, {Type: "Patient", Seq: 0, N: 1}}, func(x, y store.ExportPart) bool {
			return x.Type == y.Type && x.Seq == y.Seq && x.N == y.N && x.Data == nil
		}) {
			t.Fatalf("after takeover the parts are %+v, want batch 0's only", index)
		}
		if err := s.AddExportParts(ctx, "job1", "w1", time.Minute, []store.ExportPart{part("Patient", store.ExportPartsPerBatch+1)}); !errors.Is(err, store.ErrExportLost) {
			t.Fatalf("the first worker added parts after the takeover: %v", err)
		}
		// w2's first attempt at batch 1 stores a part and fails; the
		// attempt again starts from batch 0's parts alone.
		must(s.AddExportParts(ctx, "job1", "w2", time.Minute, []store.ExportPart{part("Condition", store.ExportPartsPerBatch)}))
		if err := s.RedoExportBatch(ctx, "job1", "w1", time.Minute, 1); !errors.Is(err, store.ErrExportLost) {
			t.Fatalf("the first worker redid a batch after the takeover: %v", err)
		}
		must(s.RedoExportBatch(ctx, "job1", "w2", time.Minute, 1))
		if index, _ := s.ExportIndex(ctx, "job1"); len(index) != 2 {
			t.Fatalf("after a redo the parts are %+v, want batch 0's two", index)
		}
		must(s.AddExportParts(ctx, "job1", "w2", time.Minute, []store.ExportPart{part("Patient", store.ExportPartsPerBatch)}))
		must(s.AdvanceExport(ctx, "job1", "w2", time.Minute, store.ExportProgress{ResumeAt: "p:2", Batch: 2, PatientsDone: 2, Resources: 3}))
		if err := s.FinishExport(ctx, "job1", "w1", store.ExportCompleted, "", time.Now()); !errors.Is(err, store.ErrExportLost) {
			t.Fatalf("the first worker ended the job: %v", err)
		}
		expires := time.Now().Add(time.Hour)
		must(s.FinishExport(ctx, "job1", "w2", store.ExportCompleted, "", expires))
		j, err = s.Export(ctx, "job1")
		if err != nil || j.Status != store.ExportCompleted || j.Resources != 3 || j.Expires.Unix() != expires.Unix() {
			t.Fatalf("ended: %+v, %v", j, err)
		}
		if again, err := s.ClaimExport(ctx, "w3", time.Minute); err != nil || again != nil {
			t.Fatalf("an ended job was claimed: %+v, %v", again, err)
		}
		if ids, err := s.ExpiredExports(ctx, time.Now()); err != nil || len(ids) != 0 {
			t.Fatalf("expired before its time: %v, %v", ids, err)
		}
		if ids, err := s.ExpiredExports(ctx, expires.Add(time.Second)); err != nil || !slices.Equal(ids, []string{"job1"}) {
			t.Fatalf("expired: %v, %v", ids, err)
		}
		must(s.DeleteExport(ctx, "job1"))
		if _, err := s.Export(ctx, "job1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted job: %v", err)
		}
		if index, _ := s.ExportIndex(ctx, "job1"); len(index) != 0 {
			t.Fatalf("deleted job's parts: %+v", index)
		}
		if err := s.DeleteExport(ctx, "job1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleting twice: %v", err)
		}
	})
}
