package clientconfig

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// tomlFormat is Codex's ~/.codex/config.toml: one [mcp_servers.<name>] table per server
// (command, args, env, cwd; or url, http_headers, bearer_token_env_var). Rewriting edits
// the lines of the server's table and leaves every other line as it was.
type tomlFormat struct{}

type tomlDoc struct {
	path  string
	data  []byte
	lines []string
	tree  map[string]any
}

func (tomlFormat) parse(c *Client, path string, data []byte) (document, error) {
	var tree map[string]any
	if err := toml.Unmarshal(data, &tree); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, _ := de.Position()
			return nil, &Error{Path: path, Line: row, Msg: "not valid TOML: " + de.Error()}
		}
		return nil, &Error{Path: path, Msg: "not valid TOML: " + err.Error()}
	}
	return &tomlDoc{path: path, data: data, lines: strings.SplitAfter(string(data), "\n"), tree: tree}, nil
}

func (d *tomlDoc) entries() ([]Entry, error) {
	raw, ok := d.tree["mcp_servers"]
	if !ok {
		return nil, nil
	}
	servers, ok := raw.(map[string]any)
	if !ok {
		return nil, &Error{Path: d.path, Msg: "mcp_servers must be a table of servers"}
	}
	var names []string
	for n := range servers {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Entry
	for _, name := range names {
		s, ok := servers[name].(map[string]any)
		if !ok {
			return nil, &Error{Path: d.path, Msg: fmt.Sprintf("mcp_servers.%s must be a table", name)}
		}
		e := Entry{Name: name, Scope: "user", Pointer: "mcp_servers." + tomlKey(name)}
		if i, _ := d.table(name); i >= 0 {
			e.Line = i + 1
		}
		var errs []string
		str := func(k string) string {
			v, ok := s[k]
			if !ok {
				return ""
			}
			sv, ok := v.(string)
			if !ok {
				errs = append(errs, k+" must be a string")
			}
			return sv
		}
		e.Command, e.Cwd, e.URL = str("command"), str("cwd"), str("url")
		if a, ok := s["args"]; ok {
			arr, ok := a.([]any)
			if !ok {
				errs = append(errs, "args must be an array of strings")
			}
			for _, x := range arr {
				xs, ok := x.(string)
				if !ok {
					errs = append(errs, "args must be an array of strings")
					break
				}
				e.Args = append(e.Args, xs)
			}
		}
		if m, ok := s["env"].(map[string]any); ok {
			e.Env = stringMap(m)
		}
		if m, ok := s["http_headers"].(map[string]any); ok {
			e.Headers = stringMap(m)
		}
		if v := str("bearer_token_env_var"); v != "" {
			if e.Headers == nil {
				e.Headers = map[string]string{}
			}
			e.Headers["Authorization"] = "Bearer ${" + v + "}"
		}
		if b, ok := s["enabled"].(bool); ok && !b {
			e.Disabled = true
		}
		if len(errs) > 0 {
			return nil, &Error{Path: d.path, Line: e.Line, Msg: fmt.Sprintf("server %q: %s", name, strings.Join(errs, "; "))}
		}
		switch {
		case e.Command != "":
			e.Transport = Stdio
		case e.URL != "":
			e.Transport = HTTP
		default:
			return nil, &Error{Path: d.path, Line: e.Line, Msg: fmt.Sprintf("server %q: neither a command nor a url", name)}
		}
		out = append(out, e)
	}
	return out, nil
}

func tomlKey(name string) string {
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return jsonString(name)
		}
	}
	return name
}

// headerKeys parses a table header line ("[a.b]", "[ a . \"b c\" ]") into its keys.
func headerKeys(line string) ([]string, bool) {
	s := strings.TrimSpace(line)
	if i := strings.Index(s, "#"); i >= 0 && !strings.Contains(s[:i], `"`) {
		s = strings.TrimSpace(s[:i])
	}
	if !strings.HasPrefix(s, "[") || strings.HasPrefix(s, "[[") || !strings.HasSuffix(s, "]") {
		return nil, false
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	var keys []string
	for len(s) > 0 {
		s = strings.TrimSpace(s)
		var k string
		switch s[0] {
		case '"', '\'':
			q := s[0]
			j := 1
			for j < len(s) && s[j] != q {
				if q == '"' && s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, false
			}
			k = s[1:j]
			if q == '"' {
				if u, err := strconv.Unquote(s[:j+1]); err == nil {
					k = u
				}
			}
			s = s[j+1:]
		default:
			j := strings.IndexAny(s, ". \t")
			if j < 0 {
				j = len(s)
			}
			k, s = s[:j], s[j:]
		}
		keys = append(keys, k)
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, ".") {
			s = s[1:]
		} else if s != "" {
			return nil, false
		}
	}
	return keys, true
}

