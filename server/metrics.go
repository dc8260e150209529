package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the Prometheus figures of one server process, on a registry
// of their own (so tests can run several servers in one process).
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	dbRetries *prometheus.CounterVec
	// breakGlass counts requests made under the emergency purpose of use;
	// breakGlassDisclosures the resources only break-glass disclosed.
	breakGlass            prometheus.Counter
	breakGlassDisclosures prometheus.Counter
	// evidence counts checkpoints of peers' logs kept as evidence of a
	// fork; published is the size of this log's newest checkpoint its
	// witnesses cosigned.
	evidence  *prometheus.CounterVec
	published prometheus.Gauge
}

// NewMetrics makes the metric set with Go runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ehrledger_http_requests_total",
			Help: "FHIR requests answered, by interaction and HTTP status code.",
		}, []string{"interaction", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ehrledger_http_request_duration_seconds",
			Help:    "Time to answer FHIR requests, by interaction.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"interaction"}),
		dbRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ehrledger_db_transaction_retries_total",
			Help: "Database transactions run again after a serialization conflict, by dialect.",
		}, []string{"dialect"}),
		breakGlass: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ehrledger_break_glass_requests_total",
			Help: "Requests made under the emergency purpose of use ETREAT (break-glass), each with a reason; an alert should watch it.",
		}),
	}
	m.breakGlassDisclosures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ehrledger_break_glass_disclosures_total",
		Help: "Resources disclosed only because of break-glass, against what the patient's consents decide; an alert should watch it.",
	})
	m.evidence = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ehrledger_witness_evidence_total",
		Help: "Pairs of a peer log's checkpoints that cannot both be true, kept as evidence, by origin; the log is untrusted until an operator acts. An alert should watch it.",
	}, []string{"origin"})
	m.published = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ehrledger_ledger_published_size",
		Help: "Size of this provider's newest checkpoint that its witness policy's quorum cosigned.",
	})
	m.reg.MustRegister(m.requests, m.latency, m.dbRetries, m.breakGlass, m.breakGlassDisclosures, m.evidence, m.published,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchKeys publishes the keyring's KMS calls.
func (m *Metrics) watchKeys(kr *keys.Keyring) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "ehrledger_kms_calls_total",
		Help: "Calls to the key management service (wrap, unwrap, rewrap, rotate); unwrapped data keys are cached.",
	}, func() float64 { return float64(kr.KMSCalls()) }))
}

// DBRetry counts one transaction retry; it fits store.Config.OnRetry.
func (m *Metrics) DBRetry(d store.Dialect) { m.dbRetries.WithLabelValues(string(d)).Inc() }

// Evidence counts one piece of evidence against a peer's log; it fits
// witness.Witness.OnEvidence.
func (m *Metrics) Evidence(origin string) { m.evidence.WithLabelValues(origin).Inc() }

// Published sets the size of this log's newest cosigned checkpoint; it
// fits witness.Publisher.OnPublished.
func (m *Metrics) Published(size int64) { m.published.Set(float64(size)) }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *Metrics) observe(interaction string, code int, d time.Duration) {
	m.requests.WithLabelValues(interaction, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(interaction).Observe(d.Seconds())
}
