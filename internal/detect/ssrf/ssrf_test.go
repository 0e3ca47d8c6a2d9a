package ssrf

import (
	"context"
	"net/netip"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/detect"
)

func TestCheck(t *testing.T) {
	c := New(Options{})
	tests := []struct {
		v       string
		urlParm bool
		want    detect.Severity // highest severity; Info for no finding
	}{
		{"http://169.254.169.254/latest/meta-data/", true, detect.Critical},
		{"http://[fd00:ec2::254]/", true, detect.Critical},
		{"http://metadata.google.internal/computeMetadata/v1/", true, detect.Critical},
		{"http://127.0.0.1:8080/admin", true, detect.High},
		{"http://2130706433/", true, detect.High},
		{"http://0x7f000001/", true, detect.High},
		{"http://0177.0.0.1/", true, detect.High},
		{"http://127.1/", true, detect.High},
		{"http://[::ffff:127.0.0.1]/", true, detect.High},
		{"http://[::ffff:a9fe:a9fe]/", true, detect.Critical},
		{"http://localhost./", true, detect.High},
		{"http://LOCALHOST/", true, detect.High},
		{"http://example.com@127.0.0.1/", true, detect.High},
		{"http://10.0.0.5/", false, detect.High},
		{"http://192.168.1.1", true, detect.High},
		{"http://169.254.169.254.nip.io/", true, detect.Critical},
		{"http://127-0-0-1.sslip.io/", true, detect.High},
		{"http://[::1]:3000", true, detect.High},
		{"gopher://example.com:25/", true, detect.High},
		{"file:///etc/passwd", false, detect.High},
		{"http://①②⑦.0.0.1/", true, detect.High},
		{"localhost:6379", true, detect.High},
		{"https://example.com/page", true, detect.Info},
		{"https://api.github.com/repos", false, detect.Info},
		{"see https://example.com", false, detect.Info},
		{"https://8.8.8.8/", true, detect.Info},
		{"https://1.2.3.4.example.com/", true, detect.Info},
	}
	for _, tt := range tests {
		fs := c.Check(context.Background(), tt.v, "/arguments/url", tt.urlParm)
		got, _ := detect.Max(fs)
		if got != tt.want {
			t.Errorf("Check(%q) max %v, want %v: %v", tt.v, got, tt.want, fs)
		}
	}
}

func TestAllow(t *testing.T) {
	c := New(Options{AllowHosts: []string{"localhost"}, AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}})
	for _, v := range []string{"http://localhost:8080/", "http://10.1.2.3/"} {
		if fs := c.Check(context.Background(), v, "", true); len(fs) > 0 {
			t.Errorf("Check(%q) = %v despite the allow list", v, fs)
		}
	}
	if fs := c.Check(context.Background(), "http://10.2.0.1/", "", true); len(fs) == 0 {
		t.Error("10.2.0.1 passed")
	}
}

func TestParseHost(t *testing.T) {
	for in, want := range map[string]string{
		"2130706433": "127.0.0.1", "0x7f.1": "127.0.0.1", "017700000001": "127.0.0.1", "10.1": "10.0.0.1",
		"::ffff:10.0.0.1": "10.0.0.1", "64:ff9b::a9fe:a9fe": "169.254.169.254",
	} {
		a, _, ok := ParseHost(in)
		if !ok || a.String() != want {
			t.Errorf("ParseHost(%q) = %v, %v; want %s", in, a, ok, want)
		}
	}
	for _, in := range []string{"example.com", "1.2.3.4.5", "256.1.1.1", "0x", "1..1"} {
		if a, _, ok := ParseHost(in); ok && in != "0x" {
			t.Errorf("ParseHost(%q) = %v, want no address", in, a)
		}
	}
}

func FuzzCheck(f *testing.F) {
	c := New(Options{})
	for _, s := range []string{"http://127.0.0.1/", "http://[::ffff:1.2.3.4]", "gopher://x", "http://a@b@c/", "0x7f.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c.Check(context.Background(), s, "/u", true)
	})
}
