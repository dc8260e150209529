package fhir

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The rules that turn date and number values into the ranges search
// compares, shared by ExtractIndex (stored values) and the query side
// (search values), so that both read "2013" or "1.50" the same way.

// DatePrecision is how precisely a date value was given, which sets the
// width of the range it stands for.
type DatePrecision uint8

const (
	// PrecisionRange marks a value that is a range of its own (a Period,
	// a Timing): Low and High are its bounds.
	PrecisionRange DatePrecision = iota
	PrecisionYear
	PrecisionMonth
	PrecisionDay
	PrecisionHour
	PrecisionMinute
	PrecisionSecond
	// PrecisionFraction is seconds with a fraction: the range is as wide
	// as the last digit given (.5 is a tenth of a second wide).
	PrecisionFraction
)

func (p DatePrecision) String() string {
	switch p {
	case PrecisionRange:
		return "range"
	case PrecisionYear:
		return "year"
	case PrecisionMonth:
		return "month"
	case PrecisionDay:
		return "day"
	case PrecisionHour:
		return "hour"
	case PrecisionMinute:
		return "minute"
	case PrecisionSecond:
		return "second"
	case PrecisionFraction:
		return "fraction"
	}
	return "DatePrecision(" + strconv.Itoa(int(p)) + ")"
}

