package disclosure

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
)

// item is one resource version an answer carries (or, denied,
// withholds), with the owner of its key (which names its patient) and the
// consent decision about it.
type item struct {
	owner string
	res   audit.Resource
	// consent is the consent version that decided, "" for the default or
	// for data of no patient; breakGlass marks an emergency permit.
	consent    string
	breakGlass bool
	denied     bool
}

// itemOf is the disclosure of v as served (body: the bytes sent, which
// _summary and _elements may have cut).
func itemOf(v *store.Version, body []byte) item {
	return item{owner: v.Owner, res: audit.ResourceOf(v.Type, v.ID, v.VersionID, body)}
}

// maxResourcesPerRecord keeps a record well inside a C2SP entry's 64 KiB.
const maxResourcesPerRecord = 200

// record appends one disclosure record per patient whose data items
// disclose, and one denial record per patient whose data the consents
// withheld, for the caller in ctx, waits until they are durable, and
// returns the indexes of the disclosure records. Resources of no patient
// (the provider's own) are not disclosures. A patient's resources are
// split over several records only past maxResourcesPerRecord.
func (g *Gate) record(ctx context.Context, interaction string, items []item) ([]int64, error) {
	type group struct {
		patient    string
		denied     bool
		res        []audit.Resource
		consents   []string
		breakGlass bool
	}
	var groups []*group
	byKey := map[[2]string]*group{}
	for _, d := range items {
		id, ok := strings.CutPrefix(d.owner, "Patient/")
		if !ok {
			continue
		}
		kind := "disclosure"
		if d.denied {
			kind = "denial"
		}
		gr := byKey[[2]string{id, kind}]
		if gr == nil {
			gr = &group{patient: id, denied: d.denied}
			byKey[[2]string{id, kind}] = gr
			groups = append(groups, gr)
		}
		gr.res = append(gr.res, d.res)
		if d.breakGlass && g.cfg.OnBreakGlass != nil {
			g.cfg.OnBreakGlass()
		}
		if d.consent != "" && !slices.Contains(gr.consents, d.consent) {
			gr.consents = append(gr.consents, d.consent)
		}
		gr.breakGlass = gr.breakGlass || d.breakGlass
	}
	if len(groups) == 0 {
		return nil, nil
	}
	var used []string
	for _, gr := range groups {
		for _, c := range gr.consents {
			if !slices.Contains(used, c) {
				used = append(used, c)
			}
		}
	}
	anchors, err := g.consentIndexes(ctx, used)
	if err != nil {
		return nil, err
	}
	now := audit.FormatTime(g.now())
	c := CallerOf(ctx)
	var recs []audit.Record
	var disclosures []bool // per record: a disclosure (named in Ledger-Index)
	for _, gr := range groups {
		typ := audit.TypeDisclosure
		if gr.denied {
			typ = audit.TypeDenial
		}
		for start := 0; start < len(gr.res); start += maxResourcesPerRecord {
			recs = append(recs, audit.Record{Type: typ, Time: now, Patient: keys.PatientOwner(gr.patient),
				Recipient: c.Recipient(), Purpose: c.PurposeOfUse(), Interaction: interaction,
				Resources: gr.res[start:min(start+maxResourcesPerRecord, len(gr.res))], Consents: consentRefs(gr.consents, anchors), BreakGlass: gr.breakGlass})
			disclosures = append(disclosures, !gr.denied)
		}
	}
	idx, err := g.ledger.AppendRecords(ctx, recs)
	if err != nil {
		return nil, err
	}
	var out []int64
	for i, n := range idx {
		if disclosures[i] {
			out = append(out, n)
		}
	}
	return out, nil
}

// recordOrRefuse records items, or fails with ErrUnrecorded (logged with
// its cause) when the ledger cannot.
func (g *Gate) recordOrRefuse(ctx context.Context, interaction string, items []item) ([]int64, error) {
	idx, err := g.record(ctx, interaction, items)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, audit.ErrPushback) {
			g.log.Warn("ledger: too many records wait for the sequencer; a disclosure was refused, nothing was sent")
			return nil, &Error{Family: ErrUnrecorded, Msg: "the ledger has too many records to write just now, so no data is sent; retry in a moment"}
		}
		g.log.Error("ledger: a disclosure could not be recorded; nothing was sent", "err", err)
		return nil, &Error{Family: ErrUnrecorded, Msg: "the disclosure could not be recorded in the ledger, so no data is sent; retry later"}
	}
	return idx, nil
}

// WriteInteraction is the ledger's name of a write method's interaction.
func WriteInteraction(method string) string {
	switch method {
	case http.MethodPost:
		return "create"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return "update"
}
