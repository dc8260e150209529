// Package consent decides, from a patient's FHIR R4 Consent resources,
// whether a disclosure of one of their resources is permitted.
//
// Parse reads a Consent (scope patient-privacy) into its provision tree;
// Compile turns all of one patient's consents into a Policy, a decision
// function over plain values that touches no database: Policy.Decide
// answers a Request (who asks, for which purpose and action, about which
// resource, when) with a Decision that names the consent version that
// decided, or the configured default. The combining rules are written
// down in docs/consent.md:
//
//   - a consent applies when it is active, within its period, and its root
//     provision matches the request; a nested provision is an exception to
//     its parent, and the deepest matching provision decides (deny when two
//     equally deep ones disagree);
//   - across several consents that apply, the newest decides;
//   - with none, Config.Default decides (opt-in: deny; opt-out: permit);
//   - Config.ExplicitPurposes lists purposes (research, say) that only a
//     provision naming them can permit;
//   - break-glass (purpose ETREAT with a reason) is decided as treatment,
//     and a denial is then overridden and flagged, unless the deciding
//     provision names ETREAT itself.
//
// The server gathers what a Request needs from the resource (its codes,
// labels, dates, references) and from the caller's token; this package is
// pure.
package consent
