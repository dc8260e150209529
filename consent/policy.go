package consent

import (
	"slices"
	"sort"
	"time"
)

// Request is what a decision is asked about.
type Request struct {
	// Actors are the FHIR references the caller is or acts for
	// ("Organization/clinic", "Practitioner/7").
	Actors []string
	// Roles are the caller's roles; a role without a system matches a
	// provision's role of the same code in any system.
	Roles []Coding
	// Purpose is the v3 ActReason code of the request's purpose of use.
	Purpose string
	// BreakGlass says the purpose is ETREAT and a reason was given.
	BreakGlass bool
	// Actions are the consent actions the request performs (consentaction:
	// access, disclose, use, collect, correct); a read by another party is
	// access and disclose.
	Actions []string
	// Resource is what would be disclosed.
	Resource Resource
	// Time is when the request is decided.
	Time time.Time
}

// Resource is what a provision's criteria test of a resource.
type Resource struct {
	Type, ID string
	Profiles []string
	// Labels are its meta.security labels.
	Labels []Coding
	// Codes are the codes it is about (its code, category... as the server
	// indexes them).
	Codes []Coding
	// Dates is the clinically relevant time of the data; zero when none.
	Dates Period
	// References are the resources it refers to ("Type/id"); Authors those
	// of them that authored it.
	References, Authors []string
}

func (r *Resource) ref() string { return r.Type + "/" + r.ID }

// Decision is the answer to a Request.
type Decision struct {
	Permit bool
	// Consent is the consent version that decided
	// (Consent/id/_history/version); empty when Config.Default did.
	Consent string
	// BreakGlass says only break-glass permitted it.
	BreakGlass bool
	// Reason says in a few words why, for logs and OperationOutcomes.
	Reason string
}

// Config is the policy of the provider and its jurisdiction.
type Config struct {
	// Default decides when no consent applies: Permit (opt-out) or Deny
	// (opt-in, the zero value's meaning).
	Default Effect
	// ExplicitPurposes are purposes of use that only a provision naming
	// them (or a purpose they specialise) may permit: "always deny
	// research without explicit permit" is ExplicitPurposes: [HRESCH].
	ExplicitPurposes []string
	// Redact are security labels whose resources are left out of what a
	// permit discloses, unless a provision on the way to the one that
	// permitted names the label: sensitive data (R, or a sensitivity such
	// as HIV or ETH) needs a consent that speaks of it.
	Redact []Coding
}

// Resolver returns the references of the resource ref names, for
// provisions whose data meaning is "related"; nil treats "related" as
// "instance".
type Resolver func(ref string) []string

// Policy is one patient's consents compiled into a decision function. It
// is immutable and safe for concurrent use.
type Policy struct {
	patient  string
	consents []*compiled // applicable ones, newest first
	def      Effect
	explicit []string
	redact   codeSet
}

type compiled struct {
	ref  string
	root *node
}

// node is a provision with its criteria as sets.
type node struct {
	effect   Effect // resolved: a provision without type has its parent's
	period   Period
	actors   []actorMatch
	actions  codeSet
	labels   codeSet
	purposes []string // as named (a purpose matches its specialisations)
	// named are the purposes named by this provision and its ancestors,
	// namedLabels the security labels.
	named       []string
	namedLabels []Coding
	classes     codeSet
	codes       codeSet
	dataPeriod  Period
	data        []dataMatch
	children    []*node
}

type actorMatch struct {
	roles     codeSet
	reference string
}

type dataMatch struct {
	meaning string
	ref     string
	related map[string]bool // for "related": what ref refers to
}

// codeSet is a set of codings.
type codeSet struct {
	full      map[Coding]bool // codes given with a system
	anySystem map[string]bool // codes given without a system: any system
	codes     map[string]bool // every code, whatever its system
}

func newCodeSet(cs []Coding) codeSet {
	if len(cs) == 0 {
		return codeSet{}
	}
	s := codeSet{full: map[Coding]bool{}, anySystem: map[string]bool{}, codes: map[string]bool{}}
	for _, c := range cs {
		s.codes[c.Code] = true
		if c.System == "" {
			s.anySystem[c.Code] = true
		} else {
			s.full[c] = true
		}
	}
	return s
}

// empty reports whether the set states no criterion.
func (s codeSet) empty() bool { return len(s.codes) == 0 }

// has reports whether c is in the set: same system and code, or a code the
// set holds without a system; a c without a system matches its code in
// any system.
func (s codeSet) has(c Coding) bool {
	if c.System == "" {
		return s.codes[c.Code]
	}
	return s.anySystem[c.Code] || s.full[c]
}

