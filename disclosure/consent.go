package disclosure

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/consent"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
)

// How the patients' Consents gate disclosures (docs/consent.md): each
// patient's Consent versions are compiled into a policy, cached, and
// asked about every version of their data an answer would carry.

// policyCacheSize bounds the compiled policies kept in memory.
const policyCacheSize = 100_000

// cachedPolicy is a patient's compiled policy and the Consent versions it
// was compiled from.
type cachedPolicy struct {
	stamp  string
	policy *consent.Policy
}

// stampOf names a set of Consent versions, in order.
func stampOf(versions []store.VersionRef) string {
	var b strings.Builder
	for _, v := range versions {
		b.WriteString(v.ID)
		b.WriteByte('/')
		b.WriteString(strconv.FormatInt(v.VersionID, 10))
		b.WriteByte(',')
	}
	return b.String()
}

// policies returns the consent policy of each patient as of now. One
// query reads which Consent versions each patient has (their key owner is
// the patient); a policy compiled from exactly those versions is used
// from memory, and only patients whose Consents changed (on this replica
// or another sharing the database) are read and compiled again. So a
// decision never uses a Consent that has been replaced, and costs no
// database round trip per resource.
func (g *Gate) policies(ctx context.Context, patients []string) (map[string]*consent.Policy, error) {
	out := make(map[string]*consent.Policy, len(patients))
	if len(patients) == 0 {
		return out, nil
	}
	owners := make([]string, len(patients))
	for i, p := range patients {
		owners[i] = keys.PatientOwner(p)
	}
	current, err := g.store.CurrentOf(ctx, "Consent", owners)
	if err != nil {
		return nil, err
	}
	byPatient := map[string][]store.VersionRef{}
	for _, v := range current {
		p := strings.TrimPrefix(v.Owner, "Patient/")
		byPatient[p] = append(byPatient[p], v.VersionRef)
	}
	var load []store.Key
	var stale []string
	for _, p := range patients {
		if _, done := out[p]; done {
			continue
		}
		if e, ok := g.policyCache.Get(p); ok && e.stamp == stampOf(byPatient[p]) {
			out[p] = e.policy
			continue
		}
		out[p] = nil
		stale = append(stale, p)
		for _, v := range byPatient[p] {
			load = append(load, store.Key{Type: v.Type, ID: v.ID})
		}
	}
	versions, err := g.store.ReadMany(ctx, load)
	if err != nil {
		return nil, err
	}
	read := map[string][]store.Version{}
	for _, v := range versions {
		p := strings.TrimPrefix(v.Owner, "Patient/")
		read[p] = append(read[p], v)
	}
	for _, p := range stale {
		var consents []*consent.Consent
		var refs []store.VersionRef
		for _, v := range read[p] {
			refs = append(refs, store.VersionRef{Type: v.Type, ID: v.ID, VersionID: v.VersionID})
			c, err := consent.Parse(v.Body)
			if err != nil {
				// Stored Consents were checked when written; one that cannot
				// be read now is logged and left out.
				g.log.Error("consent: a stored Consent cannot be read; it decides nothing", "consent", v.Type+"/"+v.ID, "err", err)
				continue
			}
			consents = append(consents, c)
		}
		pol := consent.Compile(p, consents, g.cfg.Consent, g.relatedOf(ctx))
		g.policyCache.Add(p, cachedPolicy{stamp: stampOf(refs), policy: pol})
		out[p] = pol
	}
	return out, nil
}

// relatedOf resolves, while a policy compiles, what a resource named by a
// provision's "related" data refers to.
func (g *Gate) relatedOf(ctx context.Context) consent.Resolver {
	return func(ref string) []string {
		typ, id, ok := strings.Cut(ref, "/")
		if !ok {
			return nil
		}
		v, err := g.store.Read(ctx, typ, id)
		if err != nil {
			return nil
		}
		idx, err := fhir.ExtractIndex(v.Type, v.Body)
		if err != nil {
			return nil
		}
		return references(idx, nil)
	}
}

// references lists the local references of idx ("Type/id"), of the
// parameters in params only when params is not nil.
func references(idx *fhir.Index, params map[string]bool) []string {
	var out []string
	for _, r := range idx.References {
		if r.ID == "" || r.Type == "" || r.URL != "" || (params != nil && !params[r.Param]) {
			continue
		}
		if ref := r.Type + "/" + r.ID; !slices.Contains(out, ref) {
			out = append(out, ref)
		}
	}
	return out
}

