package fhir

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

func TestNormalizeString(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"lower-case ASCII is unchanged", "smith", "smith"},
		{"capitals are folded", "SMITH Jr.", "smith jr."},
		{"Latin-1 accents are dropped", "Zoë Ångström-Çelik", "zoe angstrom-celik"},
		{"Latin Extended-A", "Łukasz Dvořák Šťastný İstanbul", "łukasz dvorak stastny istanbul"},
		{"Vietnamese stacked marks", "Nguyễn Thị Ngọc", "nguyen thi ngoc"},
		{"Greek tonos and case", "Ελένη Άννα", "ελενη αννα"},
		{"Greek final sigma folds to sigma", "ΟΔΥΣΣΕΥΣ Οδυσσευς", "οδυσσευσ οδυσσευσ"},
		{"Cyrillic breve and diaeresis", "Йоханнес Ёлкин", "иоханнес елкин"},
		{"decomposed input loses its combining marks", "Zoe\u0308 e\u0301", "zoe e"},
		{"sharp s folds to ss", "Straße STRAẞE", "strasse strasse"},
		{"letters without a decomposition keep their shape", "Øre Æble Œuvre Þór Đorđe", "øre æble œuvre þor đorđe"},
		{"other scripts are only case-folded", "東京 Москва", "東京 москва"},
		{"white space and punctuation are kept", "  O'Brien,  Mary-Ann ", "  o'brien,  mary-ann "},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NormalizeString(tc.in); got != tc.want {
				t.Errorf("NormalizeString(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestNormalizeStringIdempotent(t *testing.T) {
	for r := rune(0); r < 0x2000; r++ {
		s := "x" + string(r) + "Y"
		once := NormalizeString(s)
		if twice := NormalizeString(once); twice != once {
			t.Errorf("U+%04X: NormalizeString not idempotent: %q then %q", r, once, twice)
		}
	}
}

func TestNormalizeStringLowerASCIIDoesNotAllocate(t *testing.T) {
	s := "already normalised text"
	if n := testing.AllocsPerRun(100, func() { NormalizeString(s) }); n != 0 {
		t.Errorf("NormalizeString allocated %v times for lower-case ASCII", n)
	}
}

func TestParseSearchDate(t *testing.T) {
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	for _, tc := range []struct {
		name, in  string
		low, high string
		prec      DatePrecision
	}{
		{"year is the whole year", "1974", "1974-01-01T00:00:00Z", "1975-01-01T00:00:00Z", PrecisionYear},
		{"month", "2013-01", "2013-01-01T00:00:00Z", "2013-02-01T00:00:00Z", PrecisionMonth},
		{"December rolls into the next year", "2013-12", "2013-12-01T00:00:00Z", "2014-01-01T00:00:00Z", PrecisionMonth},
		{"day", "2013-01-14", "2013-01-14T00:00:00Z", "2013-01-15T00:00:00Z", PrecisionDay},
		{"leap day", "2024-02-29", "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z", PrecisionDay},
		{"second with offset is taken to UTC", "2013-01-14T10:00:00+01:00", "2013-01-14T09:00:00Z", "2013-01-14T09:00:01Z", PrecisionSecond},
		{"negative offset crosses midnight", "2019-06-15T20:30:00-05:00", "2019-06-16T01:30:00Z", "2019-06-16T01:30:01Z", PrecisionSecond},
		{"fraction sets the width", "2013-01-14T10:00:00.25Z", "2013-01-14T10:00:00.25Z", "2013-01-14T10:00:00.26Z", PrecisionFraction},
		{"milliseconds", "2024-03-01T12:00:00.123Z", "2024-03-01T12:00:00.123Z", "2024-03-01T12:00:00.124Z", PrecisionFraction},
		{"more than nine digits are cut to nanoseconds", "2024-03-01T12:00:00.1234567891Z", "2024-03-01T12:00:00.123456789Z", "2024-03-01T12:00:00.12345679Z", PrecisionFraction},
		{"minute", "2013-01-14T10:00Z", "2013-01-14T10:00:00Z", "2013-01-14T10:01:00Z", PrecisionMinute},
		{"hour", "2013-01-14T10+02:00", "2013-01-14T08:00:00Z", "2013-01-14T09:00:00Z", PrecisionHour},
		{"a time without a zone is UTC", "2013-01-14T10:00:00", "2013-01-14T10:00:00Z", "2013-01-14T10:00:01Z", PrecisionSecond},
		{"leap second", "2016-12-31T23:59:60Z", "2017-01-01T00:00:00Z", "2017-01-01T00:00:01Z", PrecisionSecond},
		{"first year", "0001", "0001-01-01T00:00:00Z", "0002-01-01T00:00:00Z", PrecisionYear},
	} {
		t.Run(tc.name, func(t *testing.T) {
			low, high, err := ParseSearchDate(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !low.Equal(utc(tc.low)) || !high.Equal(utc(tc.high)) {
				t.Errorf("ParseSearchDate(%q) = [%s, %s), want [%s, %s)", tc.in, low.Format(time.RFC3339Nano), high.Format(time.RFC3339Nano), tc.low, tc.high)
			}
			if low.Location() != time.UTC || high.Location() != time.UTC {
				t.Errorf("ParseSearchDate(%q) not in UTC", tc.in)
			}
			if _, _, prec, _ := parseDateRange(tc.in); prec != tc.prec {
				t.Errorf("precision of %q = %s, want %s", tc.in, prec, tc.prec)
			}
		})
	}
}

func TestParseSearchDateRejects(t *testing.T) {
	for _, in := range []string{
		"", "74", "0000", "2013-13", "2013-00", "2013-1", "2013-02-30", "2023-02-29", "2013-01-14T", "2013-01-14T25:00Z",
		"2013-01-14T10:60Z", "2013-01-14T10:00:61Z", "2013-01-14T10:00:00.Z", "2013-01-14Z", "2013Z",
		"2013-01-14T10:00:00+15:00", "2013-01-14T10:00:00+0100", "2013-01-14T10:00:00 ", "2013-01T10:00Z",
		"ge2013", "2013-01-14T10:00:00+14:30", "abcd",
	} {
		if low, high, err := ParseSearchDate(in); err == nil {
			t.Errorf("ParseSearchDate(%q) = [%v, %v), want an error", in, low, high)
		}
	}
}

func TestParseSearchNumber(t *testing.T) {
	for _, tc := range []struct {
		name, in        string
		value, low, hig float64
	}{
		{"integer: half a unit either side", "100", 100, 99.5, 100.5},
		{"trailing zeros add precision", "100.00", 100, 99.995, 100.005},
		{"decimal", "1.50", 1.5, 1.495, 1.505},
		{"exponent counts the mantissa's digits", "1e2", 100, 50, 150},
		{"exponent with a decimal mantissa", "1.0e2", 100, 95, 105},
		{"negative exponent", "1E-2", 0.01, 0.005, 0.015},
		{"negative", "-1.50", -1.5, -1.505, -1.495},
		{"zero", "0", 0, -0.5, 0.5},
		{"zero with a decimal", "0.0", 0, -0.05, 0.05},
		{"small", "0.001", 0.001, 0.0005, 0.0015},
		{"many digits take the slow path", "12345678901234567.5", 12345678901234567.5, 12345678901234567.45, 12345678901234567.55},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, lo, hi, err := ParseSearchNumber(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if v != tc.value || lo != tc.low || hi != tc.hig {
				t.Errorf("ParseSearchNumber(%q) = %v [%v, %v), want %v [%v, %v)", tc.in, v, lo, hi, tc.value, tc.low, tc.hig)
			}
		})
	}
	for _, in := range []string{"", "-", "1.", ".5", "1e", "1e+", "+1", "1,5", "0x10", "1e999", "NaN", "1 ", "--1"} {
		if _, _, _, err := ParseSearchNumber(in); err == nil {
			t.Errorf("ParseSearchNumber(%q) succeeded, want an error", in)
		}
	}
}

// TestParseSearchNumberExact compares the bounds with exact rational
// arithmetic rounded to float64, over random decimals that exercise both
// the fast path and the decimal one.
func TestParseSearchNumberExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		digits := rng.IntN(20) + 1
		var s []byte
		if rng.IntN(2) == 0 {
			s = append(s, '-')
		}
		s = append(s, byte('1'+rng.IntN(9)))
		for range digits - 1 {
			s = append(s, byte('0'+rng.IntN(10)))
		}
		if k := rng.IntN(digits + 1); k < digits && rng.IntN(2) == 0 {
			i := len(s) - k
			s = append(s[:i], append([]byte{'.'}, s[i:]...)...)
			if s[len(s)-1] == '.' {
				s = append(s, '0')
			}
		}
		if rng.IntN(3) == 0 {
			s = append(s, fmt.Sprintf("e%d", rng.IntN(60)-30)...)
		}
		in := string(s)
		_, lo, hi, err := ParseSearchNumber(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		wantLo, wantHi := exactBounds(t, in)
		if lo != wantLo || hi != wantHi {
			t.Fatalf("ParseSearchNumber(%q) bounds [%v, %v), want [%v, %v)", in, lo, hi, wantLo, wantHi)
		}
	}
}

