package server

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/consent"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/store"
)

// Consents (docs/consent.md): who may write them, how they are read into
// each patient's policy, and how the policy gates disclosures.

// checkConsentWrite refuses a Consent write the consent engine could not
// read (422), and one made by anybody but the patient it is about, with a
// token of their own (their app, or an authorised representative's
// client registered for them), or an administrator (403). Both the
// version written and the one it replaces must be that patient's.
func checkConsentWrite(ctx context.Context, op *writeOp, ch change) error {
	if op.typ != "Consent" {
		return nil
	}
	var patients []string
	for _, v := range []*store.Version{ch.cur, ch.v} {
		if v == nil || v.Deleted || len(v.Body) == 0 {
			continue
		}
		c, err := consent.Parse(v.Body)
		switch {
		case err != nil && v == ch.v:
			return reqErr(errUnprocessable, "business-rule", "the consent engine cannot read this Consent: %v", err)
		case err != nil:
			patients = append(patients, "") // an unreadable stored one: the administrator's to replace
		default:
			patients = append(patients, c.Patient)
		}
	}
	c := callerOf(ctx)
	if c.admin() {
		return nil
	}
	if p := c.patient(); p != "" && len(patients) > 0 && !slices.ContainsFunc(patients, func(q string) bool { return q != p }) {
		return nil
	}
	return forbidden("a Consent may be written only by the patient it is about, with their own token, or by an administrator")
}

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
func (s *Server) policies(ctx context.Context, patients []string) (map[string]*consent.Policy, error) {
	out := make(map[string]*consent.Policy, len(patients))
	if len(patients) == 0 {
		return out, nil
	}
	owners := make([]string, len(patients))
	for i, p := range patients {
		owners[i] = "Patient/" + p
	}
	current, err := s.store.CurrentOf(ctx, "Consent", owners)
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
		if e, ok := s.policyCache.Get(p); ok && e.stamp == stampOf(byPatient[p]) {
			out[p] = e.policy
			continue
		}
		out[p] = nil
		stale = append(stale, p)
		for _, v := range byPatient[p] {
			load = append(load, store.Key{Type: v.Type, ID: v.ID})
		}
	}
	versions, err := s.store.ReadMany(ctx, load)
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
				s.log.Error("consent: a stored Consent cannot be read; it decides nothing", "consent", v.Type+"/"+v.ID, "err", err)
				continue
			}
			consents = append(consents, c)
		}
		pol := consent.Compile(p, consents, s.cfg.Consent, s.relatedOf(ctx))
		s.policyCache.Add(p, cachedPolicy{stamp: stampOf(refs), policy: pol})
		out[p] = pol
	}
	return out, nil
}

