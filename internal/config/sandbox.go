package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Sandbox is how a local (command or wasm) server is confined. It is on unless
// enabled: false; every limit has a default.
type Sandbox struct {
	// Enabled turns the sandbox off with false (default true).
	Enabled *bool `yaml:"enabled"`
	// ReadWrite and ReadOnly are the directories (or files) the server may use, besides
	// the system's and its own install, which it may read.
	ReadWrite []string `yaml:"read_write"`
	ReadOnly  []string `yaml:"read_only"`
	// Egress lists the hosts the server may reach through the gateway's egress proxy
	// ("api.example.com", "api.example.com:8443", ".example.com"); empty: no network.
	Egress []string `yaml:"egress"`
	// EgressAllowPrivate lists address ranges egress may reach although not public.
	EgressAllowPrivate []string `yaml:"egress_allow_private"`
	// Memory bounds the server's data ("512MiB", "2G"; default 2GiB).
	Memory ByteSize `yaml:"memory"`
	// CPU bounds the server's CPU time (default 1h).
	CPU time.Duration `yaml:"cpu"`
	// Processes bounds its processes and threads (default 256); Files its open files
	// (default 1024).
	Processes int `yaml:"processes"`
	Files     int `yaml:"files"`
	// Require lists the protections the server must not start without (default all:
	// namespaces, landlock, seccomp, rlimits); [] starts it with what the kernel has.
	Require *[]string `yaml:"require"`
	// Wasm is a WebAssembly module run in wazero instead of a command.
	Wasm string `yaml:"wasm"`
	// Timeout bounds a WebAssembly server's whole run (default none).
	Timeout time.Duration `yaml:"timeout"`
	// UID is the host user servers run as when the gateway runs as root (default 65534).
	UID int `yaml:"uid"`

	// AllowPrefixes is EgressAllowPrivate parsed.
	AllowPrefixes []netip.Prefix `yaml:"-"`
}

// Sandbox defaults.
const (
	DefaultSandboxMemory    = 2 << 30
	DefaultSandboxCPU       = time.Hour
	DefaultSandboxProcesses = 256
	DefaultSandboxFiles     = 1024
)

// SandboxProtections are the names sandbox.require accepts.
var SandboxProtections = []string{"namespaces", "landlock", "seccomp", "rlimits"}

// On reports whether the sandbox applies.
func (s *Sandbox) On() bool { return s == nil || s.Enabled == nil || *s.Enabled }

// Required returns the protections required (all by default).
func (s *Sandbox) Required() []string {
	if s == nil || s.Require == nil {
		return append([]string(nil), SandboxProtections...)
	}
	return *s.Require
}

// ByteSize is a number of bytes, written as an integer or with a unit (K, M, G, KiB,
// MiB, GiB; powers of 1024 either way).
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: cannot unmarshal !!str `%s` into a size (bytes, or a number with K, M, G, KiB, MiB or GiB)", n.Line, n.Value)
	}
	*b = ByteSize(v)
	return nil
}

// ParseByteSize parses "1024", "512MiB", "2G".
func ParseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(v), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("not a size")
	}
	return n * mult, nil
}

func (c *Config) validateSandbox(i int, s *Server) []error {
	var errs []error
	sb := s.Sandbox
	if sb == nil {
		return nil
	}
	at := func(msg string, field ...any) {
		errs = append(errs, c.at(msg, append([]any{"servers", i, "sandbox"}, field...)...))
	}
	if s.URL != "" {
		at("sandbox applies to local (command or wasm) servers only")
		return errs
	}
	if sb.Wasm != "" && s.Command != "" {
		at("set either command or sandbox.wasm, not both", "wasm")
	}
	if sb.Wasm != "" && !sb.On() {
		at("a WebAssembly server always runs in the sandbox", "enabled")
	}
	if sb.Memory < 0 || sb.CPU < 0 || sb.Processes < 0 || sb.Files < 0 || sb.Timeout < 0 || sb.UID < 0 {
		at("limits must not be negative")
	}
	if sb.CPU > 0 && sb.CPU < time.Second {
		at("must be at least 1s", "cpu")
	}
	if sb.Require != nil {
		for j, r := range *sb.Require {
			ok := false
			for _, p := range SandboxProtections {
				ok = ok || p == r
			}
			if !ok {
				at(fmt.Sprintf("unknown protection %q (one of %s)", r, strings.Join(SandboxProtections, ", ")), "require", j)
			}
		}
	}
	base := filepath.Dir(c.File)
	abs := func(list []string, field string) {
		for j, p := range list {
			if p == "" {
				at("empty path", field, j)
				continue
			}
			if !filepath.IsAbs(p) {
				list[j] = filepath.Join(base, p)
			}
			if filepath.Clean(list[j]) == "/" {
				at("the whole filesystem cannot be granted", field, j)
			}
		}
	}
	abs(sb.ReadWrite, "read_write")
	abs(sb.ReadOnly, "read_only")
	if sb.Wasm != "" && !filepath.IsAbs(sb.Wasm) {
		sb.Wasm = filepath.Join(base, sb.Wasm)
	}
	for j, h := range sb.Egress {
		if h == "" || strings.ContainsAny(h, "/ @") {
			at(fmt.Sprintf("%q is not a host, host:port or .domain", h), "egress", j)
		}
	}
	for j, p := range sb.EgressAllowPrivate {
		pr, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				at(fmt.Sprintf("%q is not an address or CIDR range", p), "egress_allow_private", j)
				continue
			}
			pr = netip.PrefixFrom(a, a.BitLen())
		}
		sb.AllowPrefixes = append(sb.AllowPrefixes, pr)
	}
	return errs
}
