// Package config loads the gateway's one YAML file. Decoding is strict (an unknown key is
// an error) and every error names the file, the line and the field.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file.
type Config struct {
	// Listen is the address of the Streamable HTTP endpoint (served at /mcp).
	Listen string `yaml:"listen"`
	// Auth is how clients of the HTTP listener authenticate (see Auth).
	Auth Auth `yaml:"auth"`
	// TLS serves the listener over TLS, and verifies client certificates (mTLS).
	TLS TLS `yaml:"tls"`
	// Store is where durable state (API keys, ...) lives.
	Store Store `yaml:"store"`
	// AllowedHosts and AllowedOrigins extend the DNS-rebinding checks beyond loopback.
	AllowedHosts   []string `yaml:"allowed_hosts"`
	AllowedOrigins []string `yaml:"allowed_origins"`
	// MaxMessageBytes and MaxDepth bound every JSON-RPC message, both directions.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	MaxDepth        int `yaml:"max_depth"`
	// SessionIdleTimeout closes client sessions idle for this long (default 10m).
	SessionIdleTimeout time.Duration `yaml:"session_idle_timeout"`
	// MaxSessions bounds the client sessions open at once (default 10000).
	MaxSessions int `yaml:"max_sessions"`
	// Servers are the upstream MCP servers.
	Servers []Server `yaml:"servers"`
	// Guards enable and parameterize guards, by name.
	Guards map[string]yaml.Node `yaml:"guards"`
	// Log sets the gateway's own log.
	Log Log `yaml:"log"`
	// Fleet lets replicas serve each other's legacy sessions (see fleet.go).
	Fleet Fleet `yaml:"fleet"`
	// Registry names the verified registry of servers (see internal/registry).
	Registry *Registry `yaml:"registry"`
	// Admin is the dashboard's listener (see Admin); nil without one.
	Admin *Admin `yaml:"admin"`

	// File is the path the configuration was read from.
	File string `yaml:"-"`
	root *yaml.Node
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Registry is the registry section: which servers may be fronted, from what source.
type Registry struct {
	// File is the registry file (relative to the configuration file).
	File string `yaml:"file"`
	// Enforce refuses to start with a server that is not in the registry or whose source
	// differs from its entry.
	Enforce bool `yaml:"enforce"`
	// RequirePinned refuses packages without an exact version and executables without a
	// sha256 in the registry.
	RequirePinned bool `yaml:"require_pinned"`
	// RequireSigned refuses to start unless the registry's minisign signature
	// (FILE.minisig) verifies under PublicKey.
	RequireSigned bool `yaml:"require_signed"`
	// PublicKey is a minisign public key file (relative to the configuration file) or the
	// key itself (RW...).
	PublicKey string `yaml:"public_key"`
}

// Path resolves a path of the configuration (relative to the configuration file).
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(c.File), p)
}

// Server is one upstream MCP server: a command (stdio) or a URL (HTTP).
type Server struct {
	Name      string            `yaml:"name"`
	Command   string            `yaml:"command"`
	Args      []string          `yaml:"args"`
	Env       map[string]string `yaml:"env"`
	Dir       string            `yaml:"cwd"`
	URL       string            `yaml:"url"`
	Transport string            `yaml:"transport"` // streamable-http (default for url) or sse
	Headers   map[string]string `yaml:"headers"`
	// StartTimeout bounds the server's start and handshake.
	StartTimeout time.Duration `yaml:"start_timeout"`
	// Sandbox confines a local server (on by default; see sandbox.go).
	Sandbox *Sandbox `yaml:"sandbox"`
}

// Error is a configuration error at a place in the file.
type Error struct {
	File   string
	Line   int
	Column int
	Field  string
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading configuration: %w (name one with --config FILE; examples/portcullis.yaml is a small one to start from)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	return Parse(path, data)
}

var lineRE = regexp.MustCompile(`line (\d+): (.*)`)

