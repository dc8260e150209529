package fhir

import (
	"fmt"
	"time"
)

// ParseInstantParam reads a search or history parameter value that names a
// moment: a full instant (2024-05-01T10:00:00Z, fractions and offsets
// allowed) or a date (2024-05-01, meaning its start in UTC). A time without
// a zone is refused, as the instant type requires one.
func ParseInstantParam(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not an instant such as 2024-05-01T10:00:00Z or a date such as 2024-05-01", s)
}
