package conformance

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/internal/testdb"
)

// binary builds ehrledger once per test run.
func binary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ehrledger")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/ehrledger/ehrledger/cmd/ehrledger").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is a running "ehrledger serve".
type process struct {
	cmd    *exec.Cmd
	url    string
	logs   *syncBuffer
	done   chan error
	bin    string
	args   []string // the serve flags after --addr, which "ehrledger token" takes too
	issuer *Issuer
}

// server is the process as the suite's Server: tokens come from
// "ehrledger token" run with the process's flags.
func (p *process) server() Server {
	return Server{URL: p.url, Issuer: p.issuer, Mint: func(t testing.TB, req TokenRequest) string {
		t.Helper()
		args := append([]string{"token"}, p.args...)
		args = append(args, "--base-url", p.url, "--client", req.Client, "--scope", req.Scope)
		if req.Patient != "" {
			args = append(args, "--patient", req.Patient)
		}
		for _, pu := range req.Purposes {
			args = append(args, "--purpose", pu)
		}
		cmd := exec.Command(p.bin, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("ehrledger token: %v\n%s", err, stderr.String())
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return lines[len(lines)-1]
	}}
}

// client is a client of the process holding an admin token.
func (p *process) client(t testing.TB) *client { return p.server().admin(t) }

var urlLine = regexp.MustCompile(`serving FHIR R4 at (http://\S+)`)

// serve starts the binary and waits until /healthz answers. The server
// trusts an issuer of the suite's besides its embedded authorization
// server.
func serve(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	issuer := NewIssuer(t)
	// With an external issuer the server needs its base URL: the address
	// it will listen on.
	full := []string{"serve", "--auth-issuer", issuer.URL, "--auth-jwks-url", issuer.JWKSURL}
	addr := flagValue(args, "--addr")
	if addr == "" {
		addr = freeAddr(t)
		full = append(full, "--addr", addr)
	}
	if flagValue(args, "--base-url") == "" {
		full = append(full, "--base-url", "http://"+addr)
	}
	return start(t, bin, append(full, args...), args, issuer)
}

// start runs "ehrledger" with full and waits until it serves; args are
// the flags "ehrledger token" takes too.
func start(t *testing.T, bin string, full, args []string, issuer *Issuer) *process {
	t.Helper()
	cmd := exec.Command(bin, full...)
	cmd.Env = append(os.Environ(), "EHR_LOG_LEVEL=warn")
	stdout, _ := cmd.StdoutPipe()
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, logs: logs, done: make(chan error, 1), bin: bin, args: args, issuer: issuer}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := urlLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	select {
	case p.url = <-found:
	case err := <-p.done:
		t.Fatalf("ehrledger serve exited: %v\n%s", err, logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("ehrledger serve printed no URL\n%s", logs)
	}
	for range 100 {
		if res, err := http.Get(p.url + "/healthz"); err == nil && res.StatusCode == 200 {
			res.Body.Close()
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("/healthz never answered 200\n%s", logs)
	return nil
}

// syncBuffer is the log of a process, written as it runs and read by the
// test at any time.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// flagValue is the value of flag in args, "" when it is not there.
func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// stop sends SIGTERM and returns the exit error.
func (p *process) stop(t *testing.T) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("no exit 60s after SIGTERM\n%s", p.logs)
		return nil
	}
}

// TestBinary runs the suite against "ehrledger serve" as an operator starts
// it: embedded SQLite under --data, then PostgreSQL through --db.
func TestBinary(t *testing.T) {
	bin := binary(t)
	t.Run("embedded default", func(t *testing.T) {
		p := serve(t, bin, "--data", t.TempDir())
		Run(t, p.server())
		if err := p.stop(t); err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs)
		}
		if strings.Contains(p.logs.String(), "msg=panic") {
			t.Errorf("the server logged a panic:\n%s", p.logs)
		}
	})
	t.Run("search on the embedded default", func(t *testing.T) {
		p := serve(t, bin, "--data", t.TempDir())
		RunSearch(t, p.server())
		if err := p.stop(t); err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		p := serve(t, bin, "--data", t.TempDir(), "--db", testdb.Postgres(t))
		Run(t, p.server())
		if err := p.stop(t); err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs)
		}
		if strings.Contains(p.logs.String(), "msg=panic") {
			t.Errorf("the server logged a panic:\n%s", p.logs)
		}
	})
}

// slowBody trickles a resource over a while, so the request is in flight
// when the server is told to stop.
type slowBody struct {
	data    []byte
	started chan struct{}
	off     int
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.off == 0 {
		close(b.started)
	}
	if b.off >= len(b.data) {
		return 0, io.EOF
	}
	time.Sleep(100 * time.Millisecond)
	n := copy(p[:1], b.data[b.off:])
	b.off += n
	return n, nil
}