func (s codeSet) any(cs []Coding) bool {
	return slices.ContainsFunc(cs, s.has)
}

// Compile compiles the consents of patient: those active, of scope
// patient-privacy, about that patient and with a root provision; others
// are left out. resolve may be nil.
func Compile(patient string, consents []*Consent, cfg Config, resolve Resolver) *Policy {
	p := &Policy{patient: patient, def: cfg.Default, explicit: slices.Clone(cfg.ExplicitPurposes), redact: newCodeSet(cfg.Redact)}
	if p.def == Inherit {
		p.def = Deny
	}
	var use []*Consent
	for _, c := range consents {
		if c.Status == "active" && c.PatientPrivacy && c.Patient == patient && c.Root != nil {
			use = append(use, c)
		}
	}
	sort.SliceStable(use, func(i, j int) bool {
		if !use[i].Time.Equal(use[j].Time) {
			return use[i].Time.After(use[j].Time)
		}
		return use[i].Version > use[j].Version
	})
	for _, c := range use {
		p.consents = append(p.consents, &compiled{ref: c.Ref(), root: compileNode(c.Root, Deny, nil, nil, resolve)})
	}
	return p
}

func compileNode(pr *Provision, parent Effect, named []string, labels []Coding, resolve Resolver) *node {
	n := &node{
		effect:     pr.Type,
		period:     pr.Period,
		actions:    newCodeSet(pr.Actions),
		labels:     newCodeSet(pr.Labels),
		classes:    newCodeSet(pr.Classes),
		codes:      newCodeSet(pr.Codes),
		dataPeriod: pr.DataPeriod,
	}
	if n.effect == Inherit {
		n.effect = parent
	}
	for _, a := range pr.Actors {
		n.actors = append(n.actors, actorMatch{roles: newCodeSet(a.Roles), reference: a.Reference})
	}
	for _, pu := range pr.Purposes {
		n.purposes = append(n.purposes, pu.Code)
	}
	n.named = append(slices.Clip(named), n.purposes...)
	n.namedLabels = append(slices.Clip(labels), pr.Labels...)
	for _, d := range pr.Data {
		dm := dataMatch{meaning: d.Meaning, ref: d.Reference}
		if d.Meaning == MeaningRelated && resolve != nil {
			dm.related = map[string]bool{}
			for _, r := range resolve(d.Reference) {
				dm.related[r] = true
			}
		}
		n.data = append(n.data, dm)
	}
	for _, c := range pr.Provisions {
		n.children = append(n.children, compileNode(c, n.effect, n.named, n.namedLabels, resolve))
	}
	return n
}

// Patient is the patient the policy decides for.
func (p *Policy) Patient() string { return p.patient }

// Uniform reports whether every resource gets the same decision for one
// caller and purpose: no consent and no redaction looks at the resource,
// so Decide needs nothing of it but its type.
func (p *Policy) Uniform() bool { return len(p.consents) == 0 && p.redact.empty() }

// Consents is how many consents the policy holds.
func (p *Policy) Consents() int { return len(p.consents) }

// Decide answers req.
func (p *Policy) Decide(req *Request) Decision {
	for _, c := range p.consents {
		m, ok := c.root.match(req, 0)
		if !ok {
			continue
		}
		reason := "a consent denies"
		if m.node.effect == Permit {
			reason = "a consent permits"
		}
		return p.finish(req, Decision{Permit: m.node.effect == Permit, Consent: c.ref, Reason: reason}, m)
	}
	reason := "no consent applies: the default denies"
	if p.def == Permit {
		reason = "no consent applies: the default permits"
	}
	return p.finish(req, Decision{Permit: p.def == Permit, Reason: reason}, matched{})
}

// finish applies the jurisdiction's explicit purposes and break-glass.
func (p *Policy) finish(req *Request, d Decision, m matched) Decision {
	if d.Permit && p.needsExplicit(req.Purpose) && !m.names(req.Purpose, p.explicitFor(req.Purpose)) {
		d.Permit, d.Reason = false, "purpose "+req.Purpose+" needs a consent that permits it explicitly"
	}
	if d.Permit && !p.redact.empty() {
		for _, l := range req.Resource.Labels {
			if p.redact.has(l) && !m.namesLabel(l) {
				d.Permit, d.Reason = false, "redacted: the data carries a sensitive label no consent speaks of"
				break
			}
		}
	}
	if !d.Permit && req.BreakGlass && !m.namesExactly(PurposeBreakGlass) {
		d.Permit, d.BreakGlass, d.Reason = true, true, "break-glass overrides a denial"
	}
	return d
}

