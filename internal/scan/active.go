package scan

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/detect"
	"github.com/portcullis-mcp/portcullis/internal/detect/canary"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/upstream"
)

// canaries are the values active checks plant and watch for.
type canaries struct {
	dir      string // where markers appear, and the canary file is
	sockDir  string // the unix socket of the listener, for sandboxed servers
	id       string
	secret   canary.Canary // the content of the file a traversal reads
	path     canary.Canary // the file outside any root
	url      canary.Canary // a URL on the listener
	scanner  *canary.Scanner
	mu       sync.Mutex
	hits     []string // paths requested from the listener
	listener net.Listener
	sock     net.Listener
	srv      *http.Server
}

// grant is what the server's sandbox must allow for the canaries to be reachable: the
// canary directory, and the listener's port on its loopback.
func (c *canaries) grant() Grant {
	return Grant{ReadWrite: []string{c.dir},
		Forward: []Forward{{Port: c.listener.Addr().(*net.TCPAddr).Port, Socket: c.sock.Addr().String()}}}
}

func newCanaries() (*canaries, error) {
	dir, err := os.MkdirTemp("", "portcullis-scan-")
	if err != nil {
		return nil, err
	}
	c := &canaries{dir: dir}
	if c.secret, err = canary.New(canary.Token, "", "scan"); err != nil {
		return nil, err
	}
	c.id = c.secret.ID
	if c.path, err = canary.New(canary.Path, dir, "scan"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.path.Values[0], []byte(c.secret.Values[0]+"\n"), 0o644); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.listener = ln
	// A sandboxed server has a network of its own: its launcher relays the same port on
	// its loopback to this socket, so that the URL is the same inside and out.
	if c.sockDir, err = os.MkdirTemp("", "portcullis-canary-"); err != nil {
		ln.Close()
		return nil, err
	}
	os.Chmod(c.sockDir, 0o755) // the launcher connects as root of its user namespace
	sock, err := net.Listen("unix", filepath.Join(c.sockDir, "canary.sock"))
	if err != nil {
		ln.Close()
		return nil, err
	}
	os.Chmod(filepath.Join(c.sockDir, "canary.sock"), 0o777)
	c.sock = sock
	if c.url, err = canary.New(canary.URL, "http://"+ln.Addr().String(), "scan"); err != nil {
		return nil, err
	}
	c.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.hits = append(c.hits, r.URL.Path)
		c.mu.Unlock()
		w.Write([]byte("portcullis scan canary\n"))
	})}
	go c.srv.Serve(ln)
	go c.srv.Serve(sock)
	c.scanner = canary.NewScanner(&canary.File{Canaries: []canary.Canary{c.secret}})
	return c, nil
}

func (c *canaries) close() {
	c.srv.Close()
	os.RemoveAll(c.dir)
	os.RemoveAll(c.sockDir)
}

func (c *canaries) marker() string { return filepath.Join(c.dir, "pcx-"+c.id) }

// echoMark is what a shell prints for the echo payloads: the payload itself holds
// $((6*7)), never 42, so seeing it means a shell ran the text.
func (c *canaries) echoMark() string { return "PCX42" + c.id }

type payload struct {
	kind  string // command-injection, path-traversal, ssrf
	value string
}

func (c *canaries) payloads() []payload {
	m := c.marker()
	echo := "echo PCX$((6*7))" + c.id
	return []payload{
		{"command-injection", "x; touch " + m + "; " + echo + " #"},
		{"command-injection", "x && touch " + m + " && " + echo},
		{"command-injection", "x | touch " + m},
		{"command-injection", "$(touch " + m + ")$(" + echo + ")"},
		{"command-injection", "`touch " + m + "`"},
		{"command-injection", "x\ntouch " + m + "\n" + echo},
		{"path-traversal", c.path.Values[0]},
		{"path-traversal", strings.Repeat("../", 12) + strings.TrimPrefix(c.path.Values[0], "/")},
		{"ssrf", c.url.Values[0]},
	}
}

