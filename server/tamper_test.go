package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ehrledger/ehrledger/internal/testdb"
)

// TestTamperedBodiesFailClosed alters sealed rows in the database and
// checks that the server refuses to serve them (500 with a clear
// OperationOutcome) instead of serving wrong data, while untouched rows
// stay readable.
func TestTamperedBodiesFailClosed(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		hs := newServer(t, dsn)
		client := hs.admin(t)
		db := testdb.Raw(t, dsn)
		put := func(path, body string) {
			req, _ := http.NewRequest("PUT", hs.URL+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/fhir+json")
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode >= 300 {
				t.Fatalf("PUT %s: %d", path, res.StatusCode)
			}
		}
		get := func(path string) (int, string) {
			res, err := client.Get(hs.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return res.StatusCode, string(b)
		}
		put("/Patient/a", `{"resourceType":"Patient","id":"a","name":[{"family":"Alpha"}]}`)
		put("/Patient/b", `{"resourceType":"Patient","id":"b","name":[{"family":"Beta"}]}`)
		put("/Observation/o", `{"resourceType":"Observation","id":"o","status":"preliminary","code":{"text":"x"},"subject":{"reference":"Patient/a"}}`)
		put("/Observation/o", `{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}}`)

		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := db.Exec(testdb.Rebind(dsn, q), args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		body := func(typ, id string, v int) []byte {
			t.Helper()
			q := testdb.Rebind(dsn, "SELECT body FROM resource_versions WHERE res_type = ? AND res_id = ? AND version_id = ?")
			var b []byte
			if err := db.QueryRow(q, typ, id, v).Scan(&b); err != nil {
				t.Fatal(err)
			}
			return b
		}
		setBody := func(typ, id string, v int, b []byte) {
			exec("UPDATE resource_versions SET body = ? WHERE res_type = ? AND res_id = ? AND version_id = ?", b, typ, id, v)
		}
		refused := func(path string) {
			t.Helper()
			status, b := get(path)
			if status != 500 || !strings.Contains(b, "integrity") {
				t.Fatalf("GET %s: %d %s; want 500 saying the stored data failed its integrity check", path, status, b)
			}
			if strings.Contains(b, "Alpha") || strings.Contains(b, "Beta") || strings.Contains(b, "preliminary") {
				t.Fatalf("GET %s served data: %s", path, b)
			}
		}
		served := func(path, want string) {
			t.Helper()
			status, b := get(path)
			if status != 200 || !strings.Contains(b, want) {
				t.Fatalf("GET %s: %d %s; want 200 with %s", path, status, b, want)
			}
		}
		a1, b1, o1, o2 := body("Patient", "a", 1), body("Patient", "b", 1), body("Observation", "o", 1), body("Observation", "o", 2)
		if strings.Contains(string(a1), "Alpha") {
			t.Fatal("the body is stored in clear")
		}

		t.Run("a body copied to another resource's row", func(t *testing.T) {
			setBody("Patient", "a", 1, b1)
			refused("/Patient/a")
			refused("/Patient?_id=a,b")
			served("/Patient/b", "Beta")
			setBody("Patient", "a", 1, a1)
			served("/Patient/a", "Alpha")
		})
		t.Run("a body copied to another version's row", func(t *testing.T) {
			setBody("Observation", "o", 2, o1)
			refused("/Observation/o")
			refused("/Observation/o/_history")
			served("/Observation/o/_history/1", "preliminary")
			setBody("Observation", "o", 2, o2)
		})
		t.Run("a flipped byte", func(t *testing.T) {
			flipped := append([]byte(nil), o2...)
			flipped[len(flipped)-3] ^= 0x20
			setBody("Observation", "o", 2, flipped)
			refused("/Observation/o")
			refused("/Patient/a/Observation")
			setBody("Observation", "o", 2, o2)
			served("/Observation/o", "final")
		})
		t.Run("a body pointed at another patient's key", func(t *testing.T) {
			exec("UPDATE resource_versions SET key_owner = ? WHERE res_type = ? AND res_id = ? AND version_id = ?", "Patient/b", "Patient", "a", 1)
			refused("/Patient/a")
			exec("UPDATE resource_versions SET key_owner = ? WHERE res_type = ? AND res_id = ? AND version_id = ?", "Patient/a", "Patient", "a", 1)
			served("/Patient/a", "Alpha")
		})
	})
}
