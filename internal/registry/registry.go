// Package registry is the verified registry of MCP servers: which servers the gateway may
// front, who owns each, and its source identity (the command, arguments and exact package
// version of a stdio server, the SHA-256 of a local executable, the URL and optionally the
// certificate key of a remote server). A registry file can be signed with minisign
// (Ed25519); the gateway then refuses to start on an unsigned or altered one, naming the
// entry that changed.
//
// This package decides on sources; the registry guard (internal/guards/registry) keeps
// what the servers offer pinned.
package registry

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-mcp/portcullis/internal/config"
)

// Registry is a loaded registry file.
type Registry struct {
	File    string
	Data    []byte // the file as read (what a signature covers)
	Entries []Entry
	byName  map[string]int
}

// Entry is one server the gateway may front.
type Entry struct {
	Name  string `json:"name"`
	Owner string `json:"owner"`
	// Stdio servers.
	Command string   `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	SHA256  string   `json:"sha256,omitempty"` // hex SHA-256 of the executable, checked at every start
	// Remote servers.
	URL  string   `json:"url,omitempty"`
	SPKI []string `json:"spki_sha256,omitempty"` // base64 SHA-256 of the certificate's SubjectPublicKeyInfo (any may match)

	Line int `json:"-"`
}

// Lookup returns the entry named name.
func (r *Registry) Lookup(name string) (*Entry, bool) {
	i, ok := r.byName[name]
	if !ok {
		return nil, false
	}
	return &r.Entries[i], true
}

// Names returns the entries' names in file order.
func (r *Registry) Names() []string {
	out := make([]string, len(r.Entries))
	for i, e := range r.Entries {
		out[i] = e.Name
	}
	return out
}

// Digest is the hash of an entry's meaning (what a signature's manifest lists).
func (e *Entry) Digest() string {
	b, _ := json.Marshal(e)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Load reads and strictly decodes a registry file. Errors name the file, line and field.
func Load(path string) (*Registry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return Parse(path, data)
}

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,31}$`)
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

var entryFields = []string{"name", "owner", "command", "args", "sha256", "url", "spki_sha256"}