func TestGracefulShutdownAndRestart(t *testing.T) {
	bin := binary(t)
	data := t.TempDir()
	p := serve(t, bin, "--data", data)
	c := p.client(t)
	id, _ := created(t, c, "Patient", `{"resourceType":"Patient","gender":"female"}`)

	// A PUT whose body arrives over ~1.5 s is in flight when SIGTERM comes:
	// it must complete, and the process must then exit cleanly.
	body := &slowBody{data: []byte(fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, id)), started: make(chan struct{})}
	result := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), "PUT", p.url+"/Patient/"+id, body)
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("Authorization", "Bearer "+c.token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			result <- 0
			return
		}
		res.Body.Close()
		result <- res.StatusCode
	}()
	<-body.started
	time.Sleep(200 * time.Millisecond)
	if err := p.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs)
	}
	if got := <-result; got != http.StatusOK {
		t.Fatalf("in-flight PUT during shutdown answered %d, want 200", got)
	}

	// Everything answered 2xx survives a restart on the same data.
	p = serve(t, bin, "--data", data)
	c = p.client(t)
	res := c.do("GET", "/Patient/"+id, nil).want(t, http.StatusOK)
	if res.Header.Get("ETag") != `W/"2"` {
		t.Fatalf("after restart: ETag %s, want W/\"2\"", res.Header.Get("ETag"))
	}
	// A hard kill right after a 2xx loses nothing either.
	id2, _ := created(t, c, "Patient", `{"resourceType":"Patient"}`)
	p.cmd.Process.Kill()
	<-p.done
	p = serve(t, bin, "--data", data)
	p.client(t).do("GET", "/Patient/"+id2, nil).want(t, http.StatusOK)
}

