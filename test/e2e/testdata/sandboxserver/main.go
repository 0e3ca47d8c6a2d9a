// Command sandboxserver is an MCP server over stdio for the sandbox tests. Its portable
// tools (echo, read_file, write_file, list_dir, env) build for Linux and for WebAssembly
// (GOOS=wasip1); on Linux it also has hostile tools that try to break out of a sandbox
// (hostile_linux.go). A tool reports "OK: ..." when its attempt succeeded and an error
// result "FAILED: ..." when it did not.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type tool struct {
	desc string
	run  func(args map[string]any) (string, error)
}

var tools = map[string]tool{
	"echo": {"returns its text", func(a map[string]any) (string, error) { return str(a, "text"), nil }},
	"read_file": {"reads a file", func(a map[string]any) (string, error) {
		b, err := os.ReadFile(str(a, "path"))
		return string(b), err
	}},
	"write_file": {"writes a file", func(a map[string]any) (string, error) {
		return "wrote " + str(a, "path"), os.WriteFile(str(a, "path"), []byte(str(a, "text")), 0o644)
	}},
	"list_dir": {"lists a directory", func(a map[string]any) (string, error) {
		ents, err := os.ReadDir(str(a, "path"))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return strings.Join(names, "\n"), err
	}},
	"env": {"prints the environment", func(a map[string]any) (string, error) {
		env := os.Environ()
		sort.Strings(env)
		return strings.Join(env, "\n"), nil
	}},
}

func str(a map[string]any, k string) string {
	s, _ := a[k].(string)
	return s
}

func num(a map[string]any, k string, d int) int {
	if f, ok := a[k].(float64); ok {
		return int(f)
	}
	return d
}

type msg struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  any             `json:"result,omitempty"`
	Error   any             `json:"error,omitempty"`
}

func main() {
	if len(os.Args) > 1 && helper(os.Args[1:]) {
		return
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var m msg
		if json.Unmarshal(in.Bytes(), &m) != nil || len(m.ID) == 0 {
			continue
		}
		r := msg{JSONRPC: "2.0", ID: m.ID}
		switch m.Method {
		case "initialize":
			var p struct {
				ProtocolVersion string `json:"protocolVersion"`
			}
			json.Unmarshal(m.Params, &p)
			r.Result = map[string]any{"protocolVersion": p.ProtocolVersion, "capabilities": map[string]any{"tools": map[string]any{}},
				"serverInfo": map[string]any{"name": "sandboxserver", "version": "1.0.0"}}
		case "ping":
			r.Result = map[string]any{}
		case "tools/list":
			var list []map[string]any
			var names []string
			for n := range tools {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				list = append(list, map[string]any{"name": n, "description": tools[n].desc,
					"inputSchema": map[string]any{"type": "object"}})
			}
			r.Result = map[string]any{"tools": list}
		case "tools/call":
			var p struct {
				Name      string         `json:"name"`
				Arguments map[string]any `json:"arguments"`
			}
			json.Unmarshal(m.Params, &p)
			t, ok := tools[p.Name]
			if !ok {
				r.Error = map[string]any{"code": -32602, "message": "unknown tool " + p.Name}
				break
			}
			text, err := t.run(p.Arguments)
			if err != nil {
				r.Result = map[string]any{"isError": true, "content": []any{map[string]any{"type": "text", "text": "FAILED: " + err.Error()}}}
			} else {
				r.Result = map[string]any{"content": []any{map[string]any{"type": "text", "text": "OK: " + text}}}
			}
		default:
			r.Error = map[string]any{"code": -32601, "message": fmt.Sprintf("method %q not found", m.Method)}
		}
		out.Encode(r)
	}
}