// Parse decodes data read from file.
func Parse(file string, data []byte) (*Registry, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &config.Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if len(root.Content) == 0 {
		return nil, &config.Error{File: file, Msg: "the registry is empty: it needs servers:"}
	}
	doc := root.Content[0]
	errAt := func(n *yaml.Node, field, format string, args ...any) error {
		return &config.Error{File: file, Line: n.Line, Column: n.Column, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if doc.Kind != yaml.MappingNode {
		return nil, errAt(doc, "", "the registry must be a mapping with servers:")
	}
	r := &Registry{File: file, Data: data, byName: map[string]int{}}
	var errs []error
	var servers *yaml.Node
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		switch k.Value {
		case "servers":
			servers = v
		default:
			errs = append(errs, errAt(k, k.Value, "unknown field (known: servers)"))
		}
	}
	if servers == nil || servers.Kind != yaml.SequenceNode || len(servers.Content) == 0 {
		n := doc
		if servers != nil {
			n = servers
		}
		errs = append(errs, errAt(n, "servers", "a list of at least one server is needed"))
		return nil, errors.Join(errs...)
	}
	for i, n := range servers.Content {
		field := fmt.Sprintf("servers[%d]", i)
		if n.Kind != yaml.MappingNode {
			errs = append(errs, errAt(n, field, "must be a mapping (name, owner, command or url, ...)"))
			continue
		}
		e := Entry{Line: n.Line}
		for j := 0; j+1 < len(n.Content); j += 2 {
			k, v := n.Content[j], n.Content[j+1]
			f := field + "." + k.Value
			var err error
			switch k.Value {
			case "name":
				err = scalar(v, &e.Name)
			case "owner":
				err = scalar(v, &e.Owner)
			case "command":
				err = scalar(v, &e.Command)
			case "sha256":
				err = scalar(v, &e.SHA256)
			case "url":
				err = scalar(v, &e.URL)
			case "args":
				err = list(v, &e.Args)
			case "spki_sha256":
				if v.Kind == yaml.ScalarNode {
					var s string
					err = scalar(v, &s)
					e.SPKI = []string{s}
				} else {
					err = list(v, &e.SPKI)
				}
			default:
				err = fmt.Errorf("unknown field (known: %s)", strings.Join(entryFields, ", "))
			}
			if err != nil {
				errs = append(errs, errAt(k, f, "%v", err))
			}
		}
		for _, msg := range e.validate() {
			errs = append(errs, errAt(fieldNode(n, msg.field), field+"."+msg.field, "%s", msg.text))
		}
		if _, dup := r.byName[e.Name]; dup && e.Name != "" {
			errs = append(errs, errAt(fieldNode(n, "name"), field+".name", "server %q is listed twice", e.Name))
			continue
		}
		r.byName[e.Name] = len(r.Entries)
		r.Entries = append(r.Entries, e)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

func fieldNode(n *yaml.Node, field string) *yaml.Node {
	for j := 0; j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value == field {
			return n.Content[j]
		}
	}
	return n
}

func scalar(v *yaml.Node, dst *string) error {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		return errors.New("must be a string")
	}
	*dst = v.Value
	return nil
}

func list(v *yaml.Node, dst *[]string) error {
	if v.Kind != yaml.SequenceNode {
		return errors.New("must be a list of strings")
	}
	for _, c := range v.Content {
		if c.Kind != yaml.ScalarNode {
			return errors.New("must be a list of strings")
		}
		*dst = append(*dst, c.Value)
	}
	return nil
}

type problem struct{ field, text string }

func (e *Entry) validate() []problem {
	var out []problem
	if !nameRE.MatchString(e.Name) {
		out = append(out, problem{"name", fmt.Sprintf("server name %q must be 1-32 letters, digits or '-'", e.Name)})
	}
	if strings.TrimSpace(e.Owner) == "" {
		out = append(out, problem{"owner", "every server needs an owner (a person or team to ask about it)"})
	}
	switch {
	case e.Command != "" && e.URL != "":
		out = append(out, problem{"url", "set either command (stdio server) or url (remote server), not both"})
	case e.Command == "" && e.URL == "":
		out = append(out, problem{"name", "set command (stdio server) or url (remote server)"})
	case e.URL != "":
		if len(e.Args) > 0 || e.SHA256 != "" {
			out = append(out, problem{"url", "args and sha256 apply to command servers only"})
		}
		u, err := url.Parse(e.URL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			out = append(out, problem{"url", fmt.Sprintf("%q is not an http(s) URL", e.URL)})
		case u.Scheme == "http" && !Loopback(u.Hostname()):
			out = append(out, problem{"url", fmt.Sprintf("%q: a remote server off loopback must use https", e.URL)})
		}
		for _, p := range e.SPKI {
			if b, err := base64.StdEncoding.DecodeString(p); err != nil || len(b) != sha256.Size {
				out = append(out, problem{"spki_sha256", fmt.Sprintf("%q is not a base64 SHA-256 (see portcullis registry spki URL)", p)})
			}
		}
		if len(e.SPKI) > 0 && u != nil && u.Scheme != "https" {
			out = append(out, problem{"spki_sha256", "a certificate pin needs an https url"})
		}
	case e.Command != "":
		if len(e.SPKI) > 0 {
			out = append(out, problem{"spki_sha256", "spki_sha256 applies to url servers only"})
		}
		if e.SHA256 != "" && !sha256RE.MatchString(e.SHA256) {
			out = append(out, problem{"sha256", "must be 64 lowercase hex digits (sha256sum of the executable)"})
		}
	}
	return out
}

// Loopback reports whether host is a loopback name or address.
func Loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Canonical returns a URL in a comparable form: lowercase scheme and host, default port
// and trailing slash removed.
func Canonical(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Scheme = strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	u.Host = host
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.Fragment = ""
	return u.String()
}

// HashFile returns the hex SHA-256 of a file.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