// Parse decodes and validates data read from file.
func Parse(file string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(file, nil, "", err)
	}
	if len(root.Content) == 0 {
		return nil, &Error{File: file, Msg: "the file is empty"}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	c := &Config{File: file, root: root.Content[0]}
	if err := dec.Decode(c); err != nil {
		return nil, yamlError(file, c.root, "", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// yamlError converts an error of the YAML decoder. root, when not nil, is the node that was
// decoded, at field path prefix: the field of an error is found from its line.
func yamlError(file string, root *yaml.Node, prefix string, err error) error {
	var ix lineIndex
	if root != nil {
		ix = lineIndex{}
		ix.add(root, prefix)
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		var errs []error
		for _, e := range te.Errors {
			errs = append(errs, lineError(file, ix, e))
		}
		return errors.Join(errs...)
	}
	return lineError(file, ix, strings.TrimPrefix(err.Error(), "yaml: "))
}

var (
	unknownFieldRE = regexp.MustCompile(`field (\S+) not found in type config\.(\w+)`)
	unmarshalRE    = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(?s:(.*))`)? into ")
)

func lineError(file string, ix lineIndex, msg string) error {
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		var line int
		fmt.Sscanf(m[1], "%d", &line)
		field := ""
		// A type error names the kind of the node, and a scalar's value (its first 7 bytes
		// and "..." when longer than 10); look for that node first.
		if u := unmarshalRE.FindStringSubmatch(m[2]); u != nil {
			want := func(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && scalarIs(n.Value, u[2]) }
			switch u[1] {
			case "seq":
				want = func(n *yaml.Node) bool { return n.Kind == yaml.SequenceNode }
			case "map":
				want = func(n *yaml.Node) bool { return n.Kind == yaml.MappingNode }
			}
			field = ix.field(line, want)
		}
		if field == "" {
			field = ix.field(line, nil)
		}
		if f := unknownFieldRE.FindStringSubmatch(m[2]); f != nil {
			for _, p := range ix[line] { // the key itself, when its value is a list or mapping
				if p.key && (p.field == f[1] || strings.HasSuffix(p.field, "."+f[1])) {
					field = p.field
				}
			}
			if field != f[1] && !strings.HasSuffix(field, "."+f[1]) {
				field = f[1]
			}
			return &Error{File: file, Line: line, Field: field, Msg: fmt.Sprintf("unknown field in %s (check the spelling)", strings.ToLower(f[2]))}
		}
		return &Error{File: file, Line: line, Field: field, Msg: m[2]}
	}
	return &Error{File: file, Msg: msg}
}

func scalarIs(value, quoted string) bool {
	if short, ok := strings.CutSuffix(quoted, "..."); ok && len(value) > 10 {
		return strings.HasPrefix(value, short)
	}
	return value == quoted
}

// A lineIndex lists, by line, the fields (as in Error.Field) of the nodes and mapping keys
// starting on that line, innermost first.
type lineIndex map[int][]place

type place struct {
	field string
	node  *yaml.Node
	key   bool // node is the field's key, not its value
}

func (ix lineIndex) add(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			ix.add(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ix.add(v, p)
			ix[v.Line] = append(ix[v.Line], place{p, v, false})
			ix[k.Line] = append(ix[k.Line], place{p, k, true})
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			ix.add(c, p)
			ix[c.Line] = append(ix[c.Line], place{p, c, false})
		}
	}
}

// field returns the field of the innermost node on line that want accepts, or "". With
// want nil, any node or mapping key will do.
func (ix lineIndex) field(line int, want func(*yaml.Node) bool) string {
	for _, p := range ix[line] {
		if want == nil || (!p.key && want(p.node)) {
			return p.field
		}
	}
	return ""
}

// at returns an error located at the node reached by path (mapping keys and sequence
// indexes) from the root; the field is the path joined with dots.
func (c *Config) at(msg string, path ...any) error {
	n := c.root
	line, col := 0, 0
	var field []string
	if n != nil {
		line, col = n.Line, n.Column
	}
	for _, p := range path {
		switch p := p.(type) {
		case string:
			field = append(field, p)
			if n == nil || n.Kind != yaml.MappingNode {
				n = nil
				continue
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
					line, col = n.Content[i].Line, n.Content[i].Column
				}
			}
			n = next
		case int:
			if len(field) > 0 {
				field[len(field)-1] += fmt.Sprintf("[%d]", p)
			}
			if n == nil || n.Kind != yaml.SequenceNode || p >= len(n.Content) {
				n = nil
				continue
			}
			n = n.Content[p]
			line, col = n.Line, n.Column
		}
	}
	return &Error{File: c.File, Line: line, Column: col, Field: strings.Join(field, "."), Msg: msg}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,31}$`)

func (c *Config) validate() error {
	var errs []error
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, c.at(fmt.Sprintf("not a host:port address: %v", err), "listen"))
		}
	}
	errs = append(errs, c.validateAuth()...)
	errs = append(errs, c.validateAdmin()...)
	errs = append(errs, c.validateFleet()...)
	if c.MaxMessageBytes < 0 {
		errs = append(errs, c.at("must not be negative", "max_message_bytes"))
	}
	if c.SessionIdleTimeout < 0 {
		errs = append(errs, c.at("must not be negative", "session_idle_timeout"))
	}
	if c.MaxSessions < 0 {
		errs = append(errs, c.at("must not be negative", "max_sessions"))
	}
	if c.MaxDepth < 0 {
		errs = append(errs, c.at("must not be negative", "max_depth"))
	}
	if len(c.Servers) == 0 {
		errs = append(errs, c.at("at least one server is needed", "servers"))
	}
	seen := map[string]bool{}
	for i := range c.Servers {
		s := &c.Servers[i]
		switch {
		case !nameRE.MatchString(s.Name):
			errs = append(errs, c.at(fmt.Sprintf("server name %q must be 1-32 letters, digits or '-' (it prefixes tool names as name__tool)", s.Name), "servers", i, "name"))
		case seen[s.Name]:
			errs = append(errs, c.at(fmt.Sprintf("server name %q is used twice", s.Name), "servers", i, "name"))
		}
		seen[s.Name] = true
		switch {
		case s.Command != "" && s.URL != "":
			errs = append(errs, c.at("set either command (stdio server) or url (HTTP server), not both", "servers", i, "url"))
		case s.Command == "" && s.URL == "" && (s.Sandbox == nil || s.Sandbox.Wasm == ""):
			errs = append(errs, c.at("set command (stdio server) or url (HTTP server)", "servers", i))
		case s.URL != "":
			u, err := url.Parse(s.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, c.at(fmt.Sprintf("%q is not an http(s) URL", s.URL), "servers", i, "url"))
			}
			if len(s.Args) > 0 || len(s.Env) > 0 || s.Dir != "" {
				errs = append(errs, c.at("args, env and cwd apply to command servers only", "servers", i, "url"))
			}
		case s.Command != "":
			if s.Transport != "" || len(s.Headers) > 0 {
				errs = append(errs, c.at("transport and headers apply to url servers only", "servers", i, "command"))
			}
		}
		errs = append(errs, c.validateSandbox(i, s)...)
		switch s.Transport {
		case "", "streamable-http", "sse":
		default:
			errs = append(errs, c.at(fmt.Sprintf("unknown transport %q (streamable-http or sse)", s.Transport), "servers", i, "transport"))
		}
		for k, v := range s.Env {
			val, err := c.expand(v)
			if err != nil {
				errs = append(errs, c.at(err.Error(), "servers", i, "env", k))
			}
			s.Env[k] = val
		}
		for k, v := range s.Headers {
			val, err := c.expand(v)
			if err != nil {
				errs = append(errs, c.at(err.Error(), "servers", i, "headers", k))
			}
			s.Headers[k] = val
		}
	}
	if r := c.Registry; r != nil {
		if r.File == "" {
			errs = append(errs, c.at("the registry file is required", "registry", "file"))
		}
		if r.RequireSigned && r.PublicKey == "" {
			errs = append(errs, c.at("require_signed needs public_key (a minisign public key file or the key)", "registry", "require_signed"))
		}
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, c.at(fmt.Sprintf("unknown level %q", c.Log.Level), "log", "level"))
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		errs = append(errs, c.at(fmt.Sprintf("unknown format %q", c.Log.Format), "log", "format"))
	}
	return errors.Join(errs...)
}

