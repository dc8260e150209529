package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/store"
)

// Media types.
const (
	mediaFHIRJSON  = "application/fhir+json"
	mediaJSON      = "application/json"
	mediaJSONPatch = "application/json-patch+json"
)

// jsonFormats are the _format values and Accept types that mean FHIR JSON.
var jsonFormats = map[string]bool{
	"json": true, mediaFHIRJSON: true, mediaJSON: true, "application/json+fhir": true,
	"*/*": true, "application/*": true,
}

// negotiate checks that the client accepts JSON (_format overrides
// Accept, as the FHIR spec says); only JSON is served.
func negotiate(r *http.Request) error {
	if f := formatParam(r); f != "" {
		mt, _, err := mime.ParseMediaType(f)
		if err != nil {
			mt = f
		}
		if !jsonFormats[strings.ToLower(mt)] {
			return reqErr(errNotAcceptable, "not-supported", "_format %q is not supported; this server speaks FHIR JSON only", f)
		}
		return nil
	}
	accept := r.Header.Get("Accept")
	if strings.TrimSpace(accept) == "" {
		return nil
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v == 0 {
				continue
			}
		}
		if jsonFormats[strings.ToLower(mt)] {
			return nil
		}
	}
	return reqErr(errNotAcceptable, "not-supported", "none of the accepted media types (%s) can be served; this server speaks application/fhir+json", accept)
}

// formatParam is the _format parameter. An unescaped "+" in a query
// string decodes to a space, so "application/fhir json" is read as the
// "application/fhir+json" the client meant.
func formatParam(r *http.Request) string {
	return strings.ReplaceAll(r.URL.Query().Get("_format"), " ", "+")
}

// responseType is application/json when the client asked for exactly that,
// else application/fhir+json.
func responseType(r *http.Request) string {
	f := formatParam(r)
	if f == "" {
		f = r.Header.Get("Accept")
	}
	if mt, _, err := mime.ParseMediaType(f); err == nil && mt == mediaJSON && !strings.Contains(f, ",") {
		return mediaJSON + "; charset=utf-8"
	}
	return mediaFHIRJSON + "; charset=utf-8"
}

// writeJSON marshals v (without HTML escaping, which would mangle
// narrative) and writes it; _pretty=true indents it.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		s.log.Error("encode response", "request_id", requestID(r), "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	s.writeBody(w, r, status, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// writeBody writes a JSON body that is already encoded.
func (s *Server) writeBody(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	if r.URL.Query().Get("_pretty") == "true" {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			body = buf.Bytes()
		}
	}
	h := w.Header()
	h.Set("Content-Type", responseType(r))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// setVersionHeaders sets ETag and Last-Modified for a version.
func setVersionHeaders(w http.ResponseWriter, versionID int64, updated time.Time) {
	w.Header().Set("ETag", etag(versionID))
	w.Header().Set("Last-Modified", updated.UTC().Format(http.TimeFormat))
}

func etag(versionID int64) string { return `W/"` + strconv.FormatInt(versionID, 10) + `"` }

// parseETag reads W/"3" or "3" (If-Match, If-None-Match).
func parseETag(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "W/")
	if len(s) < 3 || s[0] != '"' || s[len(s)-1] != '"' {
		return 0, false
	}
	n, err := strconv.ParseInt(s[1:len(s)-1], 10, 64)
	return n, err == nil && n > 0
}

// ifMatch returns the version an If-Match header requires, or 0 when there
// is none.
func ifMatch(r *http.Request) (int64, error) {
	return parseIfMatch(r.Header.Get("If-Match"))
}

// parseIfMatch reads an If-Match value ("" for none: 0).
func parseIfMatch(h string) (int64, error) {
	if h == "" {
		return 0, nil
	}
	v, ok := parseETag(h)
	if !ok {
		return 0, reqErr(errInvalid, "invalid", "If-Match %q is not a version ETag such as W/\"3\"", h)
	}
	return v, nil
}