// observe reports what a payload made happen.
func (c *canaries) observe(kind, result string) (string, string) {
	switch kind {
	case "command-injection":
		if _, err := os.Stat(c.marker()); err == nil {
			os.Remove(c.marker())
			return "command-injection", "the payload created " + c.marker()
		}
		if strings.Contains(result, c.echoMark()) {
			return "command-injection", "the result holds the output of a shell: " + c.echoMark()
		}
	case "path-traversal":
		if fs := c.scanner.Scan(result, ""); len(fs) > 0 {
			return "path-traversal", "the result holds the content of " + c.path.Values[0]
		}
	case "ssrf":
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, h := range c.hits {
			if strings.Contains(h, c.url.ID) {
				c.hits = nil
				return "ssrf", "the server requested " + c.url.Values[0]
			}
		}
	}
	return "", ""
}

var activeSeverity = map[string]detect.Severity{"command-injection": detect.Critical, "path-traversal": detect.High, "ssrf": detect.High}

type schemaProp struct {
	Type        any    `json:"type"`
	Enum        []any  `json:"enum"`
	Description string `json:"description"`
}

func typeOf(p schemaProp) string {
	switch t := p.Type.(type) {
	case string:
		return t
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok && s != "null" {
				return s
			}
		}
	}
	return "string"
}

func dummy(p schemaProp) any {
	if len(p.Enum) > 0 {
		return p.Enum[0]
	}
	switch typeOf(p) {
	case "number", "integer":
		return 1
	case "boolean":
		return false
	case "array":
		return []any{}
	case "object":
		return map[string]any{}
	}
	return "test"
}

// Active calls each tool that does not declare itself destructive with injection payloads
// in each of its string parameters, and reports what the canaries c saw happen.
func Active(ctx context.Context, t Target, conn *upstream.Conn, l *Listing, c *canaries) ([]Finding, error) {
	var out []Finding
	id := int64(1000)
	for _, raw := range l.Tools {
		var tool struct {
			Name        string `json:"name"`
			InputSchema struct {
				Properties map[string]schemaProp `json:"properties"`
				Required   []string              `json:"required"`
			} `json:"inputSchema"`
			Annotations struct {
				DestructiveHint *bool `json:"destructiveHint"`
				ReadOnlyHint    *bool `json:"readOnlyHint"`
			} `json:"annotations"`
		}
		if json.Unmarshal(raw, &tool) != nil || tool.Name == "" {
			continue
		}
		if d := tool.Annotations.DestructiveHint; d != nil && *d && (tool.Annotations.ReadOnlyHint == nil || !*tool.Annotations.ReadOnlyHint) {
			continue // never fire payloads at tools that say they destroy things
		}
		var params []string
		for name, p := range tool.InputSchema.Properties {
			if typeOf(p) == "string" && len(p.Enum) == 0 {
				params = append(params, name)
			}
		}
		sort.Strings(params)
		if len(params) > 6 {
			params = params[:6]
		}
		found := map[string]bool{}
		for _, param := range params {
			for _, pl := range c.payloads() {
				if found[pl.kind+"/"+param] {
					continue
				}
				args := map[string]any{}
				for _, r := range tool.InputSchema.Required {
					args[r] = dummy(tool.InputSchema.Properties[r])
				}
				args[param] = pl.value
				id++
				cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				resp, err := conn.Call(cctx, jsonrpc.NewRequest(jsonrpc.IntID(id), "tools/call", map[string]any{"name": tool.Name, "arguments": args}))
				cancel()
				if ctx.Err() != nil {
					return out, ctx.Err()
				}
				text := ""
				if err == nil && resp != nil {
					text = string(resp.Result)
					if resp.Error != nil {
						text = resp.Error.Message + " " + string(resp.Error.Data)
					}
				}
				text = unescapeJSON(text)
				time.Sleep(20 * time.Millisecond) // a background command gets a moment to run
				kind, how := c.observe(pl.kind, text)
				if kind == "" {
					continue
				}
				found[kind+"/"+param] = true
				loc := t.loc()
				loc.Item, loc.Pointer = "tool:"+tool.Name, detect.Pointer("inputSchema", "properties", param)
				out = append(out, Finding{Rule: kind, Severity: activeSeverity[kind], Location: loc, Evidence: detect.Evidence(pl.value),
					Message: fmt.Sprintf("parameter %q of tool %q: %s", param, tool.Name, how), Detector: "active"})
			}
		}
	}
	return out, nil
}

// unescapeJSON turns the JSON text of a result into plain text, so that values inside
// JSON strings compare as written.
func unescapeJSON(s string) string {
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return s
	}
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			b.WriteString(v)
			b.WriteByte('\n')
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return s + "\n" + b.String()
}
