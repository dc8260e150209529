package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ehrledger/ehrledger/store"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Peer is a witness of this provider's log.
type Peer struct {
	// Name is the witness's cosignature key name.
	Name string
	// URL is its base URL: add-checkpoint is URL/witness/add-checkpoint.
	URL string
	// Verifier checks its cosignatures (cosignature/v1).
	Verifier note.Verifier
}

// Source is this provider's log as the publisher needs it.
type Source interface {
	Checkpoint() store.LedgerCheckpoint
	ProveConsistency(ctx context.Context, from, to int64) (tlog.TreeProof, error)
}

// CosignedStore keeps this log's newest cosigned checkpoint (package
// store implements it).
type CosignedStore interface {
	Cosigned(ctx context.Context) (size int64, note []byte, err error)
	AddCosigned(ctx context.Context, size int64, note []byte) error
}

// Publisher sends each new checkpoint of this provider's log to its
// witnesses and stores it with their cosignatures once Required of them
// cosigned. It runs beside the log: a witness down or slow delays
// publication, never a request.
type Publisher struct {
	st        CosignedStore
	src       Source
	witnesses []Peer
	required  int
	client    *http.Client
	log       *slog.Logger
	// OnPublished, when set, is called with the size of each checkpoint
	// published.
	OnPublished func(size int64)

	// asks are the goroutines of publications: a question to each
	// witness, and the storing of late cosignatures; Run waits for them.
	asks sync.WaitGroup

	mu        sync.Mutex
	known     map[string]int64 // each witness's last cosigned size, as far as known
	status    map[string]PeerStatus
	published int64
}

// PeerStatus is what this provider last heard from one of its witnesses.
type PeerStatus struct {
	Name     string    `json:"name"`
	URL      string    `json:"url"`
	Cosigned int64     `json:"cosigned_size"` // the largest size it cosigned for us
	Contact  time.Time `json:"last_contact,omitzero"`
	Error    string    `json:"last_error,omitempty"`
}

// NewPublisher returns a publisher for src with the given witnesses, of
// which required must cosign.
func NewPublisher(st CosignedStore, src Source, witnesses []Peer, required int, logger *slog.Logger) (*Publisher, error) {
	if required < 0 || required > len(witnesses) {
		return nil, fmt.Errorf("witness: a policy of %d of %d witnesses cannot be met", required, len(witnesses))
	}
	if logger == nil {
		logger = slog.Default()
	}
	p := &Publisher{st: st, src: src, witnesses: witnesses, required: required,
		client: &http.Client{Timeout: 10 * time.Second}, log: logger,
		known: map[string]int64{}, status: map[string]PeerStatus{}}
	for _, w := range witnesses {
		p.status[w.Name] = PeerStatus{Name: w.Name, URL: w.URL}
	}
	if size, _, err := st.Cosigned(context.Background()); err == nil {
		p.published = size
	}
	return p, nil
}

