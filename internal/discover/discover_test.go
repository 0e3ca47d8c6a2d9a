package discover

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/clientconfig"
	"github.com/portcullis-mcp/portcullis/internal/wrap"
)

func mcpServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/mcp" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"serverInfo\":{\"name\":\"hidden\",\"version\":\"0.1\"}}}\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func port(t *testing.T, u string) int {
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(u, "http://"))
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRun(t *testing.T) {
	home := t.TempDir()
	mcp := mcpServer(t)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	defer plain.Close()
	os.MkdirAll(filepath.Join(home, ".cursor"), 0o755)
	os.WriteFile(filepath.Join(home, ".cursor", "mcp.json"), []byte(`{"mcpServers": {
  "mem": {"command": "node", "args": ["/srv/memory.js"], "env": {"MEMORY_FILE_PATH": "/x", "TOKEN": "${T}"}},
  "other": {"command": "npx", "args": ["-y", "unknown"]}
}}`), 0o644)
	os.MkdirAll(filepath.Join(home, ".gemini"), 0o755)
	os.WriteFile(filepath.Join(home, ".gemini", "settings.json"), []byte(`{"mcpServers": {`), 0o644)
	gw := filepath.Join(home, "gw.yaml")
	os.WriteFile(gw, []byte("auth: none\nservers:\n  - name: memory\n    command: node\n    args: [/srv/memory.js]\n"), 0o644)
	reg, err := LoadRegistry(gw, filepath.Join(home, "missing.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Options{Env: clientconfig.Env{OS: "linux", Home: home}, Registry: reg, Probe: true,
		Ports: []int{port(t, mcp.URL), port(t, plain.URL)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Servers) != 2 {
		t.Fatalf("servers: %+v", res.Servers)
	}
	for _, s := range res.Servers {
		switch s.Name {
		case "mem":
			if !s.Registered || s.Registry != "memory" || strings.Join(s.EnvNames, ",") != "MEMORY_FILE_PATH,TOKEN" || s.Client != "cursor" || s.Line != 2 {
				t.Errorf("mem: %+v", s)
			}
		case "other":
			if !s.Shadow() {
				t.Errorf("other is not shadow: %+v", s)
			}
		}
	}
	if len(res.Problems) != 1 || !strings.Contains(res.Problems[0].File, ".gemini") {
		t.Errorf("the malformed Gemini file is not a problem: %+v", res.Problems)
	}
	if len(res.Endpoints) != 1 || res.Endpoints[0].URL != mcp.URL+"/mcp" || res.Endpoints[0].ServerInfo != "hidden 0.1" || res.Endpoints[0].Mentioned {
		t.Errorf("endpoints: %+v", res.Endpoints)
	}
}

func TestLoopbackListeners(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/net/tcp")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	want := ln.Addr().(*net.TCPAddr).Port
	ls, err := loopbackListeners()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.port == want && l.addr == "127.0.0.1:"+strconv.Itoa(want) {
			if own := owners()[l.inode]; own.pid != os.Getpid() {
				t.Errorf("owner of the socket: %+v, want pid %d", own, os.Getpid())
			}
			return
		}
	}
	t.Errorf("port %d not among the listeners %+v", want, ls)
}

// An HTTP entry that wrap pointed at the gateway through another address than its listen
// (wrap --gateway: a reverse proxy, a host name) is wrapped, and is the server it was.
func TestWrappedThroughAnotherGatewayAddress(t *testing.T) {
	dir := t.TempDir()
	gw := filepath.Join(dir, "pc", "portcullis.yaml")
	os.MkdirAll(filepath.Dir(gw), 0o755)
	os.WriteFile(gw, []byte("listen: 127.0.0.1:8931\nauth: none\nservers:\n  - name: memory\n    command: node\n    args: [/srv/memory.js]\n"), 0o600)
	client := filepath.Join(dir, "mcp.json")
	os.WriteFile(client, []byte(`{"mcpServers": {"remote": {"url": "https://api.example.com/mcp"}}}`), 0o600)
	f, err := clientconfig.Read(clientconfig.ByID("cursor"), client)
	if err != nil {
		t.Fatal(err)
	}
	p, err := wrap.Prepare([]*clientconfig.File{f}, wrap.Options{Config: gw, Portcullis: "/opt/bin/portcullis", Gateway: "https://gw.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	f, err = clientconfig.Read(clientconfig.ByID("cursor"), client)
	if err != nil || len(f.Entries) != 1 || f.Entries[0].URL != "https://gw.example.com/mcp/remote" {
		t.Fatalf("the wrapped entry: %+v %v", f.Entries, err)
	}
	reg, err := LoadRegistry(gw)
	if err != nil {
		t.Fatal(err)
	}
	e := f.Entries[0]
	if name, ok := reg.Lookup(e); !reg.Wrapped(e) || !ok || name != "remote" {
		t.Errorf("an entry wrapped through https://gw.example.com: wrapped %v, registry name %q %v", reg.Wrapped(e), name, ok)
	}
	e.URL = "https://elsewhere.example.com/mcp/remote"
	if reg.Wrapped(e) {
		t.Error("an entry at another host is taken for wrapped")
	}
}
