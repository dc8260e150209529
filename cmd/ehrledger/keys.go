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
	"github.com/ehrledger/ehrledger/erasure"
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
	st, kr, err := openBackend(ctx, cfg, log)
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
		res, err := erasure.Patient(ctx, st, kr, nil, *patient, time.Now())
		if errors.Is(err, erasure.ErrNoKey) {
			return fmt.Errorf("Patient/%s has no data key (no data was ever stored for it)", *patient)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "erased the data key of Patient/%s: %d resources withdrawn\n", *patient, res.Withdrawn)
		fmt.Fprintf(stdout, "erasure record %s\nits opening (kept nowhere else) %s\n",
			base64.StdEncoding.EncodeToString(res.Record), base64.StdEncoding.EncodeToString(res.Opening))
		if res.Exports > 0 {
			fmt.Fprintf(stdout, "deleted %d Bulk Data exports that could hold the patient's data\n", res.Exports)
		}
		if res.Incomplete != nil {
			return fmt.Errorf("the key is erased, but: %w", res.Incomplete)
		}
	}
	return nil
}