// table returns the line index of [mcp_servers.<name>] and the index after its last line.
func (d *tomlDoc) table(name string) (int, int) {
	start := -1
	for i, l := range d.lines {
		keys, ok := headerKeys(l)
		if !ok {
			continue
		}
		if start >= 0 {
			return start, i
		}
		if len(keys) == 2 && keys[0] == "mcp_servers" && keys[1] == name {
			start = i
		}
	}
	return start, len(d.lines)
}

// valueEnd returns the index of the line after a key's value that starts on line i (arrays
// and inline tables may span lines).
func valueEnd(lines []string, i int) int {
	depth := 0
	inStr := byte(0)
	for j := i; j < len(lines); j++ {
		l := lines[j]
		start := 0
		if j == i {
			start = strings.Index(l, "=") + 1
		}
		for k := start; k < len(l); k++ {
			c := l[k]
			switch {
			case inStr != 0:
				if c == '\\' && inStr == '"' {
					k++
				} else if c == inStr {
					inStr = 0
				}
			case c == '"' || c == '\'':
				inStr = c
			case c == '#':
				k = len(l)
			case c == '[' || c == '{':
				depth++
			case c == ']' || c == '}':
				depth--
			}
		}
		inStr = 0
		if depth <= 0 {
			return j + 1
		}
	}
	return len(lines)
}

func lineKey(l string) string {
	s := strings.TrimSpace(l)
	if s == "" || s[0] == '#' || s[0] == '[' {
		return ""
	}
	i := strings.Index(s, "=")
	if i < 0 {
		return ""
	}
	return strings.Trim(strings.TrimSpace(s[:i]), `"'`)
}

func tomlName(pointer string) string {
	name := strings.TrimPrefix(pointer, "mcp_servers.")
	if u, err := strconv.Unquote(name); err == nil {
		name = u
	}
	return name
}

func (d *tomlDoc) restore(orig document, pointers []string) ([]byte, error) {
	o, ok := orig.(*tomlDoc)
	if !ok {
		return nil, &Error{Path: d.path, Msg: "cannot restore from another format"}
	}
	lines := append([]string{}, d.lines...)
	for _, p := range pointers {
		name := tomlName(p)
		start, end := (&tomlDoc{lines: lines}).table(name)
		ostart, oend := o.table(name)
		if start < 0 || ostart < 0 {
			continue
		}
		next := append(append([]string{}, lines[:start]...), o.lines[ostart:oend]...)
		lines = append(next, lines[end:]...)
	}
	return []byte(strings.Join(lines, "")), nil
}

func (d *tomlDoc) rewrite(changes []Change) ([]byte, error) {
	lines := append([]string{}, d.lines...)
	for _, ch := range changes {
		name := tomlName(ch.Pointer)
		cur := &tomlDoc{lines: lines}
		start, end := cur.table(name)
		if start < 0 {
			return nil, &Error{Path: d.path, Msg: fmt.Sprintf("server %q is not written as a [mcp_servers.%s] table; rewrite it that way first", name, name)}
		}
		var body []string
		for i := start + 1; i < end; {
			switch lineKey(lines[i]) {
			case "command", "args", "url", "http_headers", "bearer_token_env_var", "env_http_headers":
				i = valueEnd(lines, i)
			default:
				body = append(body, lines[i])
				i++
			}
		}
		nl := "\n"
		if strings.HasSuffix(lines[start], "\r\n") {
			nl = "\r\n"
		}
		header := lines[start]
		if !strings.HasSuffix(header, "\n") {
			header += nl
		}
		ins := []string{header, "command = " + jsonString(ch.Command) + nl, "args = " + jsonArray(ch.Args) + nl}
		if ch.URL != "" {
			ins = []string{header, "url = " + jsonString(ch.URL) + nl}
			if len(ch.Headers) > 0 {
				var hs []string
				for _, k := range sortedKeys(ch.Headers) {
					hs = append(hs, jsonString(k)+" = "+jsonString(ch.Headers[k]))
				}
				ins = append(ins, "http_headers = { "+strings.Join(hs, ", ")+" }"+nl)
			}
		}
		next := append(append(append([]string{}, lines[:start]...), ins...), body...)
		lines = append(next, lines[end:]...)
	}
	return []byte(strings.Join(lines, "")), nil
}
