package audit

import (
	"context"
	"log/slog"

	"github.com/ehrledger/ehrledger/store"
)

// EvidenceStore keeps evidence against peers' logs.
type EvidenceStore interface {
	AddEvidence(ctx context.Context, e store.Evidence) error
}

// KeepEvidence keeps e, two checkpoints of a peer's log that cannot both
// be true, and raises the alarm; onKept, when set, is called once it is
// stored. The log is untrusted from then on (store.Untrusted) until an
// operator clears the evidence. Both the witness and the mirror find such
// pairs (docs/peers.md).
func KeepEvidence(ctx context.Context, st EvidenceStore, logger *slog.Logger, e store.Evidence, onKept func(origin string)) {
	logger.Error("ALARM: a peer's log signed checkpoints that cannot both be true; it is untrusted until an operator acts", "origin", e.Origin, "reason", e.Reason)
	if err := st.AddEvidence(context.WithoutCancel(ctx), e); err != nil {
		logger.Error("the evidence could not be stored", "origin", e.Origin, "err", err)
		return
	}
	if onKept != nil {
		onKept(e.Origin)
	}
}
