// Command ehrledger is a FHIR R4 server that keeps every patient's trust:
// see the README for the subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `ehrledger: a FHIR R4 server with a verifiable disclosure ledger

Usage:
  ehrledger serve [--addr HOST:PORT] [--data DIR] [--db DSN] [--config FILE] [flags]
  ehrledger keys rotate|erase [flags]
  ehrledger token --client NAME --scope SCOPES [--purpose CODE] [--patient ID] [flags]
  ehrledger verify --log URL (--index N | --consistency FILE | --full) [--key VKEY | --key-file FILE]
  ehrledger verify --checkpoint FILE --record FILE --proof FILE --index N --key VKEY
  ehrledger fetch --server URL --client ID --key-file FILE [--scope S] [--purpose CODE] PATH
  ehrledger fetch --key-file FILE --public-key
  ehrledger export --server URL --patient ID [--format json|csv|html] [--start DATE] [--end DATE]
      (a patient's accounting of disclosures; Bulk Data is the server's $export)
  ehrledger verify --accounting FILE --key VKEY [--witness WKEY ...]
  ehrledger version

Run "ehrledger serve -h" for the server's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr)
	case "keys":
		err = runKeys(ctx, args[1:], stdout, stderr)
	case "token":
		err = runToken(ctx, args[1:], stdout, stderr)
	case "verify":
		err = runVerify(ctx, args[1:], stdout, stderr)
	case "export":
		err = runExport(ctx, args[1:], stdout, stderr)
	case "fetch":
		err = runFetch(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "ehrledger", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "ehrledger: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, errUsage) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "ehrledger:", err)
		return 1
	}
	return 0
}

// errUsage says the command line was wrong; the flag package has already
// said how.
var errUsage = errors.New("usage")
