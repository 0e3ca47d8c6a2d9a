// Package toolinfo reads tool definitions from listings and says what each parameter is
// (a path, a URL, a command line, an argument of a command-running tool, or text), from its
// name, its schema and the tool's description. The argument detectors use it to pick
// their checks; a Catalog remembers what listings said, per server and tool.
package toolinfo

import (
	"encoding/json"
	"sort"
	"strings"
	"sync"

	"github.com/portcullis-mcp/portcullis/internal/detect/cmdinj"
)

// Role is what a parameter holds.
type Role int

const (
	Text Role = iota
	Path
	URL
	CommandLine
	CommandArg
)

func (r Role) String() string {
	return [...]string{"text", "path", "url", "command", "command-arg"}[r]
}

// Param is one parameter of a tool.
type Param struct {
	Name        string
	Description string
	Format      string
	Role        Role
}

// Tool is what a listing says about a tool.
type Tool struct {
	Name        string
	Description string
	Params      map[string]Param
	Command     bool // the tool runs commands
}

type schema struct {
	Properties map[string]struct {
		Description string `json:"description"`
		Format      string `json:"format"`
	} `json:"properties"`
}

// Parse reads one item of a tools/list result.
func Parse(item []byte) (Tool, bool) {
	var d struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		InputSchema json.RawMessage `json:"inputSchema"`
	}
	if err := json.Unmarshal(item, &d); err != nil || d.Name == "" {
		return Tool{}, false
	}
	var s schema
	_ = json.Unmarshal(d.InputSchema, &s)
	t := Tool{Name: d.Name, Description: d.Description, Params: map[string]Param{}}
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Command = cmdinj.IsCommandTool(d.Name, d.Description, names)
	for _, n := range names {
		p := s.Properties[n]
		t.Params[n] = Param{Name: n, Description: p.Description, Format: p.Format, Role: roleOf(n, p.Description, p.Format, t.Command)}
	}
	return t, true
}

var pathWords = map[string]bool{"path": true, "paths": true, "file": true, "files": true, "filename": true, "filepath": true,
	"dir": true, "directory": true, "folder": true, "cwd": true, "workdir": true, "src": true, "dst": true, "dest": true,
	"destination": true, "pathname": true, "dirname": true, "location": true}
var urlWords = map[string]bool{"url": true, "uri": true, "urls": true, "endpoint": true, "link": true, "href": true, "host": true,
	"hostname": true, "webhook": true, "callback": true, "domain": true, "origin": true, "baseurl": true, "proxy": true,
	"redirect": true, "website": true, "site": true}

// roleOf decides a parameter's role.
func roleOf(name, desc, format string, command bool) Role {
	if command && cmdinj.CommandParams[strings.ToLower(name)] {
		return CommandLine
	}
	ws := cmdinj.Words(name)
	for _, w := range ws {
		if urlWords[w] {
			return URL
		}
	}
	if format == "uri" || format == "url" || format == "hostname" || format == "ipv4" || format == "ipv6" {
		return URL
	}
	for _, w := range ws {
		if pathWords[w] {
			if command {
				return CommandArg // still a path, but the command check is stricter; Path is checked too
			}
			return Path
		}
	}
	if command {
		return CommandArg
	}
	d := strings.ToLower(desc)
	switch {
	case strings.Contains(d, "url") || strings.Contains(d, "uri of"):
		return URL
	case strings.Contains(d, "path to") || strings.Contains(d, "file path") || strings.Contains(d, "directory path") || strings.HasPrefix(d, "path"):
		return Path
	}
	return Text
}

// Generic returns what is known of a tool never listed: roles from parameter names only.
func Generic(name string, params []string) Tool {
	t := Tool{Name: name, Params: map[string]Param{}}
	t.Command = cmdinj.IsCommandTool(name, "", params)
	for _, p := range params {
		t.Params[p] = Param{Name: p, Role: roleOf(p, "", "", t.Command)}
	}
	return t
}

// RoleOf returns the role of a parameter, deciding from its name when the listing did not
// name it.
func (t Tool) RoleOf(param string) Role {
	if p, ok := t.Params[param]; ok {
		return p.Role
	}
	return roleOf(param, "", "", t.Command)
}

// IsPathLike reports roles whose values are checked as paths.
func IsPathLike(r Role, param string) bool {
	if r == Path {
		return true
	}
	if r == CommandArg {
		for _, w := range cmdinj.Words(param) {
			if pathWords[w] {
				return true
			}
		}
	}
	return false
}

// Catalog remembers tools by server and name. It is safe for concurrent use.
type Catalog struct {
	mu sync.RWMutex
	m  map[string]Tool
}

// maxTools bounds a catalog; beyond it new tools are not remembered.
const maxTools = 1 << 16

// NewCatalog returns an empty catalog.
func NewCatalog() *Catalog { return &Catalog{m: map[string]Tool{}} }

// Put remembers a tool.
func (c *Catalog) Put(server string, t Tool) {
	c.mu.Lock()
	if _, ok := c.m[server+"\x00"+t.Name]; ok || len(c.m) < maxTools {
		c.m[server+"\x00"+t.Name] = t
	}
	c.mu.Unlock()
}

// Get returns a tool as last listed.
func (c *Catalog) Get(server, name string) (Tool, bool) {
	c.mu.RLock()
	t, ok := c.m[server+"\x00"+name]
	c.mu.RUnlock()
	return t, ok
}
