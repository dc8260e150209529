package fhir

import "time"

// SearchQuery is a FHIR search in parsed form: which resources match and
// how the answer is presented. ParseSearch builds it from a query string;
// the store compiles Where and Sort to SQL.
type SearchQuery struct {
	Type  string      // resource type searched
	Where []Criterion // every criterion must hold (AND)
	Sort  []SortKey   // then the resource id, ascending
	Count int         // page size
	// Total is "none", "estimate" or "accurate".
	Total string
	// Summary is "", "true", "text", "data", "count" or "false".
	Summary    string
	Elements   []string
	Include    []Include
	RevInclude []Include
	// Compartment, when set, keeps only resources in that compartment
	// (GET /Patient/123/Observation).
	Compartment *Compartment
	// Owners, when set, keeps only resources whose data key is one of
	// these owners (keys.OwnerOf: "Patient/123", "provider"): the
	// server's narrowing of a search to what a patient-confined token
	// may reach. No query parameter sets it.
	Owners []string
	// Page is the opaque cursor of the page asked for ("" for the first).
	Page string
	// Ignored lists parameters that were not understood and were left out
	// (lenient handling), each with the reason.
	Ignored []Issue
}

// Criterion is one occurrence of a search parameter: a resource matches when
// any of Values matches (comma is OR).
type Criterion struct {
	Code string // parameter code: "name", "_id", "_lastUpdated", ...
	// Type is the parameter's search type: string, token, reference, date,
	// number, quantity, uri or composite. _id is a token matched on the
	// resource id itself; _lastUpdated a date matched on the version time.
	Type string
	// Modifier is "", or one of exact, contains, text, not, of-type, missing,
	// below, above, identifier, or (for references) a resource type.
	Modifier string
	// Missing is set for :missing=true (true) or :missing=false (false).
	Missing *bool
	Values  []SearchValue
	// Chain, when set, replaces Values: the reference's target, of type
	// Chain.Type, must meet Chain.Where (subject:Patient.name=smith).
	Chain *Chain
	// Has, when set, replaces Values: some resource of type Has.Type whose
	// reference parameter Has.Param points at the resource meets Has.Where
	// (_has:Observation:patient:code=1234).
	Has *Has
	// Components are the types of a composite parameter's parts (two or
	// three).
	Components []string
}

// Chain is the rest of a chained parameter.
type Chain struct {
	Type  string // target resource type ("" when the parameter has one target)
	Where Criterion
}

// Has is a reverse chain.
type Has struct {
	Type, Param string
	Where       Criterion
}

// SearchValue is one value of a criterion, typed by the criterion's Type.
type SearchValue struct {
	// Prefix is eq (the default), ne, gt, lt, ge, le, sa, eb or ap, for
	// date, number and quantity values.
	Prefix string
	// Text is a string value (normalised unless the modifier is exact), a
	// uri, or the :text of a token.
	Text string
	// System and Code are a token (or a quantity's unit system and code).
	// AnySystem is a bare code ("code"), NoSystem "|code"; an empty Code with
	// a System is "system|".
	System, Code        string
	AnySystem, NoSystem bool
	// RefType, RefID and URL are a reference: Type/id, a bare id, or an
	// absolute URL that is not this server's.
	RefType, RefID, URL string
	// Low and High bound a date value's range [Low, High).
	Low, High time.Time
	// Num is a number or quantity value; NumLow and NumHigh the range its
	// precision implies.
	Num, NumLow, NumHigh float64
	// Parts are a composite's two component values.
	Parts []SearchValue
}

// Compartment is a resource compartment: the resource Type/ID and the
// reference parameters of the searched type that put a resource in it.
// When the searched type is the compartment's own type, the compartment
// holds just that resource.
type Compartment struct {
	Type, ID string
	Params   []string
}

// SortKey orders results by a parameter.
type SortKey struct {
	Code, Type string
	Desc       bool
}

// Include names the references to follow from (Include) or to
// (RevInclude) the matches: SourceType:Param[:TargetType]. Param "*" is
// every reference parameter. Iterate repeats the include over what it
// added.
type Include struct {
	SourceType, Param, TargetType string
	Iterate                       bool
}
