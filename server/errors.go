package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/audit/balp"
	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
	"github.com/go-chi/chi/v5"
)

// Error families a handler returns; writeError alone turns them into HTTP.
var (
	errInvalid          = errors.New("invalid request")        // 400
	errForbidden        = errors.New("forbidden")              // 403
	errNotFound         = errors.New("not found")              // 404
	errMethodNotAllowed = errors.New("method not allowed")     // 405
	errNotAcceptable    = errors.New("not acceptable")         // 406
	errTimeout          = errors.New("request timeout")        // 408
	errConflict         = errors.New("conflict")               // 409
	errPrecondition     = errors.New("precondition failed")    // 412
	errTooLarge         = errors.New("request body too large") // 413
	errUnsupportedMedia = errors.New("unsupported media type") // 415
	errUnprocessable    = errors.New("unprocessable")          // 422
	errUnavailable      = errors.New("service unavailable")    // 503
)

// requestError is an error of one family with the OperationOutcome issue
// type and, where it applies, the element the problem is at.
type requestError struct {
	family     error
	code       string // OperationOutcome issue type
	msg        string
	expression string
}

func (e *requestError) Error() string { return e.msg }
func (e *requestError) Unwrap() error { return e.family }

func reqErr(family error, code, format string, args ...any) error {
	return &requestError{family: family, code: code, msg: fmt.Sprintf(format, args...)}
}

// validationError carries every issue validation found.
type validationError struct{ issues []fhir.Issue }

func (e *validationError) Error() string {
	return fmt.Sprintf("resource failed validation with %d issue(s)", len(e.issues))
}

// status of a validation failure: 422 when every error is a business rule,
// else 400 (the resource is not well-formed R4).
func (e *validationError) status() int {
	for _, is := range e.issues {
		if isError(is) && !fhir.BusinessRule(is.Code) {
			return http.StatusBadRequest
		}
	}
	return http.StatusUnprocessableEntity
}

func isError(is fhir.Issue) bool { return is.Severity == "error" || is.Severity == "fatal" }

// writeError answers err with the right status and an OperationOutcome.
// Anything it does not recognise is a 500 whose details go to the log only.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, issues := s.classify(r, err)
	switch {
	case errors.Is(err, store.ErrContention), errors.Is(err, store.ErrUnavailable), errors.Is(err, errUnavailable), errors.Is(err, keys.ErrUnavailable),
		errors.Is(err, audit.ErrNoCheckpoint),
		errors.Is(err, disclosure.ErrUnrecorded):
		w.Header().Set("Retry-After", "1")
	case status == http.StatusMethodNotAllowed:
		w.Header().Set("Allow", s.allowed(r))
	}
	var unauth *unauthorizedError
	if errors.As(err, &unauth) {
		w.Header().Set("WWW-Authenticate", auth.Challenge(unauth.cause))
	}
	var del *store.DeletedError
	if errors.As(err, &del) {
		setVersionHeaders(w, del.VersionID, del.Updated)
	}
	s.writeOutcome(w, r, status, issues)
}

