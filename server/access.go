package server

import (
	"net/http"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/go-chi/chi/v5"
)

// scoped refuses a write the caller's scopes cannot allow on the URL's
// type before its body is read; the gate checks the resources themselves
// (disclosure.WriteTx).
func scoped(in auth.Interaction, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := disclosure.Reach(r.Context(), chi.URLParam(r, "type"), in); err != nil {
			return err
		}
		return h(w, r)
	}
}
