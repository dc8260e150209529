package server_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/internal/testkeys"
	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
)

// TestSlowBodyAnswers408 sends a body that trickles one byte at a time:
// past the body deadline the server answers 408 with an OperationOutcome
// rather than holding the connection for the whole request timeout.
func TestSlowBodyAnswers408(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, kr := testkeys.Open(t, store.Config{DSN: testdb.SQLite(t), Logger: log})
	ledger, vkey := testkeys.Ledger(t, st, kr)
	cfg := server.Config{Store: st, Keys: kr, Ledger: ledger, LedgerKey: vkey, Logger: log,
		Authority: testkeys.Authority(t), Limits: server.Limits{BodyTimeout: time.Second}}
	hs, _ := serveAuthed(t, cfg)
	token := testkeys.Token(t, st, cfg.Authority, hs.URL, auth.TokenRequest{Client: "admin", Scope: testkeys.AdminScope})
	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /Patient HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/fhir+json\r\nContent-Length: 100\r\n\r\n{", hs.Listener.Addr(), token)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusRequestTimeout || time.Since(start) > 5*time.Second {
		t.Fatalf("%s after %v: %s", res.Status, time.Since(start), body)
	}
}