// SearchTimeMin and SearchTimeMax stand for the open ends of a range: a
// Period without a start begins at SearchTimeMin, one without an end ends
// at SearchTimeMax.
var (
	SearchTimeMin = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	SearchTimeMax = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// ParseSearchDate reads a date search value, or a date, dateTime or
// instant, and returns the range of instants it stands for: [low, high),
// in UTC, as wide as its precision. "2013" is all of 2013
// ([2013-01-01T00:00:00Z, 2014-01-01T00:00:00Z)), "2013-01-14" that day,
// "2013-01-14T10:00:00+01:00" that second (from 09:00:00Z), and
// "2013-01-14T10:00:00.25Z" a hundredth of a second.
//
// Accepted: YYYY, YYYY-MM, YYYY-MM-DD, then optionally Thh, Thh:mm,
// Thh:mm:ss or Thh:mm:ss.fff... followed by a zone (Z or +hh:mm/-hh:mm).
// A time without a zone is read as UTC (R4 leaves it to the server); a
// date without a time is a UTC calendar period. Years run from 0001 to
// 9999.
func ParseSearchDate(s string) (low, high time.Time, err error) {
	low, high, _, ok := parseDateRange(s)
	if !ok {
		return time.Time{}, time.Time{}, fmt.Errorf("fhir: %q is not a date such as 2013, 2013-01, 2013-01-14 or 2013-01-14T10:00:00+01:00", s)
	}
	return low, high, nil
}

// parseDateRange is ParseSearchDate, also giving the precision.
func parseDateRange(s string) (low, high time.Time, prec DatePrecision, ok bool) {
	num := func(from, n int) int {
		if from+n > len(s) {
			return -1
		}
		v := 0
		for _, c := range []byte(s[from : from+n]) {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year := num(0, 4)
	if year < 1 {
		return
	}
	month, day, hour, minute, sec, nsec := 1, 1, 0, 0, 0, 0
	prec = PrecisionYear
	i := 4
	if i < len(s) && s[i] == '-' {
		if month = num(i+1, 2); month < 1 || month > 12 {
			return
		}
		prec, i = PrecisionMonth, i+3
		if i < len(s) && s[i] == '-' {
			day = num(i+1, 2)
			if day < 1 || day > daysIn(year, month) {
				return
			}
			prec, i = PrecisionDay, i+3
		}
	}
	unit := 0 * time.Second
	if i < len(s) && s[i] == 'T' {
		if prec != PrecisionDay {
			return
		}
		if hour = num(i+1, 2); hour < 0 || hour > 23 {
			return
		}
		prec, i, unit = PrecisionHour, i+3, time.Hour
		if i < len(s) && s[i] == ':' {
			if minute = num(i+1, 2); minute < 0 || minute > 59 {
				return
			}
			prec, i, unit = PrecisionMinute, i+3, time.Minute
			if i < len(s) && s[i] == ':' {
				if sec = num(i+1, 2); sec < 0 || sec > 60 {
					return
				}
				prec, i, unit = PrecisionSecond, i+3, time.Second
				if i < len(s) && s[i] == '.' {
					j := i + 1
					for j < len(s) && s[j] >= '0' && s[j] <= '9' {
						j++
					}
					digits := s[i+1 : j]
					if digits == "" {
						return
					}
					prec, unit = PrecisionFraction, time.Nanosecond
					if len(digits) < 9 {
						unit = time.Duration(math.Pow10(9 - len(digits)))
						digits += strings.Repeat("0", 9-len(digits))
					}
					nsec, _ = strconv.Atoi(digits[:9])
					i = j
				}
			}
		}
	}
	loc := time.UTC
	if i < len(s) {
		if unit == 0 {
			return // a zone needs a time
		}
		switch z := s[i:]; {
		case z == "Z":
		case len(z) == 6 && (z[0] == '+' || z[0] == '-') && z[3] == ':':
			h, m := num(i+1, 2), num(i+4, 2)
			if h < 0 || h > 14 || m < 0 || m > 59 || h == 14 && m > 0 {
				return
			}
			off := h*3600 + m*60
			if z[0] == '-' {
				off = -off
			}
			loc = time.FixedZone("", off)
		default:
			return
		}
	}
	low = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	switch prec {
	case PrecisionYear:
		high = low.AddDate(1, 0, 0)
	case PrecisionMonth:
		high = low.AddDate(0, 1, 0)
	case PrecisionDay:
		high = low.AddDate(0, 0, 1)
	default:
		high = low.Add(unit)
	}
	return low.UTC(), high.UTC(), prec, true
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// ParseSearchNumber reads a number search value, or a decimal or integer,
// and returns its value and the range its precision implies: half a unit
// of its last significant digit either side, [low, high). "100" is
// [99.5, 100.5), "100.00" [99.995, 100.005), "1.50" [1.495, 1.505), and in
// exponent form the mantissa's digits count: "1e2" is [50, 150) and
// "1.0e2" [95, 105). (R4's search page gives 1e2 the range 95..105,
// which contradicts its own "1 significant figure"; this follows the
// significant figures.) The bounds are exact decimals rounded to the
// nearest float64.
func ParseSearchNumber(s string) (value, low, high float64, err error) {
	value, low, high, ok := parseNumberRange(s)
	if !ok {
		return 0, 0, 0, fmt.Errorf("fhir: %q is not a number such as 100, -1.50 or 1e2", s)
	}
	return value, low, high, nil
}

func parseNumberRange(s string) (value, low, high float64, ok bool) {
	// The JSON number grammar, which FHIR decimals and search numbers share.
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	intStart := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == intStart {
		return
	}
	frac := 0
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if frac = i - start; frac == 0 {
			return
		}
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || e > 400 || e < -400 || strings.HasPrefix(s[i+1:], "+-") {
			return
		}
		exp, i = e, len(s)
	}
	if i != len(s) {
		return
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return
	}
	// The magnitude is M × 10^E with M its digits; its bounds are
	// (10M ± 5) × 10^(E-1), written as decimals for ParseFloat to round
	// exactly, and mirrored for a negative value.
	neg := s[0] == '-'
	digits := s[intStart:]
	if j := strings.IndexAny(digits, "eE"); j >= 0 {
		digits = digits[:j]
	}
	if j := strings.IndexByte(digits, '.'); j >= 0 {
		digits = digits[:j] + digits[j+1:]
	}
	lo, hi, ok := magnitudeBounds(digits, exp-frac-1)
	if !ok {
		return
	}
	if neg {
		lo, hi = -hi, -lo
	}
	return v, lo, hi, true
}

// magnitudeBounds returns (10M - 5) × 10^e and (10M + 5) × 10^e for the
// digits of M, each the float64 nearest the exact decimal.
func magnitudeBounds(digits string, e int) (lo, hi float64, ok bool) {
	// Fast path: when 10M+5 is an integer float64 holds exactly and 10^|e|
	// is exact too, one multiplication or division rounds correctly.
	if len(digits) <= 16 && e >= -22 && e <= 22 {
		m, err := strconv.ParseUint(digits, 10, 64)
		if err == nil && m <= (1<<53-5)/10 {
			up, down := float64(10*m+5), float64(int64(10*m)-5)
			if e >= 0 {
				return down * pow10[e], up * pow10[e], true
			}
			return down / pow10[-e], up / pow10[-e], true
		}
	}
	scale := "e" + strconv.Itoa(e)
	up := digits + "5" + scale
	var down string
	if dec, ok := decrement(digits); ok {
		down = dec + "5" + scale
	} else {
		down = "-5" + scale // M is 0
	}
	lo, err1 := strconv.ParseFloat(down, 64)
	hi, err2 := strconv.ParseFloat(up, 64)
	return lo, hi, err1 == nil && err2 == nil
}

// pow10 are the powers of ten that float64 holds exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// decrement subtracts one from a string of decimal digits, or reports
// false when they are all zero.
func decrement(digits string) (string, bool) {
	b := []byte(digits)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] > '0' {
			b[i]--
			return string(b), true
		}
		b[i] = '9'
	}
	return "", false
}

// refParts is a reference string taken apart.
type refParts struct {
	Type, ID string // for Type/id references, relative or absolute
	URL      string // absolute, urn: and local (#) references, without /_history/n
	Version  string // a canonical's |version
	Local    bool   // "#id", a contained resource
}

// parseReference takes a Reference.reference apart: "Patient/123"
// (relative; "/_history/2" dropped) gives Type and ID; an absolute URL is
// kept in URL and, when it ends in Type/id, gives those too; "urn:uuid:..."
// and other URIs are kept in URL only; "#id" is Local with URL "#id".
func parseReference(s string) refParts {
	var r refParts
	switch {
	case s == "":
		return r
	case s[0] == '#':
		return refParts{URL: s, Local: true}
	case strings.HasPrefix(s, "urn:"):
		return refParts{URL: s}
	}
	path := s
	if q := strings.IndexAny(path, "?#"); q >= 0 {
		path = path[:q]
	}
	// The last segments: .../Type/id, or .../Type/id/_history/n.
	last, rest := lastSegment(path)
	if prev, before := lastSegment(rest); prev == "_history" && before != "" {
		path = before
		last, rest = lastSegment(path)
	}
	if typ, _ := lastSegment(rest); rest != "" && IsResourceType(typ) && primIsID(last) {
		r.Type, r.ID = typ, last
	}
	if strings.Contains(s, "://") || r.Type == "" {
		r.URL = path
		if path != s && r.Type == "" {
			r.URL = s
		}
	}
	return r
}

// lastSegment splits a path at its last "/": the segment after it and the
// path before it ("" when there is no "/").
func lastSegment(path string) (last, rest string) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return path, ""
	}
	return path[i+1:], path[:i]
}

// parseCanonical takes a canonical (or uri) value apart: the "|version"
// is split off, and a URL ending in Type/id gives those.
func parseCanonical(s string) refParts {
	url, version, _ := strings.Cut(s, "|")
	r := parseReference(url)
	if r.URL == "" {
		r.URL = url
	}
	r.Version = version
	return r
}
