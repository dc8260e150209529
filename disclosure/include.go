package disclosure

import (
	"context"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/store"
)

// Bounds on what one search answer may pull in through _include and
// _revinclude.
const (
	maxIncludeRounds = 4
	maxIncluded      = 1000
)

// Include adds, in mode "include", what q's _include and _revinclude
// bring from the matches added so far, repeating the :iterate ones over
// what was added, within maxIncludeRounds and maxIncluded. What each
// round finds is kept, and followed further, only where the caller's
// read scope reaches it and its patient's consent permits.
func (r *Response) Include(ctx context.Context, q *fhir.SearchQuery) error {
	if len(q.Include) == 0 && len(q.RevInclude) == 0 {
		return nil
	}
	from := r.matches
	included := 0
	for round := 0; round < maxIncludeRounds && len(from) > 0 && included < maxIncluded; round++ {
		var found []store.Key
		for _, inc := range q.Include {
			if round > 0 && !inc.Iterate {
				continue
			}
			// At most what is left to include, besides what the answer
			// holds already (which the rows found may name again).
			keys, err := r.g.store.References(ctx, keysOfType(from, inc.SourceType), inc.Param, inc.TargetType, maxIncluded-included+len(r.seen))
			if err != nil {
				return err
			}
			found = append(found, keys...)
		}
		for _, inc := range q.RevInclude {
			if round > 0 && !inc.Iterate {
				continue
			}
			keys, err := r.g.store.Referrers(ctx, from, inc.SourceType, inc.Param, maxIncluded-included+len(r.seen))
			if err != nil {
				return err
			}
			found = append(found, keys...)
		}
		var fresh []store.Key
		for _, k := range found {
			if !r.seen[k] && included+len(fresh) < maxIncluded {
				r.seen[k] = true
				fresh = append(fresh, k)
			}
		}
		versions, err := r.readChecked(ctx, fresh)
		if err != nil {
			return err
		}
		included += len(versions)
		from = nil
		for i := range versions {
			v := &versions[i]
			r.add(v, "include", true)
			from = append(from, store.Key{Type: v.Type, ID: v.ID})
		}
	}
	return nil
}

// readChecked reads the live resources among keys and keeps, in order,
// those the caller's read scope reaches and the consents permit.
func (r *Response) readChecked(ctx context.Context, keys []store.Key) ([]store.Version, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	versions, err := r.g.store.ReadMany(ctx, keys)
	if err != nil {
		return nil, err
	}
	if versions, err = r.g.visible(ctx, auth.Read, versions); err != nil {
		return nil, err
	}
	return r.g.decide(ctx, versions, &r.v)
}

func keysOfType(keys []store.Key, typ string) []store.Key {
	var out []store.Key
	for _, k := range keys {
		if k.Type == typ {
			out = append(out, k)
		}
	}
	return out
}