func TestServeRejectsBadConfiguration(t *testing.T) {
	bin := binary(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"serve", "--nope"}, "flag provided but not defined"},
		{"bad log format", []string{"serve", "--log-format", "xml"}, "log_format"},
		{"unsupported database", []string{"serve", "--db", "mysql://x@y/z", "--data", t.TempDir()}, "unsupported database"},
		{"unreachable postgres", []string{"serve", "--db", "postgres://nobody@127.0.0.1:1/x?connect_timeout=2", "--data", t.TempDir()}, "database unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(bin, tc.args...).CombinedOutput()
			if err == nil {
				t.Fatalf("exit 0; output:\n%s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}

// TestTokenCommand mints tokens the way an operator does: the admin
// client exists from the first start; in embedded mode a new name
// registers a development client on the fly (a patient's own with
// --patient), whose token the server accepts and confines; with
// PostgreSQL an unknown name is refused.
func TestTokenCommand(t *testing.T) {
	bin := binary(t)
	data := t.TempDir()
	p := serve(t, bin, "--data", data)
	srv := p.server()
	admin := p.client(t)
	admin.do(http.MethodPut, "/Patient/cli-a", `{"resourceType":"Patient","id":"cli-a"}`).want(t, http.StatusCreated)
	admin.do(http.MethodPut, "/Patient/cli-b", `{"resourceType":"Patient","id":"cli-b"}`).want(t, http.StatusCreated)

	mine := srv.as(t, TokenRequest{Client: "cli-app", Scope: "patient/*.rs", Patient: "cli-a", Purposes: []string{"PATRQT"}})
	mine.do(http.MethodGet, "/Patient/cli-a", nil).want(t, http.StatusOK)
	mine.do(http.MethodGet, "/Patient/cli-b", nil).want(t, http.StatusForbidden)
	reg := admin.do(http.MethodGet, "/auth/clients/cli-app", nil).want(t, http.StatusOK).json()
	if reg["patient"] != "cli-a" || reg["actor"] != "Organization/cli-app" || reg["scope"] != "patient/*.rs" {
		t.Fatalf("the development client was registered as %v", reg)
	}
	// Registered once, the client keeps its registration: it cannot be
	// stretched to another patient or to more scopes.
	for _, args := range [][]string{
		{"--client", "cli-app", "--scope", "patient/*.rs", "--patient", "cli-b"},
		{"--client", "cli-app", "--scope", "system/*.rs"},
		{"--client", "admin", "--scope", "system/*.rs", "--purpose", "NOTAPURPOSE"},
		{"--client", "admin", "--scope", "system/*.rs", "--lifetime", "2h"},
		{"--client", "admin"},
	} {
		out, err := exec.Command(bin, append([]string{"token", "--data", data, "--base-url", p.url}, args...)...).CombinedOutput()
		if err == nil {
			t.Errorf("ehrledger token %q: exit 0:\n%s", args, out)
		}
	}
	if fi, err := os.Stat(filepath.Join(data, "auth-key.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("auth-key.json: %v %v, want mode 0600", fi, err)
	}

	t.Run("postgres refuses unknown clients", func(t *testing.T) {
		dsn := testdb.Postgres(t)
		pd := t.TempDir()
		p := serve(t, bin, "--data", pd, "--db", dsn)
		out, err := exec.Command(bin, "token", "--data", pd, "--db", dsn, "--base-url", p.url, "--client", "stranger", "--scope", "system/*.rs").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "not registered") {
			t.Fatalf("token for an unknown client: %v\n%s", err, out)
		}
		p.client(t).do(http.MethodGet, "/Patient", nil).want(t, http.StatusOK)
	})
}

// TestTokenFollowsTheServer starts a server without --base-url on a
// port it picks: "ehrledger token" with the same --data alone mints a
// token it accepts, at each of its loopback names, and the log's hint is
// that very command. A token for another address is refused whatever Host
// the request names.
func TestTokenFollowsTheServer(t *testing.T) {
	bin := binary(t)
	data := t.TempDir()
	p := start(t, bin, []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--log-level", "info"}, []string{"--data", data}, nil)
	out, err := exec.Command(bin, "token", "--data", data, "--client", "admin", "--scope", "system/*.rs").Output()
	if err != nil {
		t.Fatalf("ehrledger token: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	token := lines[len(lines)-1]
	port := p.url[strings.LastIndex(p.url, ":")+1:]
	for _, base := range []string{p.url, "http://localhost:" + port} {
		newClient(t, base, token).do(http.MethodGet, "/Organization", nil).want(t, http.StatusOK)
	}
	hint := regexp.MustCompile(`ehrledger token --data \S+ --client admin --scope 'system/\*\.cruds'`).FindString(p.logs.String())
	if hint == "" || !strings.Contains(hint, data) {
		t.Fatalf("the start-up hint is not the command: %q", hint)
	}
	// A token minted for another address is no good here.
	other, err := exec.Command(bin, "token", "--data", data, "--base-url", "http://other.example:8080", "--client", "admin", "--scope", "system/*.rs").Output()
	if err != nil {
		t.Fatalf("ehrledger token: %v", err)
	}
	lines = strings.Split(strings.TrimSpace(string(other)), "\n")
	wantRefused(t, newClient(t, p.url, lines[len(lines)-1]).do(http.MethodGet, "/Organization", nil, "Host", "other.example:8080"), "issuer")
	// The database files are the owner's alone, like the key files.
	files, _ := filepath.Glob(filepath.Join(data, "ehrledger.db*"))
	files = append(files, filepath.Join(data, "server.json"))
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", filepath.Base(f), fi, err)
		}
	}
	if len(files) < 3 {
		t.Fatalf("found %q: where is the database?", files)
	}
}

// TestInsecureNoAuth turns authentication off, as a developer may: every
// request is served without a token, and the log says so loudly.
func TestInsecureNoAuth(t *testing.T) {
	p := serve(t, binary(t), "--data", t.TempDir(), "--insecure-no-auth")
	anon := newClient(t, p.url, "")
	anon.do(http.MethodPost, "/Patient", `{"resourceType":"Patient"}`).want(t, http.StatusCreated)
	anon.do(http.MethodGet, "/Patient", nil).want(t, http.StatusOK)
	if err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.logs.String(), "AUTHENTICATION IS OFF") {
		t.Fatalf("no warning in the log:\n%s", p.logs)
	}
}

// TestReplicasDecideWithTheNewestConsent runs two replicas on one
// PostgreSQL database, as a provider deploys them (one key file each for
// data keys, ledger and tokens, shared): a Consent written through one
// replica decides at once at the other, which had a policy of the
// patient in memory.
func TestReplicasDecideWithTheNewestConsent(t *testing.T) {
	bin := binary(t)
	dsn := testdb.Postgres(t)
	d1 := t.TempDir()
	a := serve(t, bin, "--data", d1, "--db", dsn)
	b := serve(t, bin, "--data", t.TempDir(), "--db", dsn, "--key-file", filepath.Join(d1, "keys.json"),
		"--ledger-key-file", filepath.Join(d1, "ledger-key.json"), "--auth-key-file", filepath.Join(d1, "auth-key.json"))
	admin := a.client(t)
	admin.do(http.MethodPut, "/Patient/rep", `{"resourceType":"Patient","id":"rep"}`).want(t, http.StatusCreated)
	admin.register(t, "rep-reader", map[string]any{"actor": "Organization/rep-reader", "scope": "system/*.rs", "purposes": []string{"TREAT"}})
	reader := b.server().as(t, TokenRequest{Client: "rep-reader", Scope: "system/*.rs"})
	reader.do(http.MethodGet, "/Patient/rep", nil).want(t, http.StatusOK) // B now holds rep's policy: no consent

	id, _ := created(t, admin, "Consent", consentOf("rep", map[string]any{"type": "deny"}))
	reader.do(http.MethodGet, "/Patient/rep", nil).want(t, http.StatusForbidden)
	permit := consentOf("rep", map[string]any{"type": "permit"})
	permit["id"] = id
	admin.do(http.MethodPut, "/Consent/"+id, permit).want(t, http.StatusOK)
	reader.do(http.MethodGet, "/Patient/rep", nil).want(t, http.StatusOK)
}