// exactBounds computes a number's bounds with math/big.
func exactBounds(t *testing.T, s string) (float64, float64) {
	t.Helper()
	v, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("big.Rat cannot read %q", s)
	}
	mant, exp := s, 0
	for i := range len(s) {
		if s[i] == 'e' || s[i] == 'E' {
			mant = s[:i]
			exp, _ = strconv.Atoi(s[i+1:])
		}
	}
	frac := 0
	for i := range len(mant) {
		if mant[i] == '.' {
			frac = len(mant) - i - 1
		}
	}
	scale := exp - frac
	half := big.NewRat(1, 2)
	ten := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(max(scale, -scale))), nil))
	if scale >= 0 {
		half.Mul(half, ten)
	} else {
		half.Quo(half, ten)
	}
	lo, _ := new(big.Rat).Sub(v, half).Float64()
	hi, _ := new(big.Rat).Add(v, half).Float64()
	return lo, hi
}

func TestParseReference(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     refParts
	}{
		{"relative", "Patient/123", refParts{Type: "Patient", ID: "123"}},
		{"relative with a version drops it", "Patient/123/_history/2", refParts{Type: "Patient", ID: "123"}},
		{"absolute keeps the URL and gives type and id", "http://example.org/fhir/Patient/123", refParts{Type: "Patient", ID: "123", URL: "http://example.org/fhir/Patient/123"}},
		{"absolute with a version", "https://x.org/Observation/o-1/_history/7", refParts{Type: "Observation", ID: "o-1", URL: "https://x.org/Observation/o-1"}},
		{"absolute not ending in Type/id", "http://example.org/things/42", refParts{URL: "http://example.org/things/42"}},
		{"urn:uuid is kept whole", "urn:uuid:6f4d3c1e-0b8a-4d5e-9f1a-2b3c4d5e6f70", refParts{URL: "urn:uuid:6f4d3c1e-0b8a-4d5e-9f1a-2b3c4d5e6f70"}},
		{"local reference", "#org1", refParts{URL: "#org1", Local: true}},
		{"not a resource type", "Patients/123", refParts{URL: "Patients/123"}},
		{"not an id", "Patient/12_3", refParts{URL: "Patient/12_3"}},
		{"conditional reference", "Patient?identifier=x|1", refParts{URL: "Patient?identifier=x|1"}},
		{"empty", "", refParts{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseReference(tc.in); got != tc.want {
				t.Errorf("parseReference(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseCanonical(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want refParts
	}{
		{"http://example.org/fhir/Questionnaire/q1|2.0", refParts{Type: "Questionnaire", ID: "q1", URL: "http://example.org/fhir/Questionnaire/q1", Version: "2.0"}},
		{"http://loinc.org/vs", refParts{URL: "http://loinc.org/vs"}},
		{"urn:oid:1.2.3|1", refParts{URL: "urn:oid:1.2.3", Version: "1"}},
		{"ValueSet/vs1", refParts{Type: "ValueSet", ID: "vs1", URL: "ValueSet/vs1"}},
	} {
		if got := parseCanonical(tc.in); got != tc.want {
			t.Errorf("parseCanonical(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