func (s *Server) classify(r *http.Request, err error) (int, []fhir.Issue) {
	var (
		re          *requestError
		ve          *validationError
		pe          *fhir.ParseError
		se          *fhir.SearchError
		ce          *store.CriteriaError
		del         *store.DeletedError
		erased      *store.ErasedError
		maxed       *http.MaxBytesError
		badQuestion *audit.BadQuestion
	)
	one := func(code, msg string) []fhir.Issue {
		return []fhir.Issue{{Severity: "error", Code: code, Diagnostics: msg}}
	}
	var ee *entryError
	if errors.As(err, &ee) {
		status, inner := s.classify(r, ee.err)
		issues := make([]fhir.Issue, len(inner))
		for i, is := range inner {
			is.Diagnostics = fmt.Sprintf("entry %d: %s", ee.index, is.Diagnostics)
			if is.Expression != "" {
				is.Diagnostics += " (at " + is.Expression + ")"
			}
			is.Expression = fmt.Sprintf("Bundle.entry[%d]", ee.index)
			issues[i] = is
		}
		return status, issues
	}
	var unauth *unauthorizedError
	var gated *disclosure.Error
	switch {
	case errors.As(err, &gated):
		return gateStatus(gated.Family), one(gateCode(gated.Family), gated.Msg)
	case errors.As(err, &unauth) && unauth.cause == nil:
		return http.StatusUnauthorized, one("login", "this endpoint needs an access token: send Authorization: Bearer <token>")
	case errors.As(err, &unauth):
		return http.StatusUnauthorized, one("login", "the access token was refused ("+auth.Reason(unauth.cause)+")")
	case errors.As(err, &ve):
		return ve.status(), ve.issues
	case errors.As(err, &se):
		return http.StatusBadRequest, se.Issues
	case errors.As(err, &pe):
		return http.StatusBadRequest, one(pe.Code, pe.Msg)
	case errors.As(err, &maxed):
		return http.StatusRequestEntityTooLarge, one("too-costly", fmt.Sprintf("request body exceeds the limit of %d bytes", maxed.Limit))
	case errors.As(err, &ce):
		return http.StatusBadRequest, one("invalid", ce.Msg)
	case errors.As(err, &del):
		return http.StatusGone, one("deleted", fmt.Sprintf("%s/%s was deleted (version %d)", del.Type, del.ID, del.VersionID))
	case errors.As(err, &erased) && erased.Type != "":
		return http.StatusGone, one("deleted", fmt.Sprintf("the data of %s/%s was erased: the patient's data key was destroyed and it can never be read again", erased.Type, erased.ID))
	case errors.As(err, &erased):
		return http.StatusConflict, one("conflict", fmt.Sprintf("the data of %s was erased; nothing more can be stored for it", erased.Owner))
	case errors.Is(err, keys.ErrUnavailable):
		s.log.Error("key management service unavailable", "request_id", requestID(r), "err", err)
		return http.StatusServiceUnavailable, one("transient", "the key management service is unavailable, so the data cannot be opened or sealed; retry later")
	case errors.Is(err, keys.ErrTampered):
		s.log.Error("ALARM: stored data failed authentication", "request_id", requestID(r), "path", r.URL.Path, "err", err)
		return http.StatusInternalServerError, one("exception", "stored data failed its integrity check and is withheld (request id "+requestID(r)+")")
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, one("not-found", "resource not found")
	case errors.As(err, &badQuestion):
		return http.StatusBadRequest, one("invalid", badQuestion.Msg)
	case errors.Is(err, audit.ErrNoCheckpoint):
		return http.StatusServiceUnavailable, one("transient", err.Error())
	case errors.Is(err, audit.ErrNotInLog):
		return http.StatusNotFound, one("not-found", err.Error())
	case errors.Is(err, store.ErrContention):
		return http.StatusServiceUnavailable, one("transient", "too many concurrent changes to the same data; retry the request")
	case errors.Is(err, store.ErrUnavailable):
		s.log.Error("database unavailable", "request_id", requestID(r), "err", err)
		return http.StatusServiceUnavailable, one("transient", "the database is unavailable; retry later")
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, one("timeout", "the request took too long")
	case errors.Is(err, context.Canceled):
		return 499, one("timeout", "the request was canceled") // nobody is listening any more
	case errors.As(err, &re):
		is := fhir.Issue{Severity: "error", Code: re.code, Diagnostics: re.msg, Expression: re.expression}
		return familyStatus(re.family), []fhir.Issue{is}
	}
	s.log.Error("internal error", "request_id", requestID(r), "method", r.Method, "path", r.URL.Path, "err", err)
	return http.StatusInternalServerError, one("exception", "internal server error (request id "+requestID(r)+")")
}

// gateStatus is the status of a refusal of the gate's family.
func gateStatus(family error) int {
	switch family {
	case disclosure.ErrForbidden:
		return http.StatusForbidden
	case disclosure.ErrInvalid:
		return http.StatusBadRequest
	case disclosure.ErrUnprocessable:
		return http.StatusUnprocessableEntity
	case disclosure.ErrUnrecorded:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// gateCode is the OperationOutcome issue type of a refusal of the gate's
// family.
func gateCode(family error) string {
	switch family {
	case disclosure.ErrForbidden:
		return "forbidden"
	case disclosure.ErrUnprocessable:
		return "business-rule"
	case disclosure.ErrUnrecorded:
		return "transient"
	}
	return "invalid"
}

func familyStatus(family error) int {
	switch family {
	case errInvalid:
		return http.StatusBadRequest
	case errForbidden:
		return http.StatusForbidden
	case errNotFound:
		return http.StatusNotFound
	case errMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case errNotAcceptable:
		return http.StatusNotAcceptable
	case errTimeout:
		return http.StatusRequestTimeout
	case errConflict:
		return http.StatusConflict
	case errPrecondition:
		return http.StatusPreconditionFailed
	case errTooLarge:
		return http.StatusRequestEntityTooLarge
	case errUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case errUnprocessable:
		return http.StatusUnprocessableEntity
	case errUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// operationOutcome is the JSON of an OperationOutcome.
type operationOutcome struct {
	ResourceType string           `json:"resourceType"`
	Extension    []balp.Extension `json:"extension,omitempty"`
	Issue        []outcomeIssue   `json:"issue"`
}

type outcomeIssue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

func outcome(issues []fhir.Issue) operationOutcome {
	oo := operationOutcome{ResourceType: "OperationOutcome", Issue: make([]outcomeIssue, 0, len(issues))}
	for _, is := range issues {
		oi := outcomeIssue{Severity: is.Severity, Code: is.Code, Diagnostics: is.Diagnostics}
		if is.Expression != "" {
			oi.Expression = []string{is.Expression}
		}
		oo.Issue = append(oo.Issue, oi)
	}
	return oo
}

// info is a single informational issue, for answers that succeed with an
// OperationOutcome.
func info(msg string) []fhir.Issue {
	return []fhir.Issue{{Severity: "information", Code: "informational", Diagnostics: msg}}
}

func (s *Server) writeOutcome(w http.ResponseWriter, r *http.Request, status int, issues []fhir.Issue) {
	s.writeJSON(w, r, status, outcome(issues))
}

// allowed lists the methods routed for the request's path, for Allow.
func (s *Server) allowed(r *http.Request) string {
	var methods []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if s.router.Match(chi.NewRouteContext(), m, r.URL.Path) {
			methods = append(methods, m)
		}
	}
	return strings.Join(methods, ", ")
}
