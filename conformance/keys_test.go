package conformance

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/internal/testvault"
)

// runCmd runs an ehrledger subcommand to completion and returns stdout.
func runCmd(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "EHR_LOG_LEVEL=warn")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ehrledger %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// TestKeysCommands drives "ehrledger keys rotate" and "keys erase" as an
// operator would, between runs of the server, on the local KMS and on
// Vault.
func TestKeysCommands(t *testing.T) {
	bin := binary(t)
	for _, kms := range []string{"local", "vault"} {
		t.Run(kms, func(t *testing.T) {
			flags := []string{"--data", t.TempDir()}
			if kms == "vault" {
				env := testvault.Get(t)
				flags = append(flags, "--kms", "vault", "--vault-addr", env.TLSAddr, "--vault-ca-cert", env.CACert,
					"--vault-role-id", env.RoleID, "--vault-secret-id", env.SecretID,
					"--vault-transit-key", fmt.Sprintf("cli-test-%d", time.Now().UnixNano()))
			}
			p := serve(t, bin, flags...)
			c := p.client(t)
			for i := range 5 {
				c.do(http.MethodPut, fmt.Sprintf("/Patient/k%d", i), fmt.Sprintf(`{"resourceType":"Patient","id":"k%d","name":[{"family":"Keyed"}]}`, i)).want(t, http.StatusCreated)
			}
			c.do(http.MethodPut, "/Organization/org", `{"resourceType":"Organization","id":"org","name":"Clinic"}`).want(t, http.StatusCreated)
			export := c.kickOff(t, "/Patient/$export")
			c.awaitExport(t, export)
			if err := p.stop(t); err != nil {
				t.Fatal(err)
			}

			// 5 patients, the provider's key, the blind index key, the
			// ledger's pseudonym key and the export's key.
			out := runCmd(t, bin, append([]string{"keys", "rotate", "--new-kek", "--batch", "3"}, flags...)...)
			if !strings.Contains(out, "now wraps with key version 2") || !strings.Contains(out, "rewrapped 9 data keys") {
				t.Fatalf("keys rotate --new-kek: %q", out)
			}
			if out := runCmd(t, bin, append([]string{"keys", "rotate"}, flags...)...); !strings.Contains(out, "rewrapped 0 data keys") {
				t.Fatalf("keys rotate run again: %q", out)
			}
			out = runCmd(t, bin, append([]string{"keys", "erase", "--patient", "k2"}, flags...)...)
			// The Patient, and its write AuditEvent if the server stored it
			// before it stopped.
			if !regexp.MustCompile(`Patient/k2: [12] resources withdrawn`).MatchString(out) || !strings.Contains(out, "deleted 1 Bulk Data exports") {
				t.Fatalf("keys erase: %q", out)
			}
			cmd := exec.Command(bin, append([]string{"keys", "erase", "--patient", "nobody"}, flags...)...)
			if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "no data key") {
				t.Fatalf("erasing an unknown patient: %v %s", err, out)
			}

			p = serve(t, bin, flags...)
			c = p.client(t)
			c.do(http.MethodGet, "/Patient/k2", nil).want(t, http.StatusGone)
			c.do(http.MethodGet, export, nil).want(t, http.StatusNotFound) // it held k2's data
			for _, path := range []string{"/Patient/k0", "/Patient/k4", "/Organization/org", "/Patient?family=keyed&_count=1"} {
				c.do(http.MethodGet, path, nil).want(t, http.StatusOK)
			}
			b := c.do(http.MethodGet, "/Patient?family=keyed", nil).want(t, http.StatusOK)
			if n := strings.Count(string(b.body), `"resourceType":"Patient"`); n != 4 {
				t.Fatalf("search after erasure finds %d patients, want 4", n)
			}
			c.do(http.MethodPut, "/Patient/k5", `{"resourceType":"Patient","id":"k5"}`).want(t, http.StatusCreated)
			if err := p.stop(t); err != nil {
				t.Fatal(err)
			}
		})
	}
}
