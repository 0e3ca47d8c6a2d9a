// Package clientconfig reads and rewrites the MCP server lists of MCP clients: Claude
// Desktop, Claude Code, Cursor, VS Code, Windsurf, Zed, Gemini CLI, Codex, Cline and
// Continue. Each client format is one file of this package. Reading never changes a file;
// Rewrite returns new bytes that change only the entries asked for and keep the rest of the
// file (comments, order, spacing) as it was, where the format allows.
package clientconfig

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Transports of an entry.
const (
	Stdio = "stdio"
	HTTP  = "http" // Streamable HTTP
	SSE   = "sse"  // legacy HTTP+SSE
)

// Entry is one server configured in a client.
type Entry struct {
	Name      string            `json:"name"`               // the client's name for it
	Scope     string            `json:"scope"`              // user, project, or local:<project dir> (Claude Code)
	Pointer   string            `json:"pointer"`            // where it is in the file (JSON pointer, TOML table, YAML path)
	Line      int               `json:"line,omitempty"`     // 1-based line of the entry, when known
	Transport string            `json:"transport"`          // stdio, http or sse
	Command   string            `json:"command,omitempty"`  // stdio
	Args      []string          `json:"args,omitempty"`     // stdio
	Env       map[string]string `json:"env,omitempty"`      // stdio
	Cwd       string            `json:"cwd,omitempty"`      // stdio
	EnvFile   string            `json:"envFile,omitempty"`  // stdio: a dotenv file the client loads into the environment (VS Code), as written
	URL       string            `json:"url,omitempty"`      // http, sse
	Headers   map[string]string `json:"headers,omitempty"`  // http, sse
	Disabled  bool              `json:"disabled,omitempty"` // the client does not start it
	// Flags are other settings of the entry that matter to security (auto-approved tools,
	// trust settings), as the client spells them, with their values as text.
	Flags map[string]string `json:"flags,omitempty"`
}

