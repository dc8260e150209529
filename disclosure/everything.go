package disclosure

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
)

// EverythingQuery asks for one page of a patient's $everything.
type EverythingQuery struct {
	// Types are the resource types asked for (_type), nil for every
	// type of patient data.
	Types []string
	// Since keeps the resources last updated after it (zero: any time).
	Since time.Time
	// Count is the page size; Page the cursor of the page ("" for the
	// first).
	Count int
	Page  string
}

// Everything adds one page of Patient/id/$everything, in mode "match":
// the patient's data (every resource their data key seals, keys.OwnerOf)
// of the types the caller may search in a compartment, by type and id,
// that the caller may see; then, in mode "include", the resources the
// page refers to that are no patient's data (practitioners,
// organizations, medications...), once. It returns the cursor of the
// next page, "" when nothing visible follows.
func (r *Response) Everything(ctx context.Context, id string, q EverythingQuery) (string, error) {
	if err := Reach(ctx, "Patient", auth.SearchCompartment); err != nil {
		return "", err
	}
	patient, err := r.g.store.Read(ctx, "Patient", id)
	if err != nil {
		return "", err
	}
	if err := r.g.checkVisible(ctx, auth.SearchCompartment, patient); err != nil {
		return "", err
	}
	r.v.focus = id
	var types []string
	for _, t := range fhir.PatientDataTypes() {
		if (q.Types == nil || slices.Contains(q.Types, t)) && Reach(ctx, t, auth.SearchCompartment) == nil {
			types = append(types, t)
		}
	}
	after, err := parseKeyCursor(q.Page)
	if err != nil {
		return "", err
	}
	// The page is filled with what the caller may see, one more than it
	// holds telling whether a next page has any.
	var shown []store.Version
	next := ""
	for budget := maxGatedScan; len(shown) <= q.Count; {
		if budget <= 0 {
			next = keyCursor(after)
			break
		}
		ks, err := r.g.store.OwnerKeys(ctx, keys.PatientOwner(id), types, q.Since, after, min(q.Count+1, budget))
		if err != nil {
			return "", err
		}
		if len(ks) == 0 {
			break
		}
		budget -= len(ks)
		after = ks[len(ks)-1]
		versions, err := r.g.store.ReadMany(ctx, ks)
		if err != nil {
			return "", err
		}
		if versions, err = r.g.visible(ctx, auth.SearchCompartment, versions); err != nil {
			return "", err
		}
		if versions, err = r.g.decide(ctx, versions, &r.v); err != nil {
			return "", err
		}
		shown = append(shown, versions...)
	}
	if len(shown) > q.Count {
		shown = shown[:q.Count]
		last := shown[len(shown)-1]
		next = keyCursor(store.Key{Type: last.Type, ID: last.ID})
	}
	for i := range shown {
		v := &shown[i]
		r.add(v, "match", true)
		r.matches = append(r.matches, store.Key{Type: v.Type, ID: v.ID})
	}
	// Resources the page refers to that are no patient's data come along
	// once.
	refs, err := r.g.store.References(ctx, r.matches, "*", "", maxIncluded+len(r.seen))
	if err != nil {
		return "", err
	}
	var extra []store.Key
	for _, k := range refs {
		if !r.seen[k] && !fhir.PatientData(k.Type) {
			r.seen[k] = true
			extra = append(extra, k)
		}
	}
	versions, err := r.readChecked(ctx, extra)
	if err != nil {
		return "", err
	}
	for i := range versions {
		r.add(&versions[i], "include", true)
	}
	return next, nil
}

// keyCursor is the cursor of a listing by type and id that goes on after
// k.
func keyCursor(k store.Key) string {
	return base64.RawURLEncoding.EncodeToString([]byte(k.Type + "/" + k.ID))
}

func parseKeyCursor(page string) (store.Key, error) {
	if page == "" {
		return store.Key{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(page)
	if err == nil {
		if typ, id, ok := strings.Cut(string(raw), "/"); ok && fhir.IsResourceType(typ) && id != "" {
			return store.Key{Type: typ, ID: id}, nil
		}
	}
	return store.Key{}, invalid("malformed paging cursor; start again")
}