// expand replaces ${VAR} with the gateway's environment variable VAR and ${file:PATH}
// with the contents of the file at PATH (a secret file, such as a mounted Kubernetes or
// Docker secret; one trailing newline is dropped; a relative path is relative to the
// configuration file). Secrets thus stay out of the configuration.
func (c *Config) expand(v string) (string, error) {
	var ferr error
	out := os.Expand(v, func(name string) string {
		path, ok := strings.CutPrefix(name, "file:")
		if !ok {
			return os.Getenv(name)
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(c.File), path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			ferr = fmt.Errorf("secret file: %w", err)
			return ""
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	})
	return out, ferr
}

// Section is one guard's configuration, decoded strictly by the guard itself.
type Section struct {
	c    *Config
	name string
	node *yaml.Node
}

// GuardSections returns the guard sections by name.
func (c *Config) GuardSections() map[string]*Section {
	out := map[string]*Section{}
	for name := range c.Guards {
		n := c.Guards[name]
		out[name] = &Section{c: c, name: name, node: &n}
	}
	return out
}

// GuardError locates an error about guard name's section.
func (c *Config) GuardError(name string, err error) error {
	var ce *Error
	if errors.As(err, &ce) {
		return err
	}
	return c.at(err.Error(), "guards", name)
}

// Off reports whether the section turns its guard off: "off" or false instead of a
// mapping (a guard that is on by default runs without a section).
func (s *Section) Off() bool {
	if s == nil || s.node == nil || s.node.Kind != yaml.ScalarNode {
		return false
	}
	switch s.node.Tag {
	case "!!bool":
		return s.node.Value == "false" || s.node.Value == "False" || s.node.Value == "FALSE"
	case "!!str":
		return s.node.Value == "off"
	}
	return false
}

// Decode decodes the section into v (a pointer to a struct with yaml tags), refusing keys
// v does not have.
func (s *Section) Decode(v any) error {
	if s == nil || s.node == nil || s.node.Kind == 0 {
		return nil
	}
	if s.node.Kind == yaml.ScalarNode && (s.node.Tag == "!!null" || s.node.Value == "") {
		return nil
	}
	if s.node.Kind != yaml.MappingNode {
		return &Error{File: s.c.File, Line: s.node.Line, Column: s.node.Column, Field: "guards." + s.name, Msg: "must be a mapping ({} for the defaults), or off"}
	}
	known := yamlFields(reflect.TypeOf(v))
	for i := 0; i+1 < len(s.node.Content); i += 2 {
		k := s.node.Content[i]
		if !known[k.Value] {
			return &Error{File: s.c.File, Line: k.Line, Column: k.Column, Field: "guards." + s.name + "." + k.Value, Msg: "unknown field (check the spelling)"}
		}
	}
	if err := s.node.Decode(v); err != nil {
		return yamlError(s.c.File, s.node, "guards."+s.name, err)
	}
	return nil
}

// Errorf returns an error located at field of the section.
func (s *Section) Errorf(field, format string, args ...any) error {
	line, col := s.node.Line, s.node.Column
	for i := 0; i+1 < len(s.node.Content); i += 2 {
		if s.node.Content[i].Value == field {
			line, col = s.node.Content[i].Line, s.node.Content[i].Column
		}
	}
	return &Error{File: s.c.File, Line: line, Column: col, Field: "guards." + s.name + "." + field, Msg: fmt.Sprintf(format, args...)}
}

func yamlFields(t reflect.Type) map[string]bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := map[string]bool{}
	if t.Kind() != reflect.Struct {
		return out
	}
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" {
			tag = strings.ToLower(t.Field(i).Name)
		}
		if tag != "-" {
			out[tag] = true
		}
	}
	return out
}
