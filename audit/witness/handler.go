package witness

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ServeHTTP is C2SP tlog-witness's POST /add-checkpoint: the body is a
// request (the old size, a consistency proof, the checkpoint), the answer
// the cosignature lines, or a status with a plain-text reason: 409 with
// text/x.tlog.size and the size last cosigned, 404 for a log it does not
// witness, 403 for a bad signature or an untrusted log, 422 for a proof
// that does not hold, 400 for a malformed request, 413 for one too large,
// 503 when its state could not be stored.
func (w *Witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		http.Error(rw, "add-checkpoint takes a POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxRequest))
	if err != nil {
		http.Error(rw, fmt.Sprintf("the request body is over %d bytes or could not be read", MaxRequest), http.StatusRequestEntityTooLarge)
		return
	}
	sig, err := w.Add(r.Context(), body)
	var refused *Error
	switch {
	case errors.As(err, &refused) && refused.Status == http.StatusConflict:
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", refused.Size)
	case errors.As(err, &refused):
		http.Error(rw, refused.Msg, refused.Status)
	case err != nil:
		w.log.Error("witness: add-checkpoint failed", "err", err)
		http.Error(rw, "the witness could not store its state; try again", http.StatusServiceUnavailable)
	default:
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.Write(sig)
	}
}
