package benchenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ehrledger/ehrledger/bench/synth"
)

// Loaded is a population loaded into a server.
type Loaded struct {
	Resources  int
	Elapsed    time.Duration
	PatientIDs []string // the server's id of patient i
}

// Load posts the shared resources, then every patient's record as a
// transaction, with n loaders, and notes each patient's new id.
func Load(client *http.Client, base string, pop *synth.Population, n int) (*Loaded, error) {
	if _, err := post(client, base, pop.SharedBundle()); err != nil {
		return nil, err
	}
	out := &Loaded{PatientIDs: make([]string, pop.Patients())}
	var next, resources atomic.Int64
	var firstErr error
	var once sync.Once
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			var buf []byte
			for {
				i := int(next.Add(1) - 1)
				if i >= pop.Patients() {
					return
				}
				buf = pop.AppendRecord(buf[:0], i)
				resp, err := post(client, base, buf)
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("patient %d: %w", i, err) })
					return
				}
				var b struct {
					Entry []struct {
						Response struct{ Location string }
					}
				}
				if err := json.Unmarshal(resp, &b); err != nil || len(b.Entry) == 0 {
					once.Do(func() { firstErr = fmt.Errorf("patient %d: unreadable response", i) })
					return
				}
				// The Patient is the first entry of each record.
				out.PatientIDs[i] = strings.Split(b.Entry[0].Response.Location, "/")[1]
				resources.Add(int64(len(b.Entry)))
			}
		})
	}
	wg.Wait()
	out.Elapsed = time.Since(start)
	out.Resources = int(resources.Load())
	return out, firstErr
}

// post sends a transaction, again after a second when the server answers
// 503 (contention among the loaders, as a client would), up to five
// times.
func post(client *http.Client, base string, body []byte) ([]byte, error) {
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequest("POST", base+"/", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/fhir+json")
		res, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		switch {
		case err != nil:
			return nil, err
		case res.StatusCode == http.StatusServiceUnavailable && attempt < 5:
			time.Sleep(time.Second)
			continue
		case res.StatusCode != 200:
			return nil, fmt.Errorf("status %d: %.300s", res.StatusCode, b)
		}
		return b, nil
	}
}