// preferReturn is the Prefer: return= value: minimal, representation
// (the default) or OperationOutcome.
func preferReturn(r *http.Request) string {
	for _, p := range preferences(r) {
		if k, v, ok := strings.Cut(p, "="); ok && strings.TrimSpace(k) == "return" {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return "representation"
}

func preferences(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Prefer") {
		for _, p := range strings.FieldsFunc(h, func(c rune) bool { return c == ',' || c == ';' }) {
			out = append(out, strings.TrimSpace(p))
		}
	}
	return out
}

// baseURL is the configured base or the one the request came in on.
// baseURL is the base the request is served as: the configured base URL,
// or the alias its Host names. Only with authentication off and no base
// configured does it follow the Host.
func (s *Server) baseURL(r *http.Request) string {
	base := strings.TrimSuffix(s.cfg.BaseURL, "/")
	for _, alias := range s.cfg.Aliases {
		if u, err := url.Parse(alias); err == nil && strings.EqualFold(u.Host, r.Host) {
			return strings.TrimSuffix(alias, "/")
		}
	}
	if base != "" {
		return base
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// writeVersion answers a successful write or read with a version: headers,
// then the body Prefer asks for.
func (s *Server) writeVersion(w http.ResponseWriter, r *http.Request, status int, v *store.Version, msg string) {
	setVersionHeaders(w, v.VersionID, v.Updated)
	if status == http.StatusCreated || r.Method != http.MethodGet {
		w.Header().Set("Location", s.baseURL(r)+"/"+v.Type+"/"+v.ID+"/_history/"+strconv.FormatInt(v.VersionID, 10))
	}
	if r.Method == http.MethodGet {
		s.writeBody(w, r, status, v.Body)
		return
	}
	switch preferReturn(r) {
	case "minimal":
		w.WriteHeader(status)
	case "OperationOutcome":
		s.writeOutcome(w, r, status, info(msg))
	default:
		if v.Deleted {
			w.WriteHeader(status)
			return
		}
		s.writeBody(w, r, status, v.Body)
	}
}

// readBody reads a request body of one of the wanted media types, within
// the size limit. A missing Content-Type is taken as the first wanted.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, wanted ...string) (string, []byte, error) {
	media := wanted[0]
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			return "", nil, reqErr(errUnsupportedMedia, "not-supported", "malformed Content-Type %q", ct)
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return "", nil, reqErr(errUnsupportedMedia, "not-supported", "charset %q is not supported; send UTF-8", cs)
		}
		ok := false
		for _, want := range wanted {
			if strings.EqualFold(mt, want) {
				ok = true
			}
		}
		if !ok {
			return "", nil, reqErr(errUnsupportedMedia, "not-supported", "Content-Type %q is not supported here; send %s", mt, strings.Join(wanted, " or "))
		}
		media = strings.ToLower(mt)
	}
	// The body must arrive within the body deadline, however slowly it
	// trickles (a connection that does not support deadlines, a batch's
	// entry, is read as it is).
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(s.cfg.Limits.BodyTimeout)) == nil {
		defer rc.SetReadDeadline(time.Time{})
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		s.drain(r.Body)
		return "", nil, &http.MaxBytesError{Limit: s.cfg.MaxBodyBytes}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var maxed *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &maxed):
		s.drain(r.Body)
		return "", nil, err
	case errors.As(err, &netErr) && netErr.Timeout():
		// The rest of the body is not waited for: the connection closes
		// after the answer (else the server would read on before it).
		w.Header().Set("Connection", "close")
		return "", nil, reqErr(errTimeout, "timeout", "the request body did not arrive within %s", s.cfg.Limits.BodyTimeout)
	case err != nil:
		return "", nil, err
	}
	return media, body, nil
}

// drainLimit bounds what is read and thrown away of a body refused as
// too large.
const drainLimit = 64 << 20

// drain reads and throws away what is left of a refused body (up to
// drainLimit, within the body deadline), so that the client, still
// sending, can read the answer: a connection closed with unread data is
// reset, and the reset loses the answer on the client's side.
func (s *Server) drain(body io.Reader) {
	io.Copy(io.Discard, io.LimitReader(body, drainLimit))
}

// incoming is a resource a client sent, parsed, validated and indexed.
type incoming struct {
	res *fhir.Resource
	idx *fhir.Index
}

// readResource reads, parses, validates and indexes a FHIR JSON resource
// body of the type the URL names.
func (s *Server) readResource(w http.ResponseWriter, r *http.Request, typ string) (*incoming, error) {
	_, body, err := s.readBody(w, r, mediaFHIRJSON, mediaJSON, "application/json+fhir")
	if err != nil {
		return nil, err
	}
	return s.parseResource(body, typ)
}

// parseResource parses, validates and indexes body as a resource of type
// typ. The index is taken before the server sets id and meta, neither of
// which any search parameter reads differently.
func (s *Server) parseResource(body []byte, typ string) (*incoming, error) {
	in, err := s.parseUnindexed(body, typ)
	if err != nil {
		return nil, err
	}
	if issues := errorsOnly(fhir.Validate(body)); len(issues) > 0 {
		return nil, &validationError{issues: issues}
	}
	if in.idx, err = fhir.ExtractIndex(typ, body); err != nil {
		return nil, err
	}
	return in, s.checkIndex(typ, in.idx)
}

// checkIndex refuses a resource whose search index would exceed the
// rows one resource may store.
func (s *Server) checkIndex(typ string, idx *fhir.Index) error {
	if n := s.store.IndexRows(typ, idx); n > s.cfg.Limits.IndexRows {
		return reqErr(errUnprocessable, "too-costly", "the %s would store %d search index rows; at most %d are taken (max_index_rows)", typ, n, s.cfg.Limits.IndexRows)
	}
	return nil
}

func errorsOnly(issues []fhir.Issue) []fhir.Issue {
	for _, is := range issues {
		if isError(is) {
			return issues
		}
	}
	return nil
}