// The search parameters a consent reads from a resource: its codes, its
// clinically relevant time, and who authored it.
var (
	consentCodeParams = map[string]bool{"code": true, "category": true, "type": true, "class": true}
	consentDateParams = map[string]bool{"date": true, "onset-date": true, "recorded-date": true, "authoredon": true,
		"issued": true, "effective": true, "period": true, "occurrence": true, "created": true}
	consentAuthorParams = map[string]bool{"author": true, "performer": true, "recorder": true, "asserter": true,
		"requester": true, "attester": true, "participant": true, "practitioner": true}
)

// resourceFacts is what a consent's criteria test of version v.
func resourceFacts(v *store.Version) consent.Resource {
	r := consent.Resource{Type: v.Type, ID: v.ID}
	idx, err := fhir.ExtractIndex(v.Type, v.Body)
	if err != nil {
		return r
	}
	for _, t := range idx.Tokens {
		switch {
		case t.Param == "_security":
			r.Labels = append(r.Labels, consent.Coding{System: t.System, Code: t.Code})
		case consentCodeParams[t.Param] && t.Code != "":
			r.Codes = append(r.Codes, consent.Coding{System: t.System, Code: t.Code})
		}
	}
	for _, u := range idx.URIs {
		if u.Param == "_profile" {
			r.Profiles = append(r.Profiles, u.Value)
		}
	}
	for _, d := range idx.Dates {
		if !consentDateParams[d.Param] {
			continue
		}
		if r.Dates.Start.IsZero() || d.Low.Before(r.Dates.Start) {
			r.Dates.Start = d.Low
		}
		if d.High.After(r.Dates.End) {
			r.Dates.End = d.High
		}
	}
	r.References = references(idx, nil)
	r.Authors = references(idx, consentAuthorParams)
	return r
}

// consentRequest is the request the caller in ctx makes, without its
// resource. It is an emergency access only for the patient focus (break-
// glass reaches one patient per request).
func (g *Gate) consentRequest(ctx context.Context) consent.Request {
	c := CallerOf(ctx)
	req := consent.Request{Actions: []string{"access", "disclose"}, Time: g.now()}
	if c == nil {
		return req
	}
	req.Purpose = c.Purpose
	if c.Claims != nil {
		if c.Claims.Actor != "" {
			req.Actors = append(req.Actors, c.Claims.Actor)
		}
		for _, role := range c.Claims.Roles {
			req.Roles = append(req.Roles, consent.Coding{Code: role})
		}
	}
	return req
}

// verdicts are the consent decisions about what a response would carry:
// the decision about each version permitted, and the versions denied.
type verdicts struct {
	decided map[store.VersionRef]consent.Decision
	denied  []item
	// policies are the patients' policies as read for this request, so
	// that one request reads each patient's Consent versions once.
	policies map[string]*consent.Policy
	// focus is the one patient an emergency access (break-glass) of this
	// answer reaches, "" for none.
	focus string
}

