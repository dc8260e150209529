// Command tessera is the reference for the ledger append benchmark
// (bench/ledger): the same append workload on transparency-dev/tessera
// with its POSIX driver. It reports appends per second and the p50/p99
// wait at several numbers of concurrent appenders.
//
//	go -C bench/tessera run . -duration 5s -concurrency 1,16,256 -size 300 [-dir DIR]
//
// It is a module of its own (so the main module does not depend on
// tessera), hence -C rather than go run ./bench/tessera.
//
// For each concurrency level a fresh log is created in a new directory
// (under DIR or os.TempDir(), removed afterwards), and c goroutines each
// append, in a loop for the duration, a distinct JSON-like record of size
// bytes and wait for its index. An append's latency runs from Add to the resolution
// of its index future; appends/s and the latencies cover the appends whose
// index resolved within the duration (those still waiting then are waited
// for but not counted, see Batching).
//
// What a resolved index means: the POSIX driver resolves the future only
// after the batch holding the entry has been written as entry bundles,
// integrated into the Merkle tiles and recorded in .state/treeState, every
// file written O_SYNC, renamed into place and its directory fsync'd
// (storage/internal/queue.go: Queue.doFlush; storage/posix/files.go:
// appender.sequenceBatch; storage/posix/file_ops.go: overwrite,
// createTemp, syncDir).
// That is a durable, sequenced (and integrated) index; it does not wait
// for a signed checkpoint, which is published separately every 10 s by
// default. There is no option to turn the syncing on or off.
//
// Batching: tessera's POSIX driver sequences a batch when it holds
// 256 entries (batch size) or when its oldest entry is 250 ms old (batch
// age), one batch at a time. Our ledger instead sequences whatever is
// pending as soon as its sequencer is free. With tessera's defaults fewer
// than 256 appenders never fill a batch, so every append waits out the
// 250 ms timer (about 4 appends/s for one appender, 60 for 16): a timer,
// not the disk. Lowering only the age does not fix it: a lone appender
// still waits the age each time, and with many appenders batches flushed
// early stay split into small groups that each pay a full round of
// fsyncs. So the batch size is set to the number of appenders (-batch-size
// 0, the default) and the age left at 250 ms: in this closed loop a batch
// is sequenced the moment every appender has an entry in it, which is
// group commit of all concurrent appends with no timer wait, tessera's
// best case. The age fires only at the end of a run, when some appenders
// have stopped and the last batch cannot fill: which is why appends
// finishing after the duration are not counted.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	badger_as "github.com/transparency-dev/tessera/storage/posix/antispam"
	"golang.org/x/mod/sumdb/note"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long each measurement runs")
	levels := flag.String("concurrency", "1,16,256", "concurrent appenders, comma-separated")
	size := flag.Int("size", 300, "bytes per record")
	dir := flag.String("dir", "", "directory in which each level's log directory is made (default: os.TempDir())")
	batchAge := flag.Duration("batch-age", tessera.DefaultBatchMaxAge, "tessera batch max age")
	batchSize := flag.Uint("batch-size", 0, "tessera batch max size (0: the number of appenders; tessera's default is 256)")
	antispam := flag.Bool("antispam", true, "also run each level with tessera's persistent antispam (a Badger follower indexing entries by hash)")
	flag.Parse()
	var conc []int
	for _, s := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fatal(fmt.Errorf("bad concurrency %q", s))
		}
		conc = append(conc, n)
	}

	fmt.Printf("tessera run: %s, %d CPUs, %s each, %s\n\n", runtime.Version(), runtime.NumCPU(), *duration, time.Now().UTC().Format(time.DateOnly))
	var rows []string
	for _, c := range conc {
		bs := *batchSize
		if bs == 0 {
			bs = uint(c)
		}
		for _, as := range []bool{false, true} {
			if as && !*antispam {
				continue
			}
			name := "tessera posix"
			if as {
				name += " + badger antispam"
			}
			r := run(*dir, c, *duration, *size, bs, *batchAge, as)
			rows = append(rows, fmt.Sprintf("| %s | %d | %.0f | %s | %s | %d |",
				name, c, float64(len(r.lat))/duration.Seconds(), millis(r.quantile(0.5)), millis(r.quantile(0.99)), r.errors))
		}
	}
	fmt.Println("| log | appenders | appends/s | p50 | p99 | errors |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Println(r)
	}
}

type result struct {
	lat    []time.Duration // latencies of the appends done within the duration, sorted
	errors int
}

// run measures c appenders on a fresh log for d.
func run(dir string, c int, d time.Duration, size int, batchSize uint, batchAge time.Duration, antispam bool) result {
	path, err := os.MkdirTemp(dir, "tessera-bench-") // dir "" is os.TempDir()
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(path)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // after shutdown: stops tessera's background goroutines
	driver, err := posix.New(ctx, posix.Config{Path: path})
	if err != nil {
		fatal(err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, "bench.example/tessera")
	if err != nil {
		fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		fatal(err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(batchSize, batchAge)
	if antispam {
		// Tessera's own lookup of entries by hash, the counterpart of
		// ehrledger's lookup rows: a follower indexes integrated entries in
		// Badger, and appends are pushed back (ErrPushback, counted as
		// errors) while it trails by more than its threshold.
		as, err := badger_as.NewAntispam(ctx, filepath.Join(path, ".antispam"), badger_as.AntispamOpts{})
		if err != nil {
			fatal(err)
		}
		opts.WithAntispam(tessera.DefaultAntispamInMemorySize, as)
	}
	app, shutdown, _, err := tessera.NewAppender(ctx, driver, opts)
	if err != nil {
		fatal(err)
	}

	var (
		mu  sync.Mutex
		all result
		n   atomic.Int64
		wg  sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	for range c {
		wg.Go(func() {
			var lat []time.Duration
			errs := 0
			for time.Now().Before(deadline) {
				e := tessera.NewEntry(record(n.Add(1), size))
				t := time.Now()
				_, err := app.Add(ctx, e)()
				// Pushed back (the antispam follower trails): a client
				// backs off and tries again; the append is done when it
				// has its index.
				for errors.Is(err, tessera.ErrPushback) && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
					_, err = app.Add(ctx, e)()
				}
				if done := time.Now(); err != nil {
					if !errors.Is(err, tessera.ErrPushback) {
						errs++
					}
				} else if done.Before(deadline) {
					lat = append(lat, done.Sub(t))
				}
			}
			mu.Lock()
			all.lat = append(all.lat, lat...)
			all.errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(all.lat)

	// Not timed: waits until a checkpoint commits to every appended entry
	// (up to the 10 s checkpoint interval), as tessera requires before the
	// context is cancelled.
	if err := shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "tessera: shutdown:", err)
	}
	return all
}

// record is a disclosure-like JSON record of size bytes (at least its
// ~130-byte head), distinct by n.
func record(n int64, size int) []byte {
	b := fmt.Appendf(nil, `{"v":1,"type":"disclosure","time":"2026-11-25T00:00:00.000000Z","patient":"p%d","resources":[{"ref":"Observation/%d/_history/1","sha256":"`, n%5000, n)
	for len(b) < size-4 {
		b = append(b, "0123456789abcdef"[mrand.IntN(16)])
	}
	return append(b, `"}]}`...)
}

// quantile returns the q-quantile latency.
func (r result) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[max(int(math.Ceil(q*float64(len(r.lat))))-1, 0)]
}

func millis(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "tessera:", err)
	os.Exit(1)
}
