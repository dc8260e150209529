package disclosure

import (
	"errors"
	"fmt"
)

// Families of the errors the gate returns, for the caller to answer.
var (
	// ErrForbidden: the caller's scopes, its patient or the patient's
	// consent do not allow what it asked. Answer 403.
	ErrForbidden = errors.New("forbidden")
	// ErrInvalid: the request asks for what the gate cannot decide
	// within its bounds (a criterion reaching too many resources, a
	// malformed cursor). Answer 400.
	ErrInvalid = errors.New("invalid request")
	// ErrUnprocessable: what a write stores breaks a rule the gate
	// keeps (a Consent the consent engine cannot read). Answer 422.
	ErrUnprocessable = errors.New("unprocessable")
	// ErrUnrecorded: the ledger could not record what an answer
	// discloses, so nothing of it may be sent. Answer 503 with
	// Retry-After.
	ErrUnrecorded = errors.New("the disclosure could not be recorded")
)

// Error is a refusal of one family with the message to show the caller.
// The message never quotes stored data the caller may not read.
type Error struct {
	Family error
	Msg    string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Family }

func forbidden(format string, args ...any) error {
	return &Error{Family: ErrForbidden, Msg: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) error {
	return &Error{Family: ErrInvalid, Msg: fmt.Sprintf(format, args...)}
}
