package fhir

import "unicode"

// String normalisation for search. R4 says string parameters match
// "case-insensitively and accent-insensitively"; this file decides what that
// means here, for the values indexed on write (StringEntry.Norm,
// TokenEntry.Text) and for the values a query compares them with.

// NormalizeString returns the form of s that string search compares: every
// letter with a canonical decomposition (Unicode NFD) replaced by its base
// letter, combining marks (category Mn, as decomposed input carries them)
// dropped, and the result lower-cased with simple case folding, plus
// ß and ẞ folded to "ss" and ς to σ. White space and punctuation are kept.
//
// The decomposition is a table rather than full NFD (which the standard
// library lacks). It covers every letter of these blocks that decomposes
// to a base letter plus marks, taken from Unicode 14's data:
// Latin-1 Supplement, Latin Extended-A and -B, Latin Extended Additional
// (Vietnamese among others), Greek (tonos, dialytika) and Cyrillic (й → и,
// ё → е, ...). Letters that do not decompose in Unicode stay as they are
// (ø, ł, đ, æ, œ, þ keep their shape, lower-cased), as with NFD. Characters
// outside those blocks are only case-folded.
//
// The same function must be applied to query values (the query side of
// search calls it), so that "Zoë", "ZOE" and "zoe" all match.
func NormalizeString(s string) string {
	// Fast paths: ASCII without capitals comes back as is; ASCII with
	// capitals is lower-cased byte by byte.
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return normalizeUnicode(s)
		}
		if 'A' <= c && c <= 'Z' {
			upper = true
		}
	}
	if !upper {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func normalizeUnicode(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		switch {
		case r < 0x80:
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
		case unicode.Is(unicode.Mn, r):
			continue
		case r == 'ß' || r == 'ẞ':
			out = append(out, 's', 's')
			continue
		case r == 'ς':
			r = 'σ'
		default:
			if base, ok := foldBase[r]; ok {
				r = base
			} else {
				r = unicode.ToLower(r)
			}
		}
		out = append(out, r)
	}
	return string(out)
}

