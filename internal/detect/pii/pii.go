// Package pii finds personal data in text: payment card numbers (checked with the Luhn
// sum and the issuer's prefix), IBANs (checked with their mod-97 digits and the length of
// their country), e-mail addresses and phone numbers. Cards and IBANs are high: a tool
// result that carries one leaks what a model should never repeat. E-mail addresses and
// phone numbers are low: they are everywhere in ordinary results (commit authors, contact
// pages), and a policy that wants them out says so.
//
// One linear pass: digits, '@' and capital letters start the checks; everything else is
// skipped.
package pii

import (
	"strings"

	"github.com/portcullis-mcp/portcullis/internal/detect"
)

// Name is the detector's name in findings.
const Name = "pii"

// Rules.
const (
	Card  = "card-number"
	IBAN  = "iban"
	Email = "email"
	Phone = "phone"
)

var ruleInfo = map[string]struct {
	sev detect.Severity
	msg string
}{
	Card:  {detect.High, "a payment card number (Luhn-valid)"},
	IBAN:  {detect.High, "an IBAN (valid check digits)"},
	Email: {detect.Low, "an e-mail address"},
	Phone: {detect.Low, "a phone number"},
}

// Severity returns the severity of a rule.
func Severity(rule string) detect.Severity { return ruleInfo[rule].sev }

// Match is one piece of personal data.
type Match struct {
	Rule       string
	Start, End int
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'z' || isUpper(c)
}

// Find returns the personal data in text, in order.
func Find(text string) []Match {
	var out []Match
	n := len(text)
	for i := 0; i < n; {
		for i < n && !startByte[text[i]] {
			i++
		}
		if i >= n {
			break
		}
		c := text[i]
		switch {
		case isDigit(c) || c == '+' || c == '(':
			if i > 0 && (isAlnum(text[i-1]) || text[i-1] == '.' || text[i-1] == '_' || text[i-1] == '/' || text[i-1] == '-') && c != '(' {
				i = skipToken(text, i)
				continue
			}
			if e, ok := card(text, i); ok {
				out = append(out, Match{Card, i, e})
				i = e
				continue
			}
			if e, ok := phone(text, i); ok {
				out = append(out, Match{Phone, i, e})
				i = e
				continue
			}
			i = skipToken(text, i)
		case isUpper(c) && i+3 < n && isUpper(text[i+1]) && isDigit(text[i+2]) && isDigit(text[i+3]):
			if i > 0 && isAlnum(text[i-1]) {
				i++
				continue
			}
			if e, ok := iban(text, i); ok {
				out = append(out, Match{IBAN, i, e})
				i = e
				continue
			}
			i += 2
		case c == '@':
			if s, e, ok := email(text, i); ok {
				// The local part was already passed over: drop what it made.
				for len(out) > 0 && out[len(out)-1].End > s {
					out = out[:len(out)-1]
				}
				out = append(out, Match{Email, s, e})
				i = e
				continue
			}
			i++
		default:
			i++
		}
	}
	return out
}

// startByte marks the bytes that can start something Find looks for.
var startByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	t['+'], t['('], t['@'] = true, true, true
	return
}()

// skipToken moves past a run of digits and letters.
func skipToken(text string, i int) int {
	i++
	for i < len(text) && (isAlnum(text[i])) {
		i++
	}
	return i
}

// card reads 13 to 19 digits in groups (one space or dash between them) from i.
func card(text string, i int) (int, bool) {
	var digits [19]byte
	nd := 0
	j := i
	for j < len(text) {
		c := text[j]
		if isDigit(c) {
			if nd == 19 {
				return 0, false
			}
			digits[nd] = c - '0'
			nd++
			j++
			continue
		}
		if (c == ' ' || c == '-') && j+1 < len(text) && isDigit(text[j+1]) && nd > 0 {
			j++
			continue
		}
		break
	}
	// Trailing separators are not part of it; a number running into letters is an id.
	if nd < 13 || j < len(text) && (isAlnum(text[j]) || text[j] == '.' && j+1 < len(text) && isDigit(text[j+1])) {
		return 0, false
	}
	d := digits[:nd]
	if !issuer(d) || !luhn(d) || same(d) {
		return 0, false
	}
	return j, true
}

func same(d []byte) bool {
	for _, x := range d[1:] {
		if x != d[0] {
			return false
		}
	}
	return true
}

// issuer reports prefixes and lengths of the card networks.
func issuer(d []byte) bool {
	p2 := int(d[0])*10 + int(d[1])
	p4 := p2*100 + int(d[2])*10 + int(d[3])
	n := len(d)
	switch {
	case d[0] == 4: // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p2 == 34 || p2 == 37: // American Express
		return n == 15
	case p4 == 6011 || p2 == 65 || p4 >= 6440 && p4 <= 6499: // Discover
		return n >= 16
	case p4 >= 3528 && p4 <= 3589: // JCB
		return n >= 16
	case p2 == 36 || p2 == 38 || p2 == 30: // Diners
		return n >= 14
	case p2 == 62: // UnionPay
		return n >= 16
	case p2 == 50 || p2 >= 56 && p2 <= 69: // Maestro
		return n >= 12
	}
	return false
}

func luhn(d []byte) bool {
	sum := 0
	for k := 0; k < len(d); k++ {
		x := int(d[len(d)-1-k])
		if k%2 == 1 {
			x *= 2
			if x > 9 {
				x -= 9
			}
		}
		sum += x
	}
	return sum%10 == 0
}

