package secrets

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/detect"
)

func TestFind(t *testing.T) {
	tests := []struct {
		text string
		rule string // "" for none at medium or above
	}{
		{"key=AKIAZ7QJ3NB4X5TLUE6M ok", "aws-access-key-id"},
		{"aws_access_key: AKIAIOSFODNN7EXAMPLE", ""},
		{"token ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5", "github-token"},
		{"glpat-" + "xT4mQ9vL2kR7nB5wC8yZ", "gitlab-token"},
		{"SLACK=xoxb-" + "2718281828-3141592653-a1B2c3D4e5F6g7H8i9J0kLmN", "slack-token"},
		{"stripe sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "stripe-key"},
		{"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aumf3bMa7mTmNVMnf0h2bJ2m3N\n-----END RSA PRIVATE KEY-----", "private-key"},
		{"Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "auth-header"},
		{"db: postgres://app:Xk9fLq2mPz@db.internal:5432/app", "url-credentials"},
		{"postgres://user:password@localhost/db", ""},
		{"curl -u admin:S3cr3tPa55w0rd https://x", "curl-user"},
		{"curl -u $USER:$PASS https://x", ""},
		{"DB_PASSWORD=Vq8#kL2p!mX9zR4w", "generic-secret"},
		{"password = hunter2", ""},
		{"keyPressed = kVK_Return.u16", ""},
		{"The token expires after 3600 seconds; the key is rotated daily.", ""},
		{"client_secret=bP88Q~" + "rcBcYjzzOhg1Hnn76Wm3jGgakZiZ.8vMgR", "azure-ad-client-secret"},
	}
	for _, tt := range tests {
		fs := detect.AtLeast(Default.Scan(tt.text, "/x"), detect.Medium)
		got := ""
		if len(fs) > 0 {
			got = fs[0].Rule
		}
		if got != tt.rule {
			t.Errorf("Scan(%q) = %v, want rule %q", tt.text, fs, tt.rule)
		}
		for _, f := range fs {
			if strings.Contains(f.Evidence, tt.text[f.Start:f.End]) && f.End-f.Start > 8 {
				t.Errorf("evidence %q shows the whole secret", f.Evidence)
			}
		}
	}
}

// TestGitleaksCorpus checks the targets on gitleaks' own samples (../shared/eval).
func TestGitleaksCorpus(t *testing.T) {
	path := filepath.Join("..", "..", "..", "..", "shared", "eval", "gitleaks", "gitleaks_rule_samples.jsonl")
	f, err := os.Open(path)
	if err != nil {
		t.Skip("corpus not present:", err)
	}
	defer f.Close()
	var tp, tpHit, fp, fpHit int
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c struct{ RuleID, Label, Text string }
		var raw map[string]string
		json.Unmarshal(sc.Bytes(), &raw)
		c.RuleID, c.Label, c.Text = raw["rule_id"], raw["label"], raw["text"]
		hit := len(detect.AtLeast(Default.Scan(c.Text, ""), detect.Medium)) > 0
		if c.Label == "tp" {
			tp++
			if hit {
				tpHit++
			} else if testing.Verbose() {
				t.Logf("miss %s: %.120q", c.RuleID, c.Text)
			}
		} else {
			fp++
			if hit {
				fpHit++
				if testing.Verbose() {
					t.Logf("false %s: %.120q %v", c.RuleID, c.Text, Default.Scan(c.Text, ""))
				}
			}
		}
	}
	t.Logf("true positives caught %d/%d (%.1f%%), false positives flagged %d/%d (%.1f%%)", tpHit, tp, 100*float64(tpHit)/float64(tp), fpHit, fp, 100*float64(fpHit)/float64(fp))
	if float64(tpHit) < 0.95*float64(tp) || float64(fpHit) > 0.05*float64(fp) {
		t.Errorf("targets missed: want >= 95%% caught and <= 5%% flagged")
	}
}

func FuzzScan(f *testing.F) {
	f.Add("AKIAZ7QJ3NB4X5TLUE6M -----BEGIN PRIVATE KEY----- key=abc123XYZ789qwe")
	f.Add("curl -u a:b --user=x:y Authorization: Bearer x")
	f.Fuzz(func(t *testing.T, s string) {
		for _, fd := range Default.Scan(s, "") {
			if fd.Start < 0 || fd.End > len(s) || fd.Start > fd.End {
				t.Fatalf("bad span %d..%d in %d bytes", fd.Start, fd.End, len(s))
			}
		}
	})
}

// sampleText is about 1 MiB of tool output: prose, code and configuration that mention
// keys and tokens without holding any.
func sampleText() string {
	parts := []string{
		"The function reads the configuration file and returns a map of settings. Each key is a string; values may be numbers or strings.\n",
		"func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {\n\tif c.token == \"\" {\n\t\treturn nil, errNoToken\n\t}\n\treq.Header.Set(\"Accept\", \"application/json\")\n\treturn c.send(ctx, req)\n}\n",
		"| id | name | created_at | status |\n| 1 | alpha | 2024-01-02 | active |\n| 2 | beta | 2024-02-03 | disabled |\n",
		"To authenticate, pass your API key in the header. Tokens expire after one hour; refresh them with the auth endpoint.\n",
		"{\"user\": \"alice\", \"roles\": [\"dev\", \"ops\"], \"lastLogin\": \"2024-05-01T10:00:00Z\", \"preferences\": {\"theme\": \"dark\"}}\n",
		"See https://example.com/docs/getting-started for details, or run `make test` to check your setup.\n",
	}
	var b strings.Builder
	for b.Len() < 1<<20 {
		for _, p := range parts {
			b.WriteString(p)
		}
	}
	return b.String()
}

func BenchmarkScan(b *testing.B) {
	text := sampleText()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		Default.Scan(text, "")
	}
}

// TestRulesCompile: the expressions are compiled on first use, so a bad one would only
// show in a gateway's traffic; compile them all here.
func TestRulesCompile(t *testing.T) {
	for _, r := range Rules {
		if _, err := regexp.Compile(r.Pattern.String()); err != nil {
			t.Errorf("rule %s: %v", r.ID, err)
		}
		if r.Pattern.Regexp() == nil || r.Pattern.Regexp() != r.Pattern.Regexp() {
			t.Errorf("rule %s: not compiled once", r.ID)
		}
	}
}
