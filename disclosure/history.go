package disclosure

import (
	"context"
	"errors"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/store"
)

// History adds one page of q's history, newest first, as the caller may
// see it with interaction in (history-instance, -type or -system): count
// versions at most, those its scopes reach and the patients' consents
// permit (erased versions never), and returns the cursor of the next page
// ("" when nothing visible follows), so that what is left out shows in
// neither the page's size nor its links. A resource's history is refused
// as its read would be when the caller may not see the resource as it is
// now; an emergency access reaches one resource's history only.
func (r *Response) History(ctx context.Context, q store.HistoryQuery, count int, in auth.Interaction) (string, error) {
	typ := q.Type
	if typ == "" {
		typ = "*"
	}
	if err := Reach(ctx, typ, in); err != nil {
		return "", err
	}
	if q.ID != "" {
		cur, err := r.g.store.Read(ctx, q.Type, q.ID)
		switch {
		case err == nil:
			// The resource as it is now decides, as for a read.
			if err := r.g.checkVisible(ctx, in, cur); err != nil {
				return "", err
			}
			r.v.focus = patientOf(cur)
		case !errors.Is(err, store.ErrDeleted):
			return "", err // 404 for a resource that never existed; a deleted one has history
		}
	} else if CallerOf(ctx).breakingGlass() {
		return "", forbidden("break-glass access reaches one patient: ask for one resource's history")
	}
	shown, next, err := r.g.historyPage(ctx, q, count, in, &r.v)
	if err != nil {
		return "", err
	}
	for i := range shown {
		r.add(&shown[i], "", true)
	}
	return next, nil
}

// historyPage reads versions past q.After, newest first, until it holds
// one more than count that the caller may see (scopes, consents; erased
// versions never), or the history ends, or maxGatedScan were read. It
// returns the page and the cursor of the next one, "" when nothing
// visible follows.
func (g *Gate) historyPage(ctx context.Context, q store.HistoryQuery, count int, in auth.Interaction, v *verdicts) ([]store.Version, string, error) {
	if count == 0 {
		return nil, "", nil
	}
	var shown []store.Version
	for scanned := 0; ; {
		q.Limit = count + 1
		versions, err := g.store.History(ctx, q)
		if err != nil {
			return nil, "", err
		}
		scanned += len(versions)
		keep, err := g.visible(ctx, in, versions)
		if err != nil {
			return nil, "", err
		}
		if keep, err = g.decide(ctx, keep, v); err != nil {
			return nil, "", err
		}
		for _, ver := range keep {
			if !ver.Erased { // its data is gone
				shown = append(shown, ver)
			}
		}
		if len(shown) > count {
			shown = shown[:count]
			return shown, store.CursorOf(&shown[count-1]).String(), nil
		}
		if len(versions) < q.Limit {
			return shown, "", nil
		}
		q.After = store.CursorOf(&versions[len(versions)-1])
		if scanned >= maxGatedScan {
			return shown, q.After.String(), nil
		}
	}
}