// PurposeBreakGlass is the purpose of use of an emergency access.
const PurposeBreakGlass = "ETREAT"

// needsExplicit reports whether purpose (or one it specialises) is one
// of the explicit purposes.
func (p *Policy) needsExplicit(purpose string) bool { return p.explicitFor(purpose) != "" }

// explicitFor returns the explicit purpose purpose falls under, "" none.
func (p *Policy) explicitFor(purpose string) string {
	for _, e := range p.explicit {
		if purposeCovers(e, purpose) {
			return e
		}
	}
	return ""
}

// matched is the deepest provision that matched.
type matched struct {
	node  *node
	depth int
}

// names reports whether a provision on the way named purpose, or the
// explicit purpose it falls under, or a specialisation between the two.
func (m matched) names(purpose, explicit string) bool {
	if m.node == nil {
		return false
	}
	for _, named := range m.node.named {
		if purposeCovers(named, purpose) && purposeCovers(explicit, named) {
			return true
		}
	}
	return false
}

// namesLabel reports whether a provision on the way named label l.
func (m matched) namesLabel(l Coding) bool {
	return m.node != nil && slices.ContainsFunc(m.node.namedLabels, func(n Coding) bool {
		return n.Code == l.Code && (n.System == "" || l.System == "" || n.System == l.System)
	})
}

func (m matched) namesExactly(purpose string) bool {
	return m.node != nil && slices.Contains(m.node.named, purpose)
}

// match returns the deepest matching provision under n (n itself when no
// exception matches), or false when n does not match. Of two matching
// exceptions at the same depth that disagree, deny wins.
func (n *node) match(req *Request, depth int) (matched, bool) {
	if !n.matches(req) {
		return matched{}, false
	}
	best := matched{node: n, depth: depth}
	found := false
	for _, c := range n.children {
		m, ok := c.match(req, depth+1)
		if !ok {
			continue
		}
		if !found || m.depth > best.depth || (m.depth == best.depth && m.node.effect == Deny) {
			best, found = m, true
		}
	}
	return best, true
}

// matches reports whether every criterion n states holds for req.
func (n *node) matches(req *Request) bool {
	r := &req.Resource
	switch {
	case !n.period.contains(req.Time):
		return false
	case len(n.actors) > 0 && !slices.ContainsFunc(n.actors, func(a actorMatch) bool { return a.matches(req) }):
		return false
	case !n.actions.empty() && !slices.ContainsFunc(req.Actions, func(a string) bool { return n.actions.has(Coding{Code: a}) }):
		return false
	case !n.labels.empty() && !n.labels.any(r.Labels):
		return false
	case len(n.purposes) > 0 && !slices.ContainsFunc(n.purposes, func(pu string) bool { return purposeCovers(pu, req.Purpose) }):
		return false
	case !n.classes.empty() && !n.classMatches(r):
		return false
	case !n.codes.empty() && !n.codes.any(r.Codes):
		return false
	case (n.dataPeriod != Period{}) && ((r.Dates == Period{}) || !n.dataPeriod.overlaps(r.Dates)):
		return false
	case len(n.data) > 0 && !slices.ContainsFunc(n.data, func(d dataMatch) bool { return d.matches(r) }):
		return false
	}
	return true
}

// classMatches: a class is a resource type (any system, or
// http://hl7.org/fhir/resource-types) or a profile's canonical URL.
func (n *node) classMatches(r *Resource) bool {
	if n.classes.has(Coding{System: "http://hl7.org/fhir/resource-types", Code: r.Type}) {
		return true
	}
	return slices.ContainsFunc(r.Profiles, func(pr string) bool { return n.classes.has(Coding{Code: pr}) })
}

// matches: an actor given by reference is that party, whatever its role
// (R4 makes the role required, and it says how the party takes part: a
// recipient, IRCP); an actor given by role alone is any caller in that
// role.
func (a actorMatch) matches(req *Request) bool {
	if a.reference != "" {
		return slices.Contains(req.Actors, a.reference)
	}
	return !a.roles.empty() && a.roles.any(req.Roles)
}

func (d dataMatch) matches(r *Resource) bool {
	self := r.ref()
	switch d.meaning {
	case MeaningInstance:
		return self == d.ref
	case MeaningRelated:
		return self == d.ref || d.related[self]
	case MeaningDependents:
		return self == d.ref || slices.Contains(r.References, d.ref)
	case MeaningAuthoredBy:
		return slices.Contains(r.Authors, d.ref)
	}
	return false
}
