package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/export"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
)

const keysUsage = `Usage:
  ehrledger keys rotate [--new-kek] [--batch N] [serve flags]
      Rewrap every data key to the KMS's newest key version (with --new-kek,
      first make the KMS start a new version). Plaintext keys never leave the
      KMS. An interrupted run is resumed by running it again.
  ehrledger keys erase --patient ID [serve flags]
      Destroy a patient's data key: every version of every resource sealed
      under it becomes unreadable for good and leaves search.
`

// runKeys is "ehrledger keys ...", run against the database and KMS the
// server uses (same flags, environment and config file).
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "rotate" && args[0] != "erase") {
		fmt.Fprint(stderr, keysUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("ehrledger keys "+args[0], flag.ContinueOnError)
	newKEK := fs.Bool("new-kek", false, "rotate the KMS key first")
	batch := fs.Int("batch", 250, "data keys rewrapped per KMS call")
	patient := fs.String("patient", "", "id of the patient whose key is erased")
	cfg, err := loadConfig(fs, args[1:], os.Getenv, stderr)
	if err != nil {
		return err
	}
	log := cfg.logger(stderr)
	st, kr, err := openBackend(ctx, cfg, log, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	switch args[0] {
	case "rotate":
		if *newKEK {
			v, err := kr.Rotate(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s now wraps with key version %d\n", kr.KMS().Name(), v)
		}
		n, err := kr.Rewrap(ctx, *batch, func(done int) { log.Info("rewrapping data keys", "done", done) })
		if err != nil {
			return fmt.Errorf("rewrapped %d data keys, then: %w (run again to resume)", n, err)
		}
		if *newKEK || n > 0 {
			rec := audit.Record{Type: audit.TypeKeyRotation, Time: audit.FormatTime(time.Now()), Interaction: "rotate"}
			leaf, _ := rec.Seal() // about no one: nothing to open
			if _, err := st.QueueLedger(ctx, []store.LedgerEntry{{Record: leaf}}); err != nil {
				return fmt.Errorf("rewrapped %d data keys but could not record it in the ledger: %w", n, err)
			}
		}
		fmt.Fprintf(stdout, "rewrapped %d data keys\n", n)
	case "erase":
		if *patient == "" {
			fmt.Fprintln(stderr, "ehrledger keys erase: --patient is required")
			return errUsage
		}
		// As $erase does: the exports that may hold the patient's data go
		// first, and again after the key for any started meanwhile.
		dropped, err := export.DropPatient(ctx, st, kr, *patient)
		if err != nil {
			return err
		}
		rec := audit.Record{Type: audit.TypeErasure, Time: audit.FormatTime(time.Now()), Patient: keys.PatientOwner(*patient), Interaction: "erase"}
		leaf, opening := rec.Seal()
		n, err := kr.Erase(ctx, keys.PatientOwner(*patient), leaf)
		if errors.Is(err, keys.ErrNoKey) {
			return fmt.Errorf("Patient/%s has no data key (no data was ever stored for it)", *patient)
		}
		if err != nil {
			return err
		}
		if err := audit.ForgetPatient(ctx, st, kr, *patient); err != nil {
			return fmt.Errorf("the key is erased, but the ledger's lookup rows of the patient could not be cleared: %w", err)
		}
		more, err := export.DropPatient(ctx, st, kr, *patient)
		if err != nil {
			return fmt.Errorf("the key is erased, but an export started meanwhile could not be deleted: %w", err)
		}
		dropped += more
		fmt.Fprintf(stdout, "erased the data key of Patient/%s: %d resources withdrawn\n", *patient, n)
		fmt.Fprintf(stdout, "erasure record %s\nits opening (kept nowhere else) %s\n",
			base64.StdEncoding.EncodeToString(leaf), base64.StdEncoding.EncodeToString(opening))
		if dropped > 0 {
			fmt.Fprintf(stdout, "deleted %d Bulk Data exports that could hold the patient's data\n", dropped)
		}
	}
	return nil
}
