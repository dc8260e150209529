package disclosure

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
)

// Bulk Data export reads through the gate like a search of each type it
// covers, batch by batch (docs/export.md).

// exportReadChunk bounds the resources read and decided at once (a power
// of two: readChunks).
const exportReadChunk = 512

// ExportSpec is what an export reads: the types, the resources last
// updated after Since (zero: any time), and per type the queries
// (_typeFilter) one of which a resource must meet.
type ExportSpec struct {
	Types   []string
	Since   time.Time
	Filters map[string][]url.Values
}

// ExportPatients exports the data of owners (patients' key owners) that
// the caller may see: sink receives each version its search scope
// reaches, its filters select and its patient's consent permits. Then,
// before it returns, the ledger records one disclosure per patient (and
// one denial per patient with data withheld), durably: what sink
// received counts as disclosed only once ExportPatients returned nil.
func (g *Gate) ExportPatients(ctx context.Context, owners []string, spec ExportSpec, sink func(*store.Version) error) error {
	ks, err := g.store.OwnedKeys(ctx, owners, spec.Types, spec.Since)
	if err != nil {
		return err
	}
	var v verdicts
	var items []item
	for _, chunk := range readChunks(ks) {
		versions, err := g.exportRead(ctx, chunk, spec.Filters)
		if err != nil {
			return err
		}
		if versions, err = g.decide(ctx, versions, &v); err != nil {
			return err
		}
		for i := range versions {
			ver := &versions[i]
			items = append(items, v.annotate(itemOf(ver, ver.Body), ver))
			if err := sink(ver); err != nil {
				return err
			}
		}
	}
	_, err = g.recordOrRefuse(ctx, "export", append(items, v.denied...))
	return err
}

// ExportProvider exports up to limit of the provider's own resources
// (no patient's data) after the resource after, by type and id: sink
// receives those the caller's search scope reaches and the filters
// select. It returns the last resource looked at, the zero Key when none
// is left.
func (g *Gate) ExportProvider(ctx context.Context, after store.Key, limit int, spec ExportSpec, sink func(*store.Version) error) (store.Key, error) {
	ks, err := g.store.OwnerKeys(ctx, keys.ProviderOwner, spec.Types, spec.Since, after, limit)
	if err != nil || len(ks) == 0 {
		return store.Key{}, err
	}
	versions, err := g.exportRead(ctx, ks, spec.Filters)
	if err != nil {
		return store.Key{}, err
	}
	for i := range versions {
		if err := sink(&versions[i]); err != nil {
			return store.Key{}, err
		}
	}
	return ks[len(ks)-1], nil
}

// readChunks splits ks into chunks of one type each, of at most
// exportReadChunk keys, each padded with its last key to a power of two:
// a read then takes one of a few SQL shapes, which the database driver
// prepares once, rather than a new statement per chunk.
func readChunks(ks []store.OwnedKey) [][]store.Key {
	byType := map[string][]store.Key{}
	var types []string
	for _, k := range ks {
		if byType[k.Type] == nil {
			types = append(types, k.Type)
		}
		byType[k.Type] = append(byType[k.Type], k.Key)
	}
	slices.Sort(types)
	var out [][]store.Key
	for _, t := range types {
		all := byType[t]
		for start := 0; start < len(all); start += exportReadChunk {
			chunk := slices.Clip(all[start:min(start+exportReadChunk, len(all))]) // padding must not overwrite the next chunk
			padded := 1
			for padded < len(chunk) {
				padded *= 2
			}
			for len(chunk) < min(padded, exportReadChunk) {
				chunk = append(chunk, chunk[len(chunk)-1])
			}
			out = append(out, chunk)
		}
	}
	return out
}

// exportRead reads the current versions of ks and keeps those the
// caller's search scope reaches and the filters select.
func (g *Gate) exportRead(ctx context.Context, ks []store.Key, filters map[string][]url.Values) ([]store.Version, error) {
	versions, err := g.store.ReadMany(ctx, ks)
	if err != nil {
		return nil, err
	}
	if versions, err = g.visible(ctx, auth.SearchType, versions); err != nil {
		return nil, err
	}
	if len(filters) == 0 {
		return versions, nil
	}
	ids := map[string][]string{}
	for _, v := range versions {
		if filters[v.Type] != nil {
			ids[v.Type] = append(ids[v.Type], v.ID)
		}
	}
	selected := map[store.Key]bool{}
	for typ, list := range ids {
		for _, raw := range filters[typ] {
			// A filter is a client's criteria: its chains and _has reach
			// only what the caller could read (criteria.go).
			q, err := fhir.ParseSearch(typ, raw, fhir.SearchOptions{Strict: true})
			if err != nil {
				return nil, err
			}
			if nothing, err := g.resolveCriteria(ctx, q); err != nil {
				return nil, err
			} else if nothing {
				continue
			}
			m, err := g.matchIDs(ctx, q, list)
			if err != nil {
				return nil, err
			}
			for id := range m {
				selected[store.Key{Type: typ, ID: id}] = true
			}
		}
	}
	return slices.DeleteFunc(versions, func(v store.Version) bool {
		return filters[v.Type] != nil && !selected[store.Key{Type: v.Type, ID: v.ID}]
	}), nil
}

// GroupMembers returns the key owners of the active Patient members of
// Group/id, sorted, for an export of the group: the caller's read scope
// must reach the Group and the consent of the patient whose data it is
// permit the caller to see it (else ErrForbidden, the denial recorded).
// The Group itself is not disclosed.
func (g *Gate) GroupMembers(ctx context.Context, id string) ([]string, error) {
	r := g.Respond("export", nil)
	if _, err := r.Read(ctx, "Group", id); err != nil {
		return nil, err
	}
	body := r.entries[0].v.Body
	var group struct {
		Member []struct {
			Entity   struct{ Reference string } `json:"entity"`
			Inactive bool                       `json:"inactive"`
		} `json:"member"`
	}
	if err := json.Unmarshal(body, &group); err != nil {
		return nil, fmt.Errorf("disclosure: stored Group/%s: %w", id, err)
	}
	var members []string
	for _, m := range group.Member {
		if p, ok := strings.CutPrefix(m.Entity.Reference, "Patient/"); ok && !m.Inactive && p != "" {
			members = append(members, keys.PatientOwner(p))
		}
	}
	slices.Sort(members)
	return slices.Compact(members), nil
}
