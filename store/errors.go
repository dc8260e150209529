package store

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotFound is returned by Read, VRead and Tx.Current when the
	// resource (or the asked version) was never written.
	ErrNotFound = errors.New("store: resource not found")
	// ErrDeleted is matched (errors.Is) by the *DeletedError that Read
	// returns when the current version of a resource is a delete.
	ErrDeleted = errors.New("store: resource deleted")
	// ErrContention is returned by InTx when a transaction kept conflicting
	// with concurrent ones past the retry budget; the caller may retry later
	// (503 with Retry-After).
	ErrContention = errors.New("store: too much contention, transaction abandoned")
	// ErrUnavailable wraps failures to reach the database (503).
	ErrUnavailable = errors.New("store: database unavailable")
)

// DeletedError says the current version of a resource is a delete; it
// carries that version's number and time for the 410 answer's headers.
type DeletedError struct {
	Type, ID  string
	VersionID int64
	Updated   time.Time
}

func (e *DeletedError) Error() string {
	return fmt.Sprintf("store: %s/%s was deleted in version %d", e.Type, e.ID, e.VersionID)
}

// Is makes errors.Is(err, ErrDeleted) true.
func (e *DeletedError) Is(target error) bool { return target == ErrDeleted }

// CriteriaError says a search cannot run as asked: a malformed paging
// cursor, a parameter type the store cannot match. Callers answer it with
// 400.
type CriteriaError struct{ Msg string }

func (e *CriteriaError) Error() string { return "store: " + e.Msg }
