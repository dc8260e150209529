package disclosure

import (
	"context"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
)

// The ledger's view of a patient (GET /AuditEvent?patient=...) says who
// saw their data, when and why: it is their data too. It is shown to the
// patient's own app, to the provider's administrators (the compliance
// office), and to anyone else whose scopes reach it only as the
// patient's consent permits, and every view is recorded.

// Derived is a resource the server builds for an answer (an AuditEvent
// made from a ledger record), not one it stores.
type Derived struct {
	Type, ID string
	Body     []byte
}

// AuditTrail adds, in mode "match", what list builds of the ledger's
// records about patient, once the caller may see them. A caller whose
// scopes do not reach AuditEvents about the patient, or whom the
// patient's consent does not permit to see them, is refused with
// ErrForbidden (a denial is recorded).
func (r *Response) AuditTrail(ctx context.Context, patient string, list func(patient string) ([]Derived, error)) error {
	if err := mayListRecords(ctx, patient); err != nil {
		return err
	}
	if c := CallerOf(ctx); !c.Admin() && c.Self() != patient {
		r.v.focus = patient
		probe := store.Version{Type: "AuditEvent", Owner: keys.PatientOwner(patient)}
		permitted, err := r.g.decide(ctx, []store.Version{probe}, &r.v)
		if err != nil {
			return err
		}
		if len(permitted) == 0 {
			for i := range r.v.denied {
				r.v.denied[i].res = audit.Resource{Ref: "AuditEvent?patient"}
			}
			return r.refuse(ctx)
		}
	}
	derived, err := list(patient)
	if err != nil {
		return err
	}
	for _, d := range derived {
		r.add(&store.Version{Type: d.Type, ID: d.ID, VersionID: 1, Owner: keys.PatientOwner(patient), Body: d.Body}, "match", true)
	}
	return nil
}

// mayListRecords checks that the caller may search AuditEvents about
// patient: an unconstrained scope, or a patient scope of that patient.
// A query constraint on AuditEvent cannot be applied to the ledger's
// view and grants nothing here.
func mayListRecords(ctx context.Context, patient string) error {
	rc, err := reachOf(ctx, "AuditEvent", auth.SearchType)
	if err != nil || rc.all {
		return err
	}
	for _, rule := range rc.rules {
		if rule.Context == auth.Patient && rule.Query == nil && rc.patient == patient {
			return nil
		}
	}
	return forbidden("the access token's scopes do not reach the ledger's records about this patient")
}