// EnvNames returns the names of the entry's environment variables, sorted.
func (e Entry) EnvNames() []string {
	var out []string
	for k := range e.Env {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// File is a client configuration file as read.
type File struct {
	Client  *Client
	Path    string
	Data    []byte // the bytes read
	Entries []Entry

	doc document
}

// Change turns one entry into a stdio server started with Command and Args (the entry's
// environment and other settings stay), or, when URL is set, into a Streamable HTTP server
// at URL sent Headers (the entry's command, URL and headers go; other settings stay).
type Change struct {
	Pointer string
	Command string
	Args    []string
	URL     string
	Headers map[string]string
}

// took reports whether entry e is what change ch asked for.
func (ch Change) took(e Entry) bool {
	if e.Pointer != ch.Pointer {
		return false
	}
	if ch.URL != "" {
		return e.Transport == HTTP && e.URL == ch.URL && e.Command == "" && mapsEqual(e.Headers, ch.Headers)
	}
	return e.Command == ch.Command && slicesEqual(e.Args, ch.Args)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// document is a parsed file of one format.
type document interface {
	entries() ([]Entry, error)
	rewrite(changes []Change) ([]byte, error)
	// restore returns the document with the entries at pointers as they are in orig (a
	// document of the same format); entries missing from either are left as they are.
	restore(orig document, pointers []string) ([]byte, error)
}

// Restore returns f's bytes with the entries at pointers put back as they are in orig
// (the same file before it was rewritten), and everything else as it is in f now.
func (f *File) Restore(orig *File, pointers []string) ([]byte, error) {
	if orig.Client != f.Client {
		return nil, &Error{Path: f.Path, Msg: "cannot restore entries across client formats"}
	}
	return f.doc.restore(orig.doc, pointers)
}

// Error is an error about one client configuration file.
type Error struct {
	Path string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Msg)
}

// MaxFileBytes bounds a client configuration file (Claude Code's ~/.claude.json holds
// history and can be large).
const MaxFileBytes = 64 << 20

// Read reads and parses the file at path in client c's format.
func Read(c *Client, path string) (*File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > MaxFileBytes {
		return nil, &Error{Path: path, Msg: fmt.Sprintf("file is larger than %d MiB; not a client configuration", MaxFileBytes>>20)}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(c, path, data)
}

// Parse parses data read from path in client c's format.
func Parse(c *Client, path string, data []byte) (*File, error) {
	doc, err := c.format.parse(c, path, data)
	if err != nil {
		return nil, err
	}
	es, err := doc.entries()
	if err != nil {
		return nil, err
	}
	if scopeOf(c, path) == "project" {
		for i := range es {
			if es[i].Scope == "user" {
				es[i].Scope = "project"
			}
		}
	}
	return &File{Client: c, Path: path, Data: data, Entries: es, doc: doc}, nil
}

// scopeOf says whether path is one of the client's project files rather than its user file.
func scopeOf(c *Client, path string) string {
	for _, p := range c.userPaths(HostEnv(runtime.GOOS)) {
		if p == path {
			return "user"
		}
	}
	slash := filepath.ToSlash(path)
	for _, rel := range c.ProjectFiles {
		if strings.HasSuffix(slash, "/"+rel) || slash == rel {
			return "project"
		}
	}
	if c.ID == "continue" && strings.Contains(slash, "/.continue/mcpServers/") {
		return "project"
	}
	return "user"
}

// Rewrite returns the file's bytes with the changes made. It fails, naming the file, when
// an entry cannot be changed; it never writes.
func (f *File) Rewrite(changes []Change) ([]byte, error) {
	if len(changes) == 0 {
		return bytes.Clone(f.Data), nil
	}
	known := map[string]bool{}
	for _, e := range f.Entries {
		known[e.Pointer] = true
	}
	for _, ch := range changes {
		if !known[ch.Pointer] {
			return nil, &Error{Path: f.Path, Msg: fmt.Sprintf("no server entry at %s", ch.Pointer)}
		}
	}
	out, err := f.doc.rewrite(changes)
	if err != nil {
		return nil, err
	}
	// What was written must read back, with the changes in place.
	g, err := Parse(f.Client, f.Path, out)
	if err != nil {
		return nil, fmt.Errorf("%s: the rewritten file does not parse (nothing written): %w", f.Path, err)
	}
	for _, ch := range changes {
		ok := false
		for _, e := range g.Entries {
			if ch.took(e) {
				ok = true
			}
		}
		if !ok {
			return nil, &Error{Path: f.Path, Msg: fmt.Sprintf("rewriting %s did not take (nothing written)", ch.Pointer)}
		}
	}
	return out, nil
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Location is a place a client keeps MCP servers.
type Location struct {
	Client *Client
	Scope  string // user or project
	Path   string
}

// Env is what locations depend on.
type Env struct {
	OS       string // linux, darwin, windows
	Home     string
	XDG      string // $XDG_CONFIG_HOME, when set
	AppData  string // %APPDATA% (windows)
	CodexDir string // $CODEX_HOME, when set
}

// HostEnv is the environment of this machine.
func HostEnv(goos string) Env {
	home, _ := os.UserHomeDir()
	return Env{OS: goos, Home: home, XDG: os.Getenv("XDG_CONFIG_HOME"), AppData: os.Getenv("APPDATA"), CodexDir: os.Getenv("CODEX_HOME")}
}

func (e Env) join(elem ...string) string {
	if e.OS == "windows" {
		return strings.Join(elem, `\`)
	}
	return filepath.Join(elem...)
}

func (e Env) appData() string {
	if e.AppData != "" {
		return e.AppData
	}
	return e.join(e.Home, "AppData", "Roaming")
}

// appSupport is where desktop apps keep settings: ~/.config (or $XDG_CONFIG_HOME) on
// Linux, ~/Library/Application Support on macOS, %APPDATA% on Windows.
func (e Env) appSupport() string {
	switch e.OS {
	case "darwin":
		return e.join(e.Home, "Library", "Application Support")
	case "windows":
		return e.appData()
	}
	if e.XDG != "" {
		return e.XDG
	}
	return e.join(e.Home, ".config")
}

// Locations returns the user-level places of every client (project is a directory whose
// project files are included too, when not empty).
func Locations(env Env, project string) []Location {
	var out []Location
	for _, c := range Clients {
		for _, p := range c.userPaths(env) {
			out = append(out, Location{Client: c, Scope: "user", Path: p})
		}
		if project != "" {
			for _, rel := range c.ProjectFiles {
				out = append(out, Location{Client: c, Scope: "project", Path: filepath.Join(project, filepath.FromSlash(rel))})
			}
		}
	}
	return out
}

// Detect returns the client whose configuration file path is, from its name and place;
// nil when no client uses such a file.
func Detect(path string) *Client {
	p := filepath.ToSlash(path)
	base := filepath.Base(p)
	has := func(s string) bool { return strings.Contains(p, s) }
	switch {
	case base == "claude_desktop_config.json":
		return ByID("claude-desktop")
	case base == ".claude.json" || base == ".mcp.json":
		return ByID("claude-code")
	case base == "mcp.json" && has("/.cursor/"):
		return ByID("cursor")
	case base == "mcp.json" && (has("/.vscode/") || has("/Code/User/")):
		return ByID("vscode")
	case base == "settings.json" && has("/Code/User/"):
		return ByID("vscode-settings")
	case base == "mcp_config.json" && has("windsurf"):
		return ByID("windsurf")
	case base == "settings.json" && (has("/zed/") || has("/.zed/") || has("/Zed/")):
		return ByID("zed")
	case base == "settings.json" && has("/.gemini/"):
		return ByID("gemini")
	case base == "config.toml" && has("codex"):
		return ByID("codex")
	case base == "cline_mcp_settings.json":
		return ByID("cline")
	case has("/.continue/") && (strings.HasSuffix(base, ".yaml") || strings.HasSuffix(base, ".yml")):
		return ByID("continue")
	}
	return nil
}

// ErrUnknownFormat is returned for a file no client is known to use.
var ErrUnknownFormat = errors.New("not a known MCP client configuration (name the client with --client)")
