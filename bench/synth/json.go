package synth

import "strconv"

// Records are written by appending JSON to a byte slice: no reflection, no
// maps, and the static parts of each resource prebuilt as strings.

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendDecimal appends v with prec digits after the point.
func appendDecimal(b []byte, v float64, prec int) []byte {
	return strconv.AppendFloat(b, v, 'f', prec, 64)
}

// appendPadded appends n in decimal, zero-padded to width digits.
func appendPadded(b []byte, n, width int) []byte {
	var d [20]byte
	i := len(d)
	for n > 0 || i > len(d)-width {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[i:]...)
}

// Times are seconds since 1970-01-01T00:00:00Z (int64) and days since
// 1970-01-01 (int64); zones are fixed offsets in seconds east of UTC.

const day = 86400

// civil returns the proleptic Gregorian date of a day number (days since
// 1970-01-01), after Howard Hinnant's civil_from_days.
func civil(days int64) (y, m, d int) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	m = int(mp + 3)
	if m > 12 {
		m -= 12
	}
	y = int(yoe + era*400)
	if m <= 2 {
		y++
	}
	return y, m, d
}

// appendDate appends a FHIR date YYYY-MM-DD.
func appendDate(b []byte, days int64) []byte {
	y, m, d := civil(days)
	b = appendPadded(b, y, 4)
	b = append(b, '-')
	b = appendPadded(b, m, 2)
	b = append(b, '-')
	return appendPadded(b, d, 2)
}

// appendMonth appends a FHIR partial date YYYY-MM.
func appendMonth(b []byte, days int64) []byte {
	y, m, _ := civil(days)
	b = appendPadded(b, y, 4)
	b = append(b, '-')
	return appendPadded(b, m, 2)
}

// appendDateTime appends a FHIR dateTime (also a valid instant) with
// seconds and the zone offset: the local time of sec at offset off.
func appendDateTime(b []byte, sec int64, off int) []byte {
	local := sec + int64(off)
	days := local / day
	rem := local % day
	if rem < 0 {
		rem += day
		days--
	}
	b = appendDate(b, days)
	b = append(b, 'T')
	b = appendPadded(b, int(rem/3600), 2)
	b = append(b, ':')
	b = appendPadded(b, int(rem/60%60), 2)
	b = append(b, ':')
	b = appendPadded(b, int(rem%60), 2)
	if off < 0 {
		b = append(b, '-')
		off = -off
	} else {
		b = append(b, '+')
	}
	b = appendPadded(b, off/3600, 2)
	b = append(b, ':')
	return appendPadded(b, off/60%60, 2)
}

// localDay is the day number of sec in the zone off.
func localDay(sec int64, off int) int64 {
	local := sec + int64(off)
	if local < 0 && local%day != 0 {
		return local/day - 1
	}
	return local / day
}

// uuid is a version 4 UUID drawn from a record's id stream.
type uuid struct{ hi, lo uint64 }

// appendURN appends "urn:uuid:" and the UUID in lower-case hex.
func appendURN(b []byte, u uuid) []byte {
	b = append(b, "urn:uuid:"...)
	var t [36]byte
	hexInto(t[0:8], u.hi>>32)
	t[8] = '-'
	hexInto(t[9:13], u.hi>>16)
	t[13] = '-'
	hexInto(t[14:18], u.hi)
	t[18] = '-'
	hexInto(t[19:23], u.lo>>48)
	t[23] = '-'
	hexInto(t[24:36], u.lo)
	return append(b, t[:]...)
}

// hexInto writes the low 4*len(dst) bits of v into dst as hex.
func hexInto(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = hexDigits[v&15]
		v >>= 4
	}
}

// mix64 is SplitMix64's finaliser, a bijection on uint64.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
