// Command tessera is the reference for the ledger append benchmark
// (bench/ledger): the same append workload on transparency-dev/tessera
// with its POSIX driver. It reports appends per second and the p50/p99
// wait at several numbers of concurrent appenders.
//
//	go run . -duration 5s -concurrency 1,16,256 -size 300 [-dir DIR]
//
// For each concurrency level a fresh log is created in a new directory
// (under DIR or os.TempDir(), removed afterwards), and c goroutines each append,
// in a loop for the duration, a distinct JSON-like record of size bytes and
// wait for its index. An append's latency runs from Add to the resolution
// of its index future; appends/s counts the successful appends over the
// whole run, including the last ones that finish after the deadline.
//
// What a resolved index means: the POSIX driver resolves the future only
// after the batch holding the entry has been written as entry bundles,
// integrated into the Merkle tiles and recorded in .state/treeState, every
// file written O_SYNC, renamed into place and its directory fsync'd
// (storage/posix: appender.sequenceBatch, createTemp, overwrite, syncDir).
// That is a durable, sequenced (and integrated) index; it does not wait
// for a signed checkpoint, which is published separately every 10 s by
// default. There is no option to turn the syncing on or off.
//
// Batching: tessera flushes a batch when it holds 256 entries or when its
// oldest entry is 250 ms old. With that default a lone appender waits
// 250 ms for every append, a timer rather than the disk, while our ledger
// sequences whatever is pending as soon as its sequencer is free. So the
// batch age is lowered (-batch-age, default 1ms) and the batch size left
// at 256; see the package's report for how the age was chosen.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long each measurement runs")
	levels := flag.String("concurrency", "1,16,256", "concurrent appenders, comma-separated")
	size := flag.Int("size", 300, "bytes per record")
	dir := flag.String("dir", "", "directory in which each level's log directory is made (default: os.TempDir())")
	batchAge := flag.Duration("batch-age", time.Millisecond, "tessera batch max age (tessera's default is 250ms)")
	batchSize := flag.Uint("batch-size", tessera.DefaultBatchMaxSize, "tessera batch max size")
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
		r := run(*dir, c, *duration, *size, *batchSize, *batchAge)
		rows = append(rows, fmt.Sprintf("| tessera posix | %d | %.0f | %s | %s | %d |",
			c, float64(len(r.lat))/r.elapsed.Seconds(), millis(r.quantile(0.5)), millis(r.quantile(0.99)), r.errors))
	}
	fmt.Println("| log | appenders | appends/s | p50 | p99 | errors |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Println(r)
	}
}

type result struct {
	lat     []time.Duration // successful appends' latencies, sorted
	errors  int
	elapsed time.Duration
}

// run measures c appenders on a fresh log for d.
func run(dir string, c int, d time.Duration, size int, batchSize uint, batchAge time.Duration) result {
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
	start := time.Now()
	deadline := start.Add(d)
	for range c {
		wg.Go(func() {
			var lat []time.Duration
			errs := 0
			for time.Now().Before(deadline) {
				e := tessera.NewEntry(record(n.Add(1), size))
				t := time.Now()
				if _, err := app.Add(ctx, e)(); err != nil {
					errs++
					continue
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			all.lat = append(all.lat, lat...)
			all.errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	all.elapsed = time.Since(start)
	slices.Sort(all.lat)

	// Not timed: waits until a checkpoint commits to every appended entry
	// (up to the 10 s checkpoint interval), as tessera requires before the
	// context is cancelled.
	if err := shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "tessera: shutdown:", err)
	}
	return all
}

// record is a disclosure-like JSON record of size bytes, distinct by n.
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
