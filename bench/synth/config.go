package synth

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of Config's tuning fields, used when a field is zero.
const (
	// DefaultMinEncounters and DefaultMaxEncounters bound each patient's
	// number of encounters; in between the number is skewed towards the
	// low end: median 8, mean about 9.5, 1 % above 34, rarely the maximum.
	DefaultMinEncounters = 5
	DefaultMaxEncounters = 100
	// DefaultHistoryYears is how far back from AsOf a patient's
	// encounters go (not before birth).
	DefaultHistoryYears = 10
)

// DefaultAsOf is the date records are written as of when Config.AsOf is
// zero: nothing in them happens later, and in-progress encounters started
// shortly before it. It is fixed, not the wall clock, so that output is
// reproducible.
var DefaultAsOf = time.Date(2024, time.July, 1, 0, 0, 0, 0, time.UTC)

// Birth dates lie between these two days (inclusive).
var (
	BirthDateFirst = time.Date(1930, time.January, 1, 0, 0, 0, 0, time.UTC)
	BirthDateLast  = time.Date(2023, time.December, 31, 0, 0, 0, 0, time.UTC)
)

// Config of a population. The zero value of each tuning field selects its
// default; Seed and Patients have none.
type Config struct {
	// Seed selects the population: the same Config always gives
	// byte-identical records, different seeds different ones.
	Seed uint64
	// Patients is the number of patients, and of records.
	Patients int

	// AsOf is the instant the records are written as of (default
	// DefaultAsOf); it must not be before the last birth date.
	AsOf time.Time
	// HistoryYears is how far back encounters go (default
	// DefaultHistoryYears).
	HistoryYears int
	// MinEncounters and MaxEncounters bound the encounters of a patient
	// (defaults DefaultMinEncounters, DefaultMaxEncounters).
	MinEncounters, MaxEncounters int
	// CoreOnly leaves out the optional resource types: Immunization,
	// AllergyIntolerance and Procedure.
	CoreOnly bool
}

// ErrConfig is wrapped by the errors of Config.Validate.
var ErrConfig = errors.New("synth: invalid config")

// withDefaults returns c with zero tuning fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.AsOf.IsZero() {
		c.AsOf = DefaultAsOf
	}
	if c.HistoryYears == 0 {
		c.HistoryYears = DefaultHistoryYears
	}
	if c.MinEncounters == 0 {
		c.MinEncounters = DefaultMinEncounters
	}
	if c.MaxEncounters == 0 {
		c.MaxEncounters = max(DefaultMaxEncounters, c.MinEncounters)
	}
	return c
}

// Validate reports whether c, with defaults applied, describes a
// population; its errors wrap ErrConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Patients < 0:
		return fmt.Errorf("%w: Patients %d is negative", ErrConfig, c.Patients)
	case c.HistoryYears < 0:
		return fmt.Errorf("%w: HistoryYears %d is negative", ErrConfig, c.HistoryYears)
	case c.MinEncounters < 1:
		return fmt.Errorf("%w: MinEncounters %d is below 1", ErrConfig, c.MinEncounters)
	case c.MaxEncounters < c.MinEncounters:
		return fmt.Errorf("%w: MaxEncounters %d is below MinEncounters %d", ErrConfig, c.MaxEncounters, c.MinEncounters)
	case c.MaxEncounters > 10000:
		return fmt.Errorf("%w: MaxEncounters %d is above 10000", ErrConfig, c.MaxEncounters)
	case c.AsOf.Before(BirthDateLast.AddDate(0, 0, 1)):
		return fmt.Errorf("%w: AsOf %s is before the last birth date %s", ErrConfig, c.AsOf.Format(time.RFC3339), BirthDateLast.Format(time.DateOnly))
	case c.AsOf.Year() > 9000:
		return fmt.Errorf("%w: AsOf %s is too late", ErrConfig, c.AsOf.Format(time.RFC3339))
	}
	return nil
}