// policiesOf returns the policies of patients, reading those this
// request has not read yet.
func (g *Gate) policiesOf(ctx context.Context, patients []string, v *verdicts) (map[string]*consent.Policy, error) {
	var missing []string
	for _, p := range patients {
		if _, ok := v.policies[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		read, err := g.policies(ctx, missing)
		if err != nil {
			return nil, err
		}
		if v.policies == nil {
			v.policies = map[string]*consent.Policy{}
		}
		for p, pol := range read {
			v.policies[p] = pol
		}
	}
	return v.policies, nil
}

// decide decides each version of patient data in versions against its
// patient's consents for the caller, and returns those permitted, in
// order; into v it notes each decision. Data of no patient, and a
// patient's own data asked by the patient themselves (their own app),
// are not gated.
func (g *Gate) decide(ctx context.Context, versions []store.Version, v *verdicts) ([]store.Version, error) {
	patients := gated(ctx, versions)
	if len(patients) == 0 {
		return versions, nil
	}
	pols, err := g.policiesOf(ctx, patients, v)
	if err != nil {
		return nil, err
	}
	req := g.consentRequest(ctx)
	breakGlass := CallerOf(ctx).breakingGlass()
	if v.decided == nil {
		v.decided = map[store.VersionRef]consent.Decision{}
	}
	out := versions[:0:0]
	for i := range versions {
		ver := &versions[i]
		p := patientOf(ver)
		pol := pols[p]
		if pol == nil {
			out = append(out, *ver)
			continue
		}
		r := req
		r.BreakGlass = breakGlass && p == v.focus
		if pol.Uniform() {
			r.Resource = consent.Resource{Type: ver.Type, ID: ver.ID}
		} else {
			r.Resource = resourceFacts(ver)
		}
		d := pol.Decide(&r)
		ref := store.VersionRef{Type: ver.Type, ID: ver.ID, VersionID: ver.VersionID}
		v.decided[ref] = d
		if !d.Permit {
			v.denied = append(v.denied, item{owner: ver.Owner, res: audit.Resource{Ref: audit.ResourceOf(ver.Type, ver.ID, ver.VersionID, nil).Ref},
				consent: d.Consent, denied: true})
			continue
		}
		out = append(out, *ver)
	}
	return out, nil
}

// gated lists, once each, the patients whose data versions holds and
// whose consents decide it for the caller in ctx: all but the caller
// itself, when it is a patient's own app.
func gated(ctx context.Context, versions []store.Version) []string {
	self := CallerOf(ctx).Self()
	var patients []string
	for i := range versions {
		if p := patientOf(&versions[i]); p != "" && p != self && !slices.Contains(patients, p) {
			patients = append(patients, p)
		}
	}
	return patients
}

// annotate is disclosure d with what v decided about it.
func (v *verdicts) annotate(d item, ver *store.Version) item {
	if dec, ok := v.decided[store.VersionRef{Type: ver.Type, ID: ver.ID, VersionID: ver.VersionID}]; ok {
		d.consent, d.breakGlass = dec.Consent, dec.BreakGlass
	}
	return d
}

// consentIndexes returns the ledger index of the consent record of each
// Consent version named (Consent/id/_history/n). A version written a
// moment ago may wait for the sequencer's next batch: its index is
// awaited for up to a second, then left out.
func (g *Gate) consentIndexes(ctx context.Context, refs []string) (map[string]int64, error) {
	out := map[string]int64{}
	if len(refs) == 0 {
		return out, nil
	}
	versions := make([]store.VersionRef, 0, len(refs))
	names := map[store.VersionRef]string{}
	for _, ref := range refs {
		v, ok := SplitVersionRef(ref)
		if !ok {
			continue
		}
		versions = append(versions, v)
		names[v] = ref
	}
	for wait := 0; ; wait++ {
		found, err := g.store.WrittenIndexes(ctx, versions)
		if err != nil {
			return nil, err
		}
		for v, idx := range found {
			out[names[v]] = idx
		}
		if len(out) == len(versions) || wait == 40 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// consentRefs are the consent versions refs, with the indexes known.
func consentRefs(refs []string, indexes map[string]int64) []audit.ConsentRef {
	out := make([]audit.ConsentRef, len(refs))
	for i, ref := range refs {
		out[i] = audit.ConsentRef{Ref: ref}
		if idx, ok := indexes[ref]; ok {
			out[i].Index = &idx
		}
	}
	return out
}

// SplitVersionRef splits "Type/id/_history/vid".
func SplitVersionRef(ref string) (store.VersionRef, bool) {
	parts := strings.Split(ref, "/")
	if len(parts) != 4 || parts[2] != "_history" {
		return store.VersionRef{}, false
	}
	vid, err := strconv.ParseInt(parts[3], 10, 64)
	return store.VersionRef{Type: parts[0], ID: parts[1], VersionID: vid}, err == nil
}

// LabelRule labels, when they are written, the resources that carry one
// of Codes (among their code, category, type and class values) with the
// security label Label.
type LabelRule struct {
	Codes []consent.Coding
	Label consent.Coding
}

// Label adds the security labels the configured rules give a resource
// about to be written, to its body and its index.
func (g *Gate) Label(res *fhir.Resource, idx *fhir.Index) {
	if len(g.cfg.Labels) == 0 || idx == nil {
		return
	}
	for _, rule := range g.cfg.Labels {
		hit := slices.ContainsFunc(idx.Tokens, func(t fhir.TokenEntry) bool {
			return consentCodeParams[t.Param] && slices.ContainsFunc(rule.Codes, func(c consent.Coding) bool {
				return c.Code == t.Code && (c.System == "" || c.System == t.System)
			})
		})
		if hit && res.AddSecurity(rule.Label.System, rule.Label.Code) {
			idx.Tokens = append(idx.Tokens, fhir.TokenEntry{Param: "_security", System: rule.Label.System, Code: rule.Label.Code})
		}
	}
}