// relatedOf resolves, while a policy compiles, what a resource named by a
// provision's "related" data refers to.
func (s *Server) relatedOf(ctx context.Context) consent.Resolver {
	return func(ref string) []string {
		typ, id, ok := strings.Cut(ref, "/")
		if !ok {
			return nil
		}
		v, err := s.store.Read(ctx, typ, id)
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

// consentRequest is the request the caller makes, without its resource.
func (s *Server) consentRequest(ctx context.Context) consent.Request {
	c := callerOf(ctx)
	req := consent.Request{Actions: []string{"access", "disclose"}, Time: s.now()}
	if c == nil {
		return req
	}
	req.Purpose = c.purpose
	req.BreakGlass = c.purpose == PurposeBreakGlass && c.breakGlass != ""
	if c.claims != nil {
		if c.claims.Actor != "" {
			req.Actors = append(req.Actors, c.claims.Actor)
		}
		for _, role := range c.claims.Roles {
			req.Roles = append(req.Roles, consent.Coding{Code: role})
		}
	}
	return req
}

// verdicts are the consent decisions about what a response would carry:
// the decision about each version permitted, and the versions denied.
type verdicts struct {
	decided map[store.VersionRef]consent.Decision
	denied  []disclosure
	// policies are the patients' policies as read for this request, so
	// that one request reads each patient's Consent versions once.
	policies map[string]*consent.Policy
}

// policiesOf returns the policies of patients, reading those this
// request has not read yet.
func (s *Server) policiesOf(ctx context.Context, patients []string, v *verdicts) (map[string]*consent.Policy, error) {
	var missing []string
	for _, p := range patients {
		if _, ok := v.policies[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		read, err := s.policies(ctx, missing)
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

// gate decides each version of patient data in versions against its
// patient's consents for the caller, and returns those permitted, in
// order; into v it notes each decision. Data of no patient, and a
// patient's own data asked by the patient themselves (their own app),
// are not gated.
func (s *Server) gate(ctx context.Context, versions []store.Version, v *verdicts) ([]store.Version, error) {
	self := selfPatient(ctx)
	var patients []string
	for i := range versions {
		if p, ok := strings.CutPrefix(versions[i].Owner, "Patient/"); ok && p != self && !slices.Contains(patients, p) {
			patients = append(patients, p)
		}
	}
	if len(patients) == 0 {
		return versions, nil
	}
	pols, err := s.policiesOf(ctx, patients, v)
	if err != nil {
		return nil, err
	}
	req := s.consentRequest(ctx)
	if v.decided == nil {
		v.decided = map[store.VersionRef]consent.Decision{}
	}
	out := versions[:0:0]
	for i := range versions {
		ver := &versions[i]
		pol := pols[strings.TrimPrefix(ver.Owner, "Patient/")]
		if pol == nil {
			out = append(out, *ver)
			continue
		}
		r := req
		if pol.Uniform() {
			r.Resource = consent.Resource{Type: ver.Type, ID: ver.ID}
		} else {
			r.Resource = resourceFacts(ver)
		}
		d := pol.Decide(&r)
		ref := store.VersionRef{Type: ver.Type, ID: ver.ID, VersionID: ver.VersionID}
		v.decided[ref] = d
		if !d.Permit {
			v.denied = append(v.denied, disclosure{owner: ver.Owner, res: audit.Resource{Ref: audit.ResourceOf(ver.Type, ver.ID, ver.VersionID, nil).Ref},
				consent: d.Consent, denied: true})
			continue
		}
		out = append(out, *ver)
	}
	return out, nil
}

// annotate is disclosure d with what v decided about it.
func (v *verdicts) annotate(d disclosure, ver *store.Version) disclosure {
	if dec, ok := v.decided[store.VersionRef{Type: ver.Type, ID: ver.ID, VersionID: ver.VersionID}]; ok {
		d.consent, d.breakGlass = dec.Consent, dec.BreakGlass
	}
	return d
}

// withDenials is items followed by the denials of v.
func (v *verdicts) withDenials(items []disclosure) []disclosure {
	return append(items, v.denied...)
}

// gateOne decides the disclosure of one version, as a read or vread: a
// denial is recorded in the ledger and answered 403 with nothing of the
// data; a permit comes back as the disclosure to record.
func (s *Server) gateOne(w http.ResponseWriter, r *http.Request, interaction string, v *store.Version) (disclosure, error) {
	var verdicts verdicts
	permitted, err := s.gate(r.Context(), []store.Version{*v}, &verdicts)
	if err != nil {
		return disclosure{}, err
	}
	if len(permitted) == 0 {
		if err := s.disclose(w, r, interaction, verdicts.denied); err != nil {
			return disclosure{}, err
		}
		return disclosure{}, forbidden("the patient's consent does not permit this disclosure")
	}
	return verdicts.annotate(disclosureOf(v, v.Body), v), nil
}

// consentIndexes returns the ledger index of the consent record of each
// Consent version named (Consent/id/_history/n). A version written a
// moment ago may wait for the sequencer's next batch: its index is
// awaited for up to a second, then left out.
func (s *Server) consentIndexes(ctx context.Context, refs []string) (map[string]int64, error) {
	out := map[string]int64{}
	if len(refs) == 0 {
		return out, nil
	}
	versions := make([]store.VersionRef, 0, len(refs))
	names := map[store.VersionRef]string{}
	for _, ref := range refs {
		v, ok := splitVersionRef(ref)
		if !ok {
			continue
		}
		versions = append(versions, v)
		names[v] = ref
	}
	for wait := 0; ; wait++ {
		found, err := s.store.ConsentIndexes(ctx, versions)
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

// LabelRule labels, when they are written, the resources that carry one
// of Codes (among their code, category, type and class values) with the
// security label Label.
type LabelRule struct {
	Codes []consent.Coding
	Label consent.Coding
}

// labelOnWrite adds the security labels the configured rules give a
// resource about to be written, to its body and its index.
func (s *Server) labelOnWrite(in *incoming) {
	if len(s.cfg.Labels) == 0 || in.idx == nil {
		return
	}
	for _, rule := range s.cfg.Labels {
		hit := slices.ContainsFunc(in.idx.Tokens, func(t fhir.TokenEntry) bool {
			return consentCodeParams[t.Param] && slices.ContainsFunc(rule.Codes, func(c consent.Coding) bool {
				return c.Code == t.Code && (c.System == "" || c.System == t.System)
			})
		})
		if hit && in.res.AddSecurity(rule.Label.System, rule.Label.Code) {
			in.idx.Tokens = append(in.idx.Tokens, fhir.TokenEntry{Param: "_security", System: rule.Label.System, Code: rule.Label.Code})
		}
	}
}
