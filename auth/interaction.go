package auth

// Interaction is a FHIR RESTful interaction a request performs, the unit
// SMART scopes grant.
type Interaction int

// The FHIR RESTful interactions.
const (
	// Create is POST [type].
	Create Interaction = iota + 1
	// Read is GET [type]/[id].
	Read
	// VRead is GET [type]/[id]/_history/[vid].
	VRead
	// Update is PUT [type]/[id] (including update-as-create).
	Update
	// Patch is PATCH [type]/[id].
	Patch
	// Delete is DELETE [type]/[id].
	Delete
	// SearchType is GET or POST [type]?... and [type]/_search.
	SearchType
	// SearchSystem is GET [base]?... across all types.
	SearchSystem
	// SearchCompartment is GET [compartment type]/[id]/[type]?..., a search
	// of one type inside a compartment.
	SearchCompartment
	// HistoryInstance is GET [type]/[id]/_history.
	HistoryInstance
	// HistoryType is GET [type]/_history.
	HistoryType
	// HistorySystem is GET [base]/_history.
	HistorySystem
	// Operation is an extended operation ($name). SMART assigns it no
	// permission letter: Allow never grants it, and the server authorizes
	// an operation by the interactions it performs (for instance
	// Patient/$everything as SearchCompartment on each type it returns).
	Operation
)

// Mapping of interactions to SMART v2 permission letters. It follows the
// list in SMART App Launch 2.x, "Scopes for requesting FHIR resources"
// (hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):
//
//	c  create
//	r  read, vread, history-instance
//	u  update (also when it creates), patch
//	d  delete
//	s  search-type, search-system, history-type, history-system
//
// The specification lists instance history under "r" because it returns
// versions of one resource the client may already read, and type and
// system history under "s" because, like a search, they enumerate
// resources. A compartment search is a type-level search restricted to a
// compartment, so it is mapped to "s" as well. Batch and transaction have
// no letter: the specification asks servers to check each entry instead.
var interactionPerm = map[Interaction]Perms{
	Create:            PermCreate,
	Read:              PermRead,
	VRead:             PermRead,
	HistoryInstance:   PermRead,
	Update:            PermUpdate,
	Patch:             PermUpdate,
	Delete:            PermDelete,
	SearchType:        PermSearch,
	SearchSystem:      PermSearch,
	SearchCompartment: PermSearch,
	HistoryType:       PermSearch,
	HistorySystem:     PermSearch,
}

var interactionNames = map[Interaction]string{
	Create:            "create",
	Read:              "read",
	VRead:             "vread",
	Update:            "update",
	Patch:             "patch",
	Delete:            "delete",
	SearchType:        "search-type",
	SearchSystem:      "search-system",
	SearchCompartment: "search-compartment",
	HistoryInstance:   "history-instance",
	HistoryType:       "history-type",
	HistorySystem:     "history-system",
	Operation:         "operation",
}

// Perm returns the SMART v2 permission that allows the interaction, or 0
// for Operation and unknown values, which no scope allows.
func (in Interaction) Perm() Perms { return interactionPerm[in] }

// String returns the FHIR name of the interaction, such as "search-type".
func (in Interaction) String() string {
	if name, ok := interactionNames[in]; ok {
		return name
	}
	return "unknown"
}