// foldBase maps a letter with a canonical decomposition to its lower-case
// base letter. Generated from Python's unicodedata (Unicode 14.0): for each
// code point of the blocks named, NFD gives a letter followed only by
// combining marks.
var foldBase = map[rune]rune{
	// Latin-1 Supplement: 53 letters
	'À': 'a', 'Á': 'a', 'Â': 'a', 'Ã': 'a', 'Ä': 'a', 'Å': 'a', 'Ç': 'c', 'È': 'e',
	'É': 'e', 'Ê': 'e', 'Ë': 'e', 'Ì': 'i', 'Í': 'i', 'Î': 'i', 'Ï': 'i', 'Ñ': 'n',
	'Ò': 'o', 'Ó': 'o', 'Ô': 'o', 'Õ': 'o', 'Ö': 'o', 'Ù': 'u', 'Ú': 'u', 'Û': 'u',
	'Ü': 'u', 'Ý': 'y', 'à': 'a', 'á': 'a', 'â': 'a', 'ã': 'a', 'ä': 'a', 'å': 'a',
	'ç': 'c', 'è': 'e', 'é': 'e', 'ê': 'e', 'ë': 'e', 'ì': 'i', 'í': 'i', 'î': 'i',
	'ï': 'i', 'ñ': 'n', 'ò': 'o', 'ó': 'o', 'ô': 'o', 'õ': 'o', 'ö': 'o', 'ù': 'u',
	'ú': 'u', 'û': 'u', 'ü': 'u', 'ý': 'y', 'ÿ': 'y',
	// Latin Extended-A: 108 letters
	'Ā': 'a', 'ā': 'a', 'Ă': 'a', 'ă': 'a', 'Ą': 'a', 'ą': 'a', 'Ć': 'c', 'ć': 'c',
	'Ĉ': 'c', 'ĉ': 'c', 'Ċ': 'c', 'ċ': 'c', 'Č': 'c', 'č': 'c', 'Ď': 'd', 'ď': 'd',
	'Ē': 'e', 'ē': 'e', 'Ĕ': 'e', 'ĕ': 'e', 'Ė': 'e', 'ė': 'e', 'Ę': 'e', 'ę': 'e',
	'Ě': 'e', 'ě': 'e', 'Ĝ': 'g', 'ĝ': 'g', 'Ğ': 'g', 'ğ': 'g', 'Ġ': 'g', 'ġ': 'g',
	'Ģ': 'g', 'ģ': 'g', 'Ĥ': 'h', 'ĥ': 'h', 'Ĩ': 'i', 'ĩ': 'i', 'Ī': 'i', 'ī': 'i',
	'Ĭ': 'i', 'ĭ': 'i', 'Į': 'i', 'į': 'i', 'İ': 'i', 'Ĵ': 'j', 'ĵ': 'j', 'Ķ': 'k',
	'ķ': 'k', 'Ĺ': 'l', 'ĺ': 'l', 'Ļ': 'l', 'ļ': 'l', 'Ľ': 'l', 'ľ': 'l', 'Ń': 'n',
	'ń': 'n', 'Ņ': 'n', 'ņ': 'n', 'Ň': 'n', 'ň': 'n', 'Ō': 'o', 'ō': 'o', 'Ŏ': 'o',
	'ŏ': 'o', 'Ő': 'o', 'ő': 'o', 'Ŕ': 'r', 'ŕ': 'r', 'Ŗ': 'r', 'ŗ': 'r', 'Ř': 'r',
	'ř': 'r', 'Ś': 's', 'ś': 's', 'Ŝ': 's', 'ŝ': 's', 'Ş': 's', 'ş': 's', 'Š': 's',
	'š': 's', 'Ţ': 't', 'ţ': 't', 'Ť': 't', 'ť': 't', 'Ũ': 'u', 'ũ': 'u', 'Ū': 'u',
	'ū': 'u', 'Ŭ': 'u', 'ŭ': 'u', 'Ů': 'u', 'ů': 'u', 'Ű': 'u', 'ű': 'u', 'Ų': 'u',
	'ų': 'u', 'Ŵ': 'w', 'ŵ': 'w', 'Ŷ': 'y', 'ŷ': 'y', 'Ÿ': 'y', 'Ź': 'z', 'ź': 'z',
	'Ż': 'z', 'ż': 'z', 'Ž': 'z', 'ž': 'z',
	// Latin Extended-B: 91 letters
	'Ơ': 'o', 'ơ': 'o', 'Ư': 'u', 'ư': 'u', 'Ǎ': 'a', 'ǎ': 'a', 'Ǐ': 'i', 'ǐ': 'i',
	'Ǒ': 'o', 'ǒ': 'o', 'Ǔ': 'u', 'ǔ': 'u', 'Ǖ': 'u', 'ǖ': 'u', 'Ǘ': 'u', 'ǘ': 'u',
	'Ǚ': 'u', 'ǚ': 'u', 'Ǜ': 'u', 'ǜ': 'u', 'Ǟ': 'a', 'ǟ': 'a', 'Ǡ': 'a', 'ǡ': 'a',
	'Ǣ': 'æ', 'ǣ': 'æ', 'Ǧ': 'g', 'ǧ': 'g', 'Ǩ': 'k', 'ǩ': 'k', 'Ǫ': 'o', 'ǫ': 'o',
	'Ǭ': 'o', 'ǭ': 'o', 'Ǯ': 'ʒ', 'ǯ': 'ʒ', 'ǰ': 'j', 'Ǵ': 'g', 'ǵ': 'g', 'Ǹ': 'n',
	'ǹ': 'n', 'Ǻ': 'a', 'ǻ': 'a', 'Ǽ': 'æ', 'ǽ': 'æ', 'Ǿ': 'ø', 'ǿ': 'ø', 'Ȁ': 'a',
	'ȁ': 'a', 'Ȃ': 'a', 'ȃ': 'a', 'Ȅ': 'e', 'ȅ': 'e', 'Ȇ': 'e', 'ȇ': 'e', 'Ȉ': 'i',
	'ȉ': 'i', 'Ȋ': 'i', 'ȋ': 'i', 'Ȍ': 'o', 'ȍ': 'o', 'Ȏ': 'o', 'ȏ': 'o', 'Ȑ': 'r',
	'ȑ': 'r', 'Ȓ': 'r', 'ȓ': 'r', 'Ȕ': 'u', 'ȕ': 'u', 'Ȗ': 'u', 'ȗ': 'u', 'Ș': 's',
	'ș': 's', 'Ț': 't', 'ț': 't', 'Ȟ': 'h', 'ȟ': 'h', 'Ȧ': 'a', 'ȧ': 'a', 'Ȩ': 'e',
	'ȩ': 'e', 'Ȫ': 'o', 'ȫ': 'o', 'Ȭ': 'o', 'ȭ': 'o', 'Ȯ': 'o', 'ȯ': 'o', 'Ȱ': 'o',
	'ȱ': 'o', 'Ȳ': 'y', 'ȳ': 'y',
	// Greek: 22 letters
	'Ά': 'α', 'Έ': 'ε', 'Ή': 'η', 'Ί': 'ι', 'Ό': 'ο', 'Ύ': 'υ', 'Ώ': 'ω', 'ΐ': 'ι',
	'Ϊ': 'ι', 'Ϋ': 'υ', 'ά': 'α', 'έ': 'ε', 'ή': 'η', 'ί': 'ι', 'ΰ': 'υ', 'ϊ': 'ι',
	'ϋ': 'υ', 'ό': 'ο', 'ύ': 'υ', 'ώ': 'ω', 'ϓ': 'ϒ', 'ϔ': 'ϒ',
	// Cyrillic: 52 letters
	'Ѐ': 'е', 'Ё': 'е', 'Ѓ': 'г', 'Ї': 'і', 'Ќ': 'к', 'Ѝ': 'и', 'Ў': 'у', 'Й': 'и',
	'й': 'и', 'ѐ': 'е', 'ё': 'е', 'ѓ': 'г', 'ї': 'і', 'ќ': 'к', 'ѝ': 'и', 'ў': 'у',
	'Ѷ': 'ѵ', 'ѷ': 'ѵ', 'Ӂ': 'ж', 'ӂ': 'ж', 'Ӑ': 'а', 'ӑ': 'а', 'Ӓ': 'а', 'ӓ': 'а',
	'Ӗ': 'е', 'ӗ': 'е', 'Ӛ': 'ә', 'ӛ': 'ә', 'Ӝ': 'ж', 'ӝ': 'ж', 'Ӟ': 'з', 'ӟ': 'з',
	'Ӣ': 'и', 'ӣ': 'и', 'Ӥ': 'и', 'ӥ': 'и', 'Ӧ': 'о', 'ӧ': 'о', 'Ӫ': 'ө', 'ӫ': 'ө',
	'Ӭ': 'э', 'ӭ': 'э', 'Ӯ': 'у', 'ӯ': 'у', 'Ӱ': 'у', 'ӱ': 'у', 'Ӳ': 'у', 'ӳ': 'у',
	'Ӵ': 'ч', 'ӵ': 'ч', 'Ӹ': 'ы', 'ӹ': 'ы',
	// Latin Extended Additional (Vietnamese and others): 245 letters
	'Ḁ': 'a', 'ḁ': 'a', 'Ḃ': 'b', 'ḃ': 'b', 'Ḅ': 'b', 'ḅ': 'b', 'Ḇ': 'b', 'ḇ': 'b',
	'Ḉ': 'c', 'ḉ': 'c', 'Ḋ': 'd', 'ḋ': 'd', 'Ḍ': 'd', 'ḍ': 'd', 'Ḏ': 'd', 'ḏ': 'd',
	'Ḑ': 'd', 'ḑ': 'd', 'Ḓ': 'd', 'ḓ': 'd', 'Ḕ': 'e', 'ḕ': 'e', 'Ḗ': 'e', 'ḗ': 'e',
	'Ḙ': 'e', 'ḙ': 'e', 'Ḛ': 'e', 'ḛ': 'e', 'Ḝ': 'e', 'ḝ': 'e', 'Ḟ': 'f', 'ḟ': 'f',
	'Ḡ': 'g', 'ḡ': 'g', 'Ḣ': 'h', 'ḣ': 'h', 'Ḥ': 'h', 'ḥ': 'h', 'Ḧ': 'h', 'ḧ': 'h',
	'Ḩ': 'h', 'ḩ': 'h', 'Ḫ': 'h', 'ḫ': 'h', 'Ḭ': 'i', 'ḭ': 'i', 'Ḯ': 'i', 'ḯ': 'i',
	'Ḱ': 'k', 'ḱ': 'k', 'Ḳ': 'k', 'ḳ': 'k', 'Ḵ': 'k', 'ḵ': 'k', 'Ḷ': 'l', 'ḷ': 'l',
	'Ḹ': 'l', 'ḹ': 'l', 'Ḻ': 'l', 'ḻ': 'l', 'Ḽ': 'l', 'ḽ': 'l', 'Ḿ': 'm', 'ḿ': 'm',
	'Ṁ': 'm', 'ṁ': 'm', 'Ṃ': 'm', 'ṃ': 'm', 'Ṅ': 'n', 'ṅ': 'n', 'Ṇ': 'n', 'ṇ': 'n',
	'Ṉ': 'n', 'ṉ': 'n', 'Ṋ': 'n', 'ṋ': 'n', 'Ṍ': 'o', 'ṍ': 'o', 'Ṏ': 'o', 'ṏ': 'o',
	'Ṑ': 'o', 'ṑ': 'o', 'Ṓ': 'o', 'ṓ': 'o', 'Ṕ': 'p', 'ṕ': 'p', 'Ṗ': 'p', 'ṗ': 'p',
	'Ṙ': 'r', 'ṙ': 'r', 'Ṛ': 'r', 'ṛ': 'r', 'Ṝ': 'r', 'ṝ': 'r', 'Ṟ': 'r', 'ṟ': 'r',
	'Ṡ': 's', 'ṡ': 's', 'Ṣ': 's', 'ṣ': 's', 'Ṥ': 's', 'ṥ': 's', 'Ṧ': 's', 'ṧ': 's',
	'Ṩ': 's', 'ṩ': 's', 'Ṫ': 't', 'ṫ': 't', 'Ṭ': 't', 'ṭ': 't', 'Ṯ': 't', 'ṯ': 't',
	'Ṱ': 't', 'ṱ': 't', 'Ṳ': 'u', 'ṳ': 'u', 'Ṵ': 'u', 'ṵ': 'u', 'Ṷ': 'u', 'ṷ': 'u',
	'Ṹ': 'u', 'ṹ': 'u', 'Ṻ': 'u', 'ṻ': 'u', 'Ṽ': 'v', 'ṽ': 'v', 'Ṿ': 'v', 'ṿ': 'v',
	'Ẁ': 'w', 'ẁ': 'w', 'Ẃ': 'w', 'ẃ': 'w', 'Ẅ': 'w', 'ẅ': 'w', 'Ẇ': 'w', 'ẇ': 'w',
	'Ẉ': 'w', 'ẉ': 'w', 'Ẋ': 'x', 'ẋ': 'x', 'Ẍ': 'x', 'ẍ': 'x', 'Ẏ': 'y', 'ẏ': 'y',
	'Ẑ': 'z', 'ẑ': 'z', 'Ẓ': 'z', 'ẓ': 'z', 'Ẕ': 'z', 'ẕ': 'z', 'ẖ': 'h', 'ẗ': 't',
	'ẘ': 'w', 'ẙ': 'y', 'ẛ': 'ſ', 'Ạ': 'a', 'ạ': 'a', 'Ả': 'a', 'ả': 'a', 'Ấ': 'a',
	'ấ': 'a', 'Ầ': 'a', 'ầ': 'a', 'Ẩ': 'a', 'ẩ': 'a', 'Ẫ': 'a', 'ẫ': 'a', 'Ậ': 'a',
	'ậ': 'a', 'Ắ': 'a', 'ắ': 'a', 'Ằ': 'a', 'ằ': 'a', 'Ẳ': 'a', 'ẳ': 'a', 'Ẵ': 'a',
	'ẵ': 'a', 'Ặ': 'a', 'ặ': 'a', 'Ẹ': 'e', 'ẹ': 'e', 'Ẻ': 'e', 'ẻ': 'e', 'Ẽ': 'e',
	'ẽ': 'e', 'Ế': 'e', 'ế': 'e', 'Ề': 'e', 'ề': 'e', 'Ể': 'e', 'ể': 'e', 'Ễ': 'e',
	'ễ': 'e', 'Ệ': 'e', 'ệ': 'e', 'Ỉ': 'i', 'ỉ': 'i', 'Ị': 'i', 'ị': 'i', 'Ọ': 'o',
	'ọ': 'o', 'Ỏ': 'o', 'ỏ': 'o', 'Ố': 'o', 'ố': 'o', 'Ồ': 'o', 'ồ': 'o', 'Ổ': 'o',
	'ổ': 'o', 'Ỗ': 'o', 'ỗ': 'o', 'Ộ': 'o', 'ộ': 'o', 'Ớ': 'o', 'ớ': 'o', 'Ờ': 'o',
	'ờ': 'o', 'Ở': 'o', 'ở': 'o', 'Ỡ': 'o', 'ỡ': 'o', 'Ợ': 'o', 'ợ': 'o', 'Ụ': 'u',
	'ụ': 'u', 'Ủ': 'u', 'ủ': 'u', 'Ứ': 'u', 'ứ': 'u', 'Ừ': 'u', 'ừ': 'u', 'Ử': 'u',
	'ử': 'u', 'Ữ': 'u', 'ữ': 'u', 'Ự': 'u', 'ự': 'u', 'Ỳ': 'y', 'ỳ': 'y', 'Ỵ': 'y',
	'ỵ': 'y', 'Ỷ': 'y', 'ỷ': 'y', 'Ỹ': 'y', 'ỹ': 'y',
}
