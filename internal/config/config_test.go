package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the expectations of testdata/config/*.txt")

// The guard sections the golden files may use, decoded as the guards would. The config
// package must not import the guards, so these mirror their configurations.
type limitsSection struct {
	CallTimeout             time.Duration `yaml:"call_timeout"`
	MaxConcurrentPerSession int           `yaml:"max_concurrent_per_session"`
	MaxParamsBytes          int           `yaml:"max_params_bytes"`
	MaxResultBytes          int           `yaml:"max_result_bytes"`
}

var guardSections = map[string]func() any{
	"limits": func() any { return &limitsSection{} },
}

const separator = "----\n"

// golden is one testdata/config/NAME.txt: YAML, a line "----", then "OK" or the lines
// of the expected error, each a substring of the error's text. The YAML is parsed as file
// NAME.yaml.
type golden struct {
	path string
	file string // the name the YAML is parsed as
	yaml []byte
	want []string // nil: OK
}

func readGoldens(t testing.TB) []golden {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "config", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no golden files in testdata/config")
	}
	var gs []golden
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		yaml, want, ok := bytes.Cut(data, []byte("\n"+separator))
		if !ok {
			t.Fatalf("%s: no %q line", p, strings.TrimSpace(separator))
		}
		g := golden{path: p, file: strings.TrimSuffix(filepath.Base(p), ".txt") + ".yaml", yaml: append(yaml, '\n')}
		if s := strings.TrimSpace(string(want)); s != "OK" {
			g.want = strings.Split(s, "\n")
		}
		gs = append(gs, g)
	}
	return gs
}

// load parses g's YAML and decodes its guard sections.
func (g golden) load() (*Config, error) {
	c, err := Parse(g.file, g.yaml)
	if err != nil {
		return nil, err
	}
	var errs []error
	for name, s := range c.GuardSections() {
		if mk, ok := guardSections[name]; ok {
			errs = append(errs, s.Decode(mk()))
		}
	}
	return c, errors.Join(errs...)
}

// Variables the golden files use in ${VAR} expansions.
func setGoldenEnv(t *testing.T) {
	t.Setenv("PORTCULLIS_TEST_TOKEN", "s3cret")
	t.Setenv("PORTCULLIS_TEST_HOME", "/home/test")
}

func TestGolden(t *testing.T) {
	setGoldenEnv(t)
	for _, g := range readGoldens(t) {
		t.Run(strings.TrimSuffix(g.file, ".yaml"), func(t *testing.T) {
			_, err := g.load()
			if *update {
				got := "OK"
				if err != nil {
					got = err.Error()
				}
				data := append(bytes.TrimSuffix(g.yaml, []byte("\n")), "\n"+separator+got+"\n"...)
				if err := os.WriteFile(g.path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if g.want == nil {
				if err != nil {
					t.Fatalf("Parse(%s) failed:\n%v", g.file, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%s) succeeded, want an error containing %q", g.file, g.want)
			}
			for _, w := range g.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse(%s) error:\n%v\nwant it to contain %q", g.file, err, w)
				}
			}
		})
	}
}

// TestErrorsNameFileLineField checks that each error of the golden files names the file,
// the line and the field. Syntax errors (files named syntax-*) have no field, and an empty
// file has no line either.
func TestErrorsNameFileLineField(t *testing.T) {
	setGoldenEnv(t)
	for _, g := range readGoldens(t) {
		if g.want == nil {
			continue
		}
		t.Run(strings.TrimSuffix(g.file, ".yaml"), func(t *testing.T) {
			_, err := g.load()
			if err == nil {
				t.Fatal("no error")
			}
			pattern := `^` + regexp.QuoteMeta(g.file) + `:\d+(:\d+)?: [a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*: \S`
			switch {
			case strings.HasPrefix(g.file, "syntax-"):
				pattern = `^` + regexp.QuoteMeta(g.file) + `:\d+: \S`
			case g.file == "empty.yaml":
				pattern = `^` + regexp.QuoteMeta(g.file) + `: \S`
			}
			re := regexp.MustCompile(pattern)
			for _, e := range leaves(err) {
				var ce *Error
				if !errors.As(e, &ce) {
					t.Errorf("error %q is a %T, want a *config.Error", e, e)
				}
				if !re.MatchString(e.Error()) {
					t.Errorf("error %q does not name the file, the line and the field (%s)", e, pattern)
				}
			}
		})
	}
}

// leaves returns the errors joined in err.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

func TestMinimal(t *testing.T) {
	const minimal = `listen: 127.0.0.1:8931
auth: none
servers:
  - name: everything
    url: http://127.0.0.1:3903/mcp
  - name: memory
    command: npx
    args: ["-y", "@modelcontextprotocol/server-memory"]
`
	c, err := Parse("portcullis.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := []Server{
		{Name: "everything", URL: "http://127.0.0.1:3903/mcp"},
		{Name: "memory", Command: "npx", Args: []string{"-y", "@modelcontextprotocol/server-memory"}},
	}
	if !reflect.DeepEqual(c.Servers, want) {
		t.Errorf("servers = %+v, want %+v", c.Servers, want)
	}
	if c.Listen != "127.0.0.1:8931" || !c.Auth.None || c.File != "portcullis.yaml" {
		t.Errorf("config = %+v", c)
	}
	if len(c.GuardSections()) != 0 {
		t.Errorf("guard sections = %v, want none", c.GuardSections())
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("PORTCULLIS_TEST_TOKEN", "s3cret")
	t.Setenv("PORTCULLIS_TEST_HOME", "/home/test")
	os.Unsetenv("PORTCULLIS_TEST_UNSET")
	const yaml = `auth: none
servers:
  - name: remote
    url: https://mcp.example.com/mcp?key=${PORTCULLIS_TEST_TOKEN}
    headers:
      Authorization: Bearer ${PORTCULLIS_TEST_TOKEN}
      X-Plain: $PORTCULLIS_TEST_TOKEN
      X-Unset: "<${PORTCULLIS_TEST_UNSET}>"
      X-Literal: no variables here
  - name: local
    command: ${PORTCULLIS_TEST_HOME}/bin/server
    args: ["--token", "${PORTCULLIS_TEST_TOKEN}"]
    cwd: ${PORTCULLIS_TEST_HOME}
    env:
      TOKEN: ${PORTCULLIS_TEST_TOKEN}
      PATH_LIKE: ${PORTCULLIS_TEST_HOME}/bin:/usr/bin
`
	c, err := Parse("env.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"header with braces", c.Servers[0].Headers["Authorization"], "Bearer s3cret"},
		{"header without braces", c.Servers[0].Headers["X-Plain"], "s3cret"},
		{"unset variable", c.Servers[0].Headers["X-Unset"], "<>"},
		{"no variables", c.Servers[0].Headers["X-Literal"], "no variables here"},
		{"env", c.Servers[1].Env["TOKEN"], "s3cret"},
		{"env in a path", c.Servers[1].Env["PATH_LIKE"], "/home/test/bin:/usr/bin"},
		// Only env and headers are expanded; the rest is taken as written.
		{"url", c.Servers[0].URL, "https://mcp.example.com/mcp?key=${PORTCULLIS_TEST_TOKEN}"},
		{"command", c.Servers[1].Command, "${PORTCULLIS_TEST_HOME}/bin/server"},
		{"args", c.Servers[1].Args, []string{"--token", "${PORTCULLIS_TEST_TOKEN}"}},
		{"cwd", c.Servers[1].Dir, "${PORTCULLIS_TEST_HOME}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

// guardsHead is a configuration up to its guards: key, for the tests of guard sections.
const guardsHead = `auth: none
servers:
  - name: a
    url: http://127.0.0.1:1/mcp
guards:
`

func TestGuardSections(t *testing.T) {
	const yaml = guardsHead + `  limits:
    call_timeout: 5s
    max_concurrent_per_session: 4
  audit:
  authz: {}
`
	c, err := Parse("guards.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	sections := c.GuardSections()
	if len(sections) != 3 {
		t.Fatalf("sections = %v, want limits, audit and authz", sections)
	}
	var l limitsSection
	if err := sections["limits"].Decode(&l); err != nil {
		t.Fatal(err)
	}
	if want := (limitsSection{CallTimeout: 5 * time.Second, MaxConcurrentPerSession: 4}); l != want {
		t.Errorf("limits = %+v, want %+v", l, want)
	}
	// An empty section enables a guard with its defaults: it decodes to nothing.
	for _, name := range []string{"audit", "authz"} {
		l := limitsSection{MaxParamsBytes: 7}
		if err := sections[name].Decode(&l); err != nil || l.MaxParamsBytes != 7 {
			t.Errorf("%s: Decode = %v, %+v; want no change", name, err, l)
		}
	}

	tests := []struct {
		name, field, format string
		want                string
	}{
		{"present field", "max_concurrent_per_session", "must be at most %d", "guards.yaml:8:5: guards.limits.max_concurrent_per_session: must be at most 2"},
		{"absent field", "max_params_bytes", "must be set%s", "guards.yaml:7:5: guards.limits.max_params_bytes: must be set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var arg any = 2
			if tt.name == "absent field" {
				arg = ""
			}
			if got := sections["limits"].Errorf(tt.field, tt.format, arg).Error(); got != tt.want {
				t.Errorf("Errorf = %q, want %q", got, tt.want)
			}
		})
	}

	if got, want := c.GuardError("limits", errors.New("call_timeout too long")).Error(), "guards.yaml:6:3: guards.limits: call_timeout too long"; got != want {
		t.Errorf("GuardError = %q, want %q", got, want)
	}
	located := &Error{File: "guards.yaml", Line: 9, Field: "x", Msg: "y"}
	if got := c.GuardError("limits", located); got != located {
		t.Errorf("GuardError relocated an error that had a place: %v", got)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "portcullis.yaml")
	if err := os.WriteFile(path, []byte("auth: none\nservers:\n  - name: a\n    command: x\n    bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":5: servers[0].bogus: ") {
		t.Errorf("Load error = %v, want it located in %s", err, path)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file = %v, want a not-exist error", err)
	}
}

// FuzzParse checks that Parse and the decoding of guard sections never panic, and that every
// error they return is a *Error naming the file.
func FuzzParse(f *testing.F) {
	for _, g := range readGoldens(f) {
		f.Add(g.yaml)
	}
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("guards: {limits: [1, 2]}\nservers: [{name: a, url: 'http://x'}]\nauth: none\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("servers:\n  - 1\n  - [2]\n  - {x: 3}\nauth: [none]\nmax_depth: {a: b}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const file = "fuzz.yaml"
		c, err := Parse(file, data)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config with error %v", err)
			}
			checkErrors(t, file, err)
			return
		}
		for name, s := range c.GuardSections() {
			var l limitsSection
			if err := s.Decode(&l); err != nil {
				checkErrors(t, file, err)
			}
			_ = s.Errorf("call_timeout", "x")
			_ = c.GuardError(name, errors.New("x"))
		}
	})
}

func checkErrors(t *testing.T, file string, err error) {
	t.Helper()
	for _, e := range leaves(err) {
		var ce *Error
		if !errors.As(e, &ce) || ce.File != file {
			t.Fatalf("error %q (%T) is not a *config.Error naming %s", e, e, file)
		}
	}
}

// BenchmarkParseErrors measures a file with many errors, each located by its line.
func BenchmarkParseErrors(b *testing.B) {
	data := []byte("auth: none\nservers:\n" + strings.Repeat("  - 1\n", 10000))
	for b.Loop() {
		if _, err := Parse("many.yaml", data); err == nil {
			b.Fatal("no error")
		}
	}
}

func TestAuthPaths(t *testing.T) {
	c, err := Parse(filepath.Join("etc", "portcullis", "gw.yaml"), []byte(`
auth:
  api_keys: true
  mtls: {}
tls: {cert: certs/s.crt, key: /abs/s.key, client_ca: ca.pem}
store: {path: state/p.db}
servers: [{name: a, command: x}]
`))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("etc", "portcullis")
	if c.TLS.Cert != filepath.Join(dir, "certs", "s.crt") || c.TLS.Key != "/abs/s.key" || c.TLS.ClientCA != filepath.Join(dir, "ca.pem") {
		t.Errorf("tls paths not relative to the file: %+v", c.TLS)
	}
	if p, err := c.StorePath(); err != nil || p != filepath.Join(dir, "state", "p.db") {
		t.Errorf("StorePath = %q, %v", p, err)
	}
	if !c.Auth.Set || !c.Auth.APIKeys || c.Auth.MTLS == nil || c.Auth.None {
		t.Errorf("auth = %+v", c.Auth)
	}
}

func TestStorePathDefault(t *testing.T) {
	c, err := Parse("p.yaml", []byte("servers: [{name: a, command: x}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.Set || c.Auth.None || c.Auth.APIKeys {
		t.Errorf("no auth key: %+v, want the zero value (secure default decided by serve)", c.Auth)
	}
	t.Setenv("XDG_STATE_HOME", "/state")
	if p, _ := c.StorePath(); p != "/state/portcullis/portcullis.db" {
		t.Errorf("with XDG_STATE_HOME: %q", p)
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if p, _ := c.StorePath(); p != "/home/u/.local/state/portcullis/portcullis.db" {
		t.Errorf("with HOME: %q", p)
	}
}

func TestLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8931": true, "[::1]:1": true, "localhost:80": true, "127.1.2.3:4": true, "127.0.0.1": true,
		"0.0.0.0:8931": false, "[::]:1": false, ":8931": false, "10.0.0.1:1": false, "gw.example:1": false,
	} {
		if got := LoopbackAddr(addr); got != want {
			t.Errorf("LoopbackAddr(%q) = %v", addr, got)
		}
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte("from-a-file\n"), 0o600)
	file := filepath.Join(dir, "portcullis.yaml")
	yaml := `auth: none
servers:
  - name: remote
    url: https://mcp.example.com/mcp
    headers: {Authorization: "Bearer ${file:token}"}
  - name: local
    command: server
    env: {API_TOKEN: "${file:` + filepath.Join(dir, "token") + `}"}
`
	c, err := Parse(file, []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Servers[0].Headers["Authorization"]; got != "Bearer from-a-file" {
		t.Errorf("header = %q", got)
	}
	if got := c.Servers[1].Env["API_TOKEN"]; got != "from-a-file" {
		t.Errorf("env = %q", got)
	}
	_, err = Parse(file, []byte(strings.Replace(yaml, "${file:token}", "${file:missing}", 1)))
	if err == nil || !strings.Contains(err.Error(), "portcullis.yaml:5") || !strings.Contains(err.Error(), "servers[0].headers.Authorization") || !strings.Contains(err.Error(), "secret file") {
		t.Errorf("missing secret file: %v", err)
	}
}

func TestSandboxDefaultsAndSizes(t *testing.T) {
	c, err := Parse("/etc/portcullis/p.yaml", []byte("auth: none\nservers:\n  - name: a\n    command: x\n  - name: b\n    command: y\n    sandbox: {read_write: [data], memory: 1G, require: []}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Servers[0].Sandbox, c.Servers[1].Sandbox
	if !a.On() || len(a.Required()) != 4 {
		t.Errorf("default sandbox: on %v, required %v; want on, all four", a.On(), a.Required())
	}
	if !b.On() || len(b.Required()) != 0 || b.Memory != 1<<30 || b.ReadWrite[0] != "/etc/portcullis/data" {
		t.Errorf("sandbox b: %+v", b)
	}
	for in, want := range map[string]int64{"1024": 1024, "512MiB": 512 << 20, "2G": 2 << 30, "64 KiB": 64 << 10} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1T", "lots", "1.5G"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q): want an error", in)
		}
	}
}

// "NAME: off" (or false) turns a guard off; any other value does not.
func TestGuardSectionOff(t *testing.T) {
	const yaml = guardsHead + `  detect-results: off
  detect-args: false
  registry: {}
  approval:
  limits: "on"
  detect-listings: no
`
	c, err := Parse("guards.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	s := c.GuardSections()
	for name, want := range map[string]bool{"detect-results": true, "detect-args": true, "registry": false, "approval": false, "limits": false, "detect-listings": false} {
		if got := s[name].Off(); got != want {
			t.Errorf("%s: Off() = %v, want %v", name, got, want)
		}
	}
	// A value that is neither off nor a mapping is still refused where the guard decodes it.
	var v struct{}
	if err := s["limits"].Decode(&v); err == nil || !strings.Contains(err.Error(), "guards.yaml:10:11: guards.limits: must be a mapping") {
		t.Errorf("limits: \"on\": Decode = %v, want a located error", err)
	}
}

// A configuration that is not there: the error says so, says how to name one, and is
// still os.ErrNotExist for callers that skip missing files.
func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "portcullis.yaml"))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "--config FILE") {
		t.Errorf("Load of a missing file: %v", err)
	}
}
