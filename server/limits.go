package server

import (
	"time"

	"github.com/ehrledger/ehrledger/fhir"
)

// Limits bound the work one request may ask of the server, so that
// nothing a client sends costs out of proportion to what a well-behaved
// request of its size does. Each refusal is a 4xx OperationOutcome naming
// its limit. Zero fields take the defaults below.
type Limits struct {
	// Criteria, Values and Includes bound a search query: its criteria
	// (each parameter, each level of a chain or _has), the values they
	// give together, and its distinct _include and _revinclude
	// parameters (400 beyond). Conditional criteria are bounded alike.
	Criteria, Values, Includes int
	// IndexRows bounds the search index rows one resource may store,
	// the prefix rows of blind values included (422 beyond).
	IndexRows int
	// BundleEntries bounds the entries of a transaction or batch (400
	// beyond).
	BundleEntries int
	// BodyTimeout bounds the time a request body may take to arrive
	// (408 beyond).
	BodyTimeout time.Duration
}

// Defaults of Limits.
const (
	DefaultMaxCriteria      = fhir.DefaultMaxCriteria
	DefaultMaxValues        = fhir.DefaultMaxValues
	DefaultMaxIncludes      = fhir.DefaultMaxIncludes
	DefaultMaxIndexRows     = 50_000
	DefaultMaxBundleEntries = 10_000
	DefaultBodyTimeout      = 30 * time.Second
)

// withDefaults is l with zero fields set to their defaults.
func (l Limits) withDefaults() Limits {
	set := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&l.Criteria, DefaultMaxCriteria)
	set(&l.Values, DefaultMaxValues)
	set(&l.Includes, DefaultMaxIncludes)
	set(&l.IndexRows, DefaultMaxIndexRows)
	set(&l.BundleEntries, DefaultMaxBundleEntries)
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	return l
}
