package auth

import (
	"errors"
	"strings"
)

// ErrInvalidToken is wrapped by every error Verify returns: the token is
// refused and the server should answer 401 with the header built by
// Challenge.
var ErrInvalidToken = errors.New("invalid token")

// tokenError is a refusal of a token. reason is a short fixed phrase safe
// to show to the client; detail and cause are for the server's logs only.
type tokenError struct {
	reason string
	detail string
	cause  error
}

func (e *tokenError) Error() string {
	msg := "invalid token: " + e.reason
	if e.detail != "" {
		msg += ": " + e.detail
	}
	if e.cause != nil {
		msg += ": " + e.cause.Error()
	}
	return msg
}

// Unwrap returns ErrInvalidToken and the underlying cause, if any.
func (e *tokenError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrInvalidToken, e.cause}
	}
	return []error{ErrInvalidToken}
}

// refuse builds a token refusal with a client-facing reason, an optional
// detail for logs and an optional cause.
func refuse(reason, detail string, cause error) error {
	return &tokenError{reason: reason, detail: detail, cause: cause}
}

// Reason returns the short client-facing reason of a token refusal
// ("expired", "audience", "unknown key", ...), or "" if err is not one.
func Reason(err error) string {
	var te *tokenError
	if errors.As(err, &te) {
		return te.reason
	}
	return ""
}

// Challenge returns the value of the WWW-Authenticate header answering a
// request refused with err (RFC 6750, section 3). For nil it is "Bearer",
// the answer to a request without a token. For any other error it is
// Bearer error="invalid_token" with an error_description made of the
// refusal's reason; the description never carries token contents and
// holds only characters RFC 6750 allows there.
func Challenge(err error) string {
	if err == nil {
		return "Bearer"
	}
	desc := Reason(err)
	if desc == "" {
		desc = "the access token is not valid"
	}
	return `Bearer error="invalid_token", error_description="` + sanitize(desc) + `"`
}

// sanitize keeps the characters RFC 6750 allows in error_description
// (printable ASCII except '"' and '\') and replaces the others by a space.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return ' '
		}
		return r
	}, s)
}