// ibanLength is the length of an IBAN per country (ISO 13616 registry).
var ibanLength = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
	"ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
	"HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
	"LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
	"MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
	"RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
	"TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

// iban reads an IBAN at i: country, check digits, then letters and digits, in groups of
// four separated by single spaces or not at all.
func iban(text string, i int) (int, bool) {
	want, ok := ibanLength[text[i:i+2]]
	if !ok {
		return 0, false
	}
	var buf [34]byte
	nb := 0
	j := i
	for j < len(text) && nb < want {
		c := text[j]
		switch {
		case isDigit(c) || isUpper(c):
			buf[nb] = c
			nb++
			j++
		case c == ' ' && nb%4 == 0 && j+1 < len(text) && isAlnum(text[j+1]):
			j++
		default:
			return 0, false
		}
	}
	if nb != want || j < len(text) && isAlnum(text[j]) {
		return 0, false
	}
	// Move the first four characters to the end, read letters as 10..35, mod 97.
	rem := 0
	for k := 0; k < nb; k++ {
		c := buf[(k+4)%nb]
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			rem = (rem*100 + int(c-'A'+10)) % 97
		}
	}
	return j, rem == 1
}

// phone reads an international number (+ and 8 to 15 digits) or a North American one
// ((NNN) NNN-NNNN, NNN-NNN-NNNN, NNN.NNN.NNNN) at i.
func phone(text string, i int) (int, bool) {
	if text[i] == '+' {
		nd, groups := 0, 0
		j := i + 1
		prevDigit := false
		for j < len(text) {
			c := text[j]
			if isDigit(c) {
				nd++
				if !prevDigit {
					groups++
				}
				prevDigit = true
				j++
				continue
			}
			if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') && j+1 < len(text) && (isDigit(text[j+1]) || text[j+1] == '(') {
				prevDigit = false
				j++
				continue
			}
			break
		}
		if nd < 8 || nd > 15 || j < len(text) && isAlnum(text[j]) || i+1 < len(text) && !isDigit(text[i+1]) {
			return 0, false
		}
		return j, true
	}
	// North American: three groups of 3, 3 and 4 digits.
	j := i
	paren := text[j] == '('
	if paren {
		j++
	}
	g := func(n int) bool {
		for k := 0; k < n; k++ {
			if j >= len(text) || !isDigit(text[j]) {
				return false
			}
			j++
		}
		return true
	}
	if !g(3) {
		return 0, false
	}
	var sep byte
	if paren {
		if j >= len(text) || text[j] != ')' {
			return 0, false
		}
		j++
		if j < len(text) && text[j] == ' ' {
			j++
		}
		sep = '-'
	} else {
		if j >= len(text) || text[j] != '-' && text[j] != '.' && text[j] != ' ' {
			return 0, false
		}
		sep = text[j]
		j++
	}
	if !g(3) || j >= len(text) || text[j] != sep && !(paren && (text[j] == '-' || text[j] == '.')) {
		return 0, false
	}
	j++
	if !g(4) || j < len(text) && (isAlnum(text[j]) || text[j] == '-' || text[j] == '.' && j+1 < len(text) && isDigit(text[j+1])) {
		return 0, false
	}
	return j, true
}

// email reads the address around the '@' at at: a local part before it, a domain with a
// dot and a top-level domain of letters after it.
func email(text string, at int) (int, int, bool) {
	s := at
	for s > 0 && (isAlnum(text[s-1]) || strings.IndexByte("._%+-", text[s-1]) >= 0) {
		s--
	}
	for s < at && text[s] == '.' {
		s++
	}
	if s == at || at-s > 64 {
		return 0, 0, false
	}
	e := at + 1
	lastDot := -1
	for e < len(text) && (isAlnum(text[e]) || text[e] == '-' || text[e] == '.' && e+1 < len(text) && isAlnum(text[e+1])) {
		if text[e] == '.' {
			lastDot = e
		}
		e++
	}
	if lastDot < 0 || e-lastDot-1 < 2 || lastDot == at+1 {
		return 0, 0, false
	}
	for k := lastDot + 1; k < e; k++ {
		if isDigit(text[k]) {
			return 0, 0, false
		}
	}
	return s, e, true
}

// Scan returns a finding for each piece of personal data in text.
func Scan(text, pointer string) []detect.Finding { return ScanAtLeast(text, pointer, detect.Info) }

// ScanAtLeast returns a finding for each piece of personal data of severity min or above.
func ScanAtLeast(text, pointer string, min detect.Severity) []detect.Finding {
	ms := Find(text)
	if len(ms) == 0 {
		return nil
	}
	var out []detect.Finding
	for _, m := range ms {
		info := ruleInfo[m.Rule]
		if info.sev < min {
			continue
		}
		ev := detect.Mask(text[m.Start:m.End])
		if m.Rule == Email {
			if at := strings.IndexByte(text[m.Start:m.End], '@'); at >= 0 {
				ev = "…" + detect.Evidence(text[m.Start+at:m.End]) // the domain only
			}
		}
		out = append(out, detect.Finding{Detector: Name, Rule: m.Rule, Severity: info.sev, Pointer: pointer,
			Evidence: ev, Message: "the text contains " + info.msg, Start: m.Start, End: m.End})
	}
	return out
}
