package pii

import (
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	tests := []struct {
		text string
		want []string // "rule:matched text"
	}{
		{"Card: 4111 1111 1111 1111, exp 12/29", []string{"card-number:4111 1111 1111 1111"}},
		{"amex 378282246310005.", []string{"card-number:378282246310005"}},
		{"mc 5555-5555-5555-4444", []string{"card-number:5555-5555-5555-4444"}},
		{"not luhn 4111 1111 1111 1112", nil},
		{"order id 4111111111111111abc", nil},
		{"zeros 0000 0000 0000 0000", nil},
		{"timestamp 1700000000000000 ms", nil},
		{"IBAN: DE89 3704 0044 0532 0130 00 (Commerzbank)", []string{"iban:DE89 3704 0044 0532 0130 00"}},
		{"GB82WEST12345698765432", []string{"iban:GB82WEST12345698765432"}},
		{"bad check GB83WEST12345698765432", nil},
		{"write to jane.doe+mcp@example.co.uk today", []string{"email:jane.doe+mcp@example.co.uk"}},
		{"git@github.com:org/repo.git", []string{"email:git@github.com"}},
		{"decorator @app.route and npm @scope/pkg", nil},
		{"version 1.2.3@4.5", nil},
		{"call +44 20 7946 0958 or (555) 123-4567 or 555-123-4567", []string{"phone:+44 20 7946 0958", "phone:(555) 123-4567", "phone:555-123-4567"}},
		{"date 2024-01-02, ip 10.0.0.1, version 1.2.3, port 8080, 3.14159265", nil},
		{"uuid 123e4567-e89b-12d3-a456-426614174000", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, m := range Find(tt.text) {
			got = append(got, m.Rule+":"+tt.text[m.Start:m.End])
		}
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("Find(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestScanEvidence(t *testing.T) {
	fs := Scan("pay with 4111 1111 1111 1111 or mail jane@example.com", "/content/0/text")
	if len(fs) != 2 {
		t.Fatalf("Scan = %v", fs)
	}
	for _, f := range fs {
		if strings.Contains(f.Evidence, "1111 1111 1111") || strings.Contains(f.Evidence, "jane") {
			t.Errorf("evidence %q shows the data", f.Evidence)
		}
	}
	if fs[0].Severity != Severity(Card) || fs[1].Severity != Severity(Email) || Severity(Card) <= Severity(Email) {
		t.Errorf("severities %v %v", fs[0].Severity, fs[1].Severity)
	}
}

func BenchmarkScan(b *testing.B) {
	var sb strings.Builder
	for sb.Len() < 1<<20 {
		sb.WriteString("The function reads the configuration file and returns a map of settings. Version 1.2.3 released 2024-01-02.\n")
		sb.WriteString("| id | name | created_at | amount |\n| 1042 | alpha | 2024-01-02 | 1,299.00 |\n")
		sb.WriteString("Contact: ops@example.com, +1 415 555 0100. Ticket #48213 closed by @maria.\n")
	}
	text := sb.String()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		Scan(text, "")
	}
}

func FuzzScan(f *testing.F) {
	f.Add("4111 1111 1111 1111 DE89 3704 0044 0532 0130 00 a@b.co +44 20 7946 0958 (555) 123-4567")
	f.Fuzz(func(t *testing.T, s string) {
		prev := 0
		for _, m := range Find(s) {
			if m.Start < prev || m.End <= m.Start || m.End > len(s) {
				t.Fatalf("Find(%q): bad span %+v after %d", s, m, prev)
			}
			prev = m.End
		}
	})
}
