package disclosure

import (
	"context"
	"errors"
	"testing"

	"github.com/ehrledger/ehrledger/auth"
)

// TestNoCallerReachesNothing checks that the scope checks fail closed: a
// request that did not pass through authenticate (a route mounted by
// mistake outside it) is allowed nothing, while one served with
// authentication off is allowed everything.
func TestNoCallerReachesNothing(t *testing.T) {
	for _, in := range []auth.Interaction{auth.Read, auth.SearchType, auth.Create, auth.Delete, auth.HistorySystem} {
		if _, err := reachOf(context.Background(), "Patient", in); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s without a caller: %v, want forbidden", in, err)
		}
	}
	if (*Caller)(nil).Admin() {
		t.Error("no caller is an administrator")
	}
	open := WithCaller(context.Background(), &Caller{Open: true})
	rc, err := reachOf(open, "Patient", auth.Delete)
	if err != nil || !rc.all {
		t.Errorf("authentication off: %+v %v", rc, err)
	}
}