// Run publishes until ctx ends: each new checkpoint of the log as soon as
// it is signed (looked for every 50 ms, in memory), and after a round that
// failed, again no sooner than retry later. It returns once every
// question to a witness has ended and every late cosignature is stored.
func (p *Publisher) Run(ctx context.Context, retry time.Duration) {
	defer p.asks.Wait()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var failed time.Time
	for {
		p.mu.Lock()
		fresh := p.src.Checkpoint().Size > p.published
		p.mu.Unlock()
		if fresh && time.Since(failed) >= retry {
			if err := p.Publish(ctx); err != nil && ctx.Err() == nil {
				failed = time.Now()
				p.log.Warn("ledger: publication waits", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Publish sends the log's newest checkpoint to every witness at once and
// stores it cosigned as soon as enough of them answered (a slow witness
// does not hold it back: its cosignature is added when it comes); it
// returns an error when too few of them cosigned.
func (p *Publisher) Publish(ctx context.Context) error {
	cp := p.src.Checkpoint()
	p.mu.Lock()
	done := cp.Size == 0 || cp.Size <= p.published
	p.mu.Unlock()
	if done {
		return nil
	}
	answers := make(chan []byte, len(p.witnesses))
	for _, w := range p.witnesses {
		p.asks.Go(func() {
			sig, err := p.ask(ctx, w, cp)
			p.mu.Lock()
			st := p.status[w.Name]
			st.Contact = time.Now().UTC()
			st.Error = ""
			if err != nil {
				st.Error = err.Error()
			} else {
				st.Cosigned = max(st.Cosigned, cp.Size)
			}
			p.status[w.Name] = st
			p.mu.Unlock()
			answers <- sig
		})
	}
	merged := bytes.Clone(cp.Note)
	got, heard := 0, 0
	for ; heard < len(p.witnesses) && got < p.required; heard++ {
		if sig := <-answers; sig != nil {
			merged = append(merged, sig...)
			got++
		}
	}
	if got < p.required {
		return fmt.Errorf("checkpoint %d has %d of the %d cosignatures required", cp.Size, got, p.required)
	}
	if err := p.st.AddCosigned(ctx, cp.Size, merged); err != nil {
		return err
	}
	if heard < len(p.witnesses) {
		// The late cosignatures join the stored checkpoint when they come,
		// for clients that ask for more witnesses than the policy; stored
		// even as the publisher stops (it waits for them).
		p.asks.Go(func() {
			late := false
			for ; heard < len(p.witnesses); heard++ {
				if sig := <-answers; sig != nil {
					merged, late = append(merged, sig...), true
				}
			}
			if late {
				if err := p.st.AddCosigned(context.WithoutCancel(ctx), cp.Size, merged); err != nil {
					p.log.Warn("ledger: a late cosignature could not be stored", "size", cp.Size, "err", err)
				}
			}
		})
	}
	p.mu.Lock()
	p.published = max(p.published, cp.Size)
	p.mu.Unlock()
	if p.OnPublished != nil {
		p.OnPublished(cp.Size)
	}
	return nil
}

// ask asks one witness to cosign cp, from the size it last cosigned, and
// returns its verified cosignature line.
func (p *Publisher) ask(ctx context.Context, w Peer, cp store.LedgerCheckpoint) ([]byte, error) {
	p.mu.Lock()
	from := p.known[w.Name]
	p.mu.Unlock()
	for attempt := 0; attempt < 2; attempt++ {
		sig, size, err := p.post(ctx, w, cp, from)
		var stale *staleError
		if errors.As(err, &stale) {
			if stale.size > cp.Size {
				return nil, fmt.Errorf("it cosigned size %d already", stale.size)
			}
			from = stale.size
			continue
		}
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.known[w.Name] = size
		p.mu.Unlock()
		return sig, nil
	}
	return nil, errors.New("its size kept moving")
}

type staleError struct{ size int64 }

func (e *staleError) Error() string { return "stale old size" }

func (p *Publisher) post(ctx context.Context, w Peer, cp store.LedgerCheckpoint, from int64) ([]byte, int64, error) {
	var body bytes.Buffer
	fmt.Fprintf(&body, "old %d\n", from)
	if from > 0 && from < cp.Size {
		proof, err := p.src.ProveConsistency(ctx, from, cp.Size)
		if err != nil {
			return nil, 0, fmt.Errorf("proving size %d consistent with %d: %w", cp.Size, from, err)
		}
		for _, h := range proof {
			body.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
		}
	}
	body.WriteString("\n")
	body.Write(cp.Note)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(w.URL, "/")+"/witness/add-checkpoint", &body)
	if err != nil {
		return nil, 0, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, MaxRequest))
	if err != nil {
		return nil, 0, err
	}
	switch {
	case resp.StatusCode == http.StatusConflict && resp.Header.Get("Content-Type") == "text/x.tlog.size":
		size, err := strconv.ParseInt(strings.TrimSuffix(string(answer), "\n"), 10, 64)
		if err != nil || size < 0 {
			return nil, 0, fmt.Errorf("409 with a malformed size %q", answer)
		}
		return nil, 0, &staleError{size: size}
	case resp.StatusCode != http.StatusOK:
		return nil, 0, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(answer)))
	}
	// The answer holds signature lines; the one of this witness's key must
	// verify over the checkpoint.
	n, err := note.Open(append(bytes.Clone(cp.Note), answer...), note.VerifierList(w.Verifier))
	if err != nil || len(n.Sigs) != 1 {
		return nil, 0, fmt.Errorf("no valid cosignature of %s in its answer", w.Name)
	}
	line := fmt.Sprintf("— %s %s\n", n.Sigs[0].Name, n.Sigs[0].Base64)
	return []byte(line), cp.Size, nil
}

// Status reports what was last heard from each witness, and the size of
// the newest checkpoint published.
func (p *Publisher) Status() ([]PeerStatus, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PeerStatus, 0, len(p.witnesses))
	for _, w := range p.witnesses {
		out = append(out, p.status[w.Name])
	}
	return out, p.published
}

// Required is how many witnesses must cosign a checkpoint.
func (p *Publisher) Required() int { return p.required }
