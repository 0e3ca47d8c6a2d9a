package registry

import (
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"

	"github.com/portcullis-mcp/portcullis/internal/config"
)

func TestPackageOf(t *testing.T) {
	for _, tc := range []struct {
		cmd    string
		args   []string
		runner bool
		pinned bool
		spec   string
	}{
		{"npx", []string{"-y", "@modelcontextprotocol/server-memory@2026.8.31"}, true, true, "@modelcontextprotocol/server-memory@2026.8.31"},
		{"npx", []string{"-y", "@modelcontextprotocol/server-memory"}, true, false, "@modelcontextprotocol/server-memory"},
		{"npx", []string{"-y", "pkg"}, true, false, "pkg"},
		{"npx", []string{"pkg@latest"}, true, false, "pkg@latest"},
		{"npx", []string{"pkg@^1.2.0"}, true, false, "pkg@^1.2.0"},
		{"/usr/bin/npx", []string{"--yes", "--package", "tool@1.0.0", "tool-cli"}, true, true, "tool@1.0.0"},
		{"npx", []string{"github:evil/mcp"}, true, false, "github:evil/mcp"},
		{"pnpm", []string{"dlx", "mcp-server@0.3.1"}, true, true, "mcp-server@0.3.1"},
		{"bunx", []string{"mcp-server"}, true, false, "mcp-server"},
		{"uvx", []string{"mcp-server-fetch"}, true, false, "mcp-server-fetch"},
		{"uvx", []string{"mcp-server-fetch==2025.4.7"}, true, true, "mcp-server-fetch==2025.4.7"},
		{"uvx", []string{"--from", "mcp-server-git==1.2.3", "mcp-server-git"}, true, true, "mcp-server-git==1.2.3"},
		{"uvx", []string{"mcp-server-time>=1.0"}, true, false, "mcp-server-time>=1.0"},
		{"docker", []string{"run", "-i", "--rm", "-e", "TOKEN", "ghcr.io/github/github-mcp-server"}, true, false, "ghcr.io/github/github-mcp-server"},
		{"docker", []string{"run", "-i", "--rm", "mcp/fetch:latest"}, true, false, "mcp/fetch:latest"},
		{"docker", []string{"run", "-i", "mcp/fetch@sha256:" + strings.Repeat("a", 64)}, true, true, "mcp/fetch@sha256:" + strings.Repeat("a", 64)},
		{"podman", []string{"run", "--network=none", "registry:5000/mcp/fetch:1.2"}, true, true, "registry:5000/mcp/fetch:1.2"},
		{"node", []string{"server.js"}, false, false, ""},
		{"/opt/mcp/bin/server", nil, false, false, ""},
	} {
		p, ok := PackageOf(tc.cmd, tc.args)
		if ok != tc.runner || (ok && (p.Pinned != tc.pinned || p.Spec != tc.spec)) {
			t.Errorf("PackageOf(%s %v) = %+v, %v; want runner %v pinned %v spec %q", tc.cmd, tc.args, p, ok, tc.runner, tc.pinned, tc.spec)
		}
		if ok && !p.Pinned && p.Problem == "" {
			t.Errorf("PackageOf(%s %v): unpinned without a reason", tc.cmd, tc.args)
		}
	}
}

func TestImitates(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"githb", "github", true},
		{"g1thub", "github", true},
		{"github-mcp", "github", true},
		{"official-github", "github", true},
		{"slack", "github", false},
		{"memory", "filesystem", false},
		{"github", "github", false},
		{"fs", "db", false},
	} {
		if got := Imitates(tc.a, tc.b); got != tc.want {
			t.Errorf("Imitates(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
	servers := []string{"github", "notes", "fs"}
	if got := ToolImitates("github_create_issue", "notes", servers); got != "github" {
		t.Errorf("ToolImitates = %q", got)
	}
	if got := ToolImitates("createGithubIssue", "notes", servers); got != "github" {
		t.Errorf("ToolImitates camel = %q", got)
	}
	if got := ToolImitates("create_issue", "github", servers); got != "" {
		t.Errorf("own tool = %q", got)
	}
	if got := ToolImitates("read_fs", "notes", servers); got != "" {
		t.Errorf("short server names are not matched: %q", got)
	}
}

const goodRegistry = `servers:
  - name: memory
    owner: platform
    command: npx
    args: ["-y", "@modelcontextprotocol/server-memory@2026.8.31"]
  - name: local
    owner: tools-team
    command: /opt/mcp/server
    sha256: ` + "0000000000000000000000000000000000000000000000000000000000000000" + `
  - name: remote
    owner: platform
    url: https://mcp.example.com/mcp
    spki_sha256: ["47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="]
`

func TestParse(t *testing.T) {
	r, err := Parse("r.yaml", []byte(goodRegistry))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Entries) != 3 || r.Entries[2].SPKI[0] == "" {
		t.Fatalf("entries = %+v", r.Entries)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"servers:\n  - name: a\n    owner: x\n    command: c\n    colour: red\n", "r.yaml:5:5: servers[0].colour: unknown field"},
		{"servers:\n  - name: a\n    command: c\n", "r.yaml:2:5: servers[0].owner: every server needs an owner"},
		{"servers:\n  - name: a\n    owner: x\n    url: http://mcp.example.com/mcp\n", "servers[0].url: \"http://mcp.example.com/mcp\": a remote server off loopback must use https"},
		{"servers:\n  - name: a\n    owner: x\n    command: c\n    sha256: abc\n", "r.yaml:5:5: servers[0].sha256: must be 64"},
		{"servers:\n  - name: a\n    owner: x\n    command: c\n  - name: a\n    owner: y\n    command: d\n", "r.yaml:5:5: servers[1].name: server \"a\" is listed twice"},
		{"servers:\n  - name: a\n    owner: x\n    url: https://x.example/mcp\n    spki_sha256: nope\n", "servers[0].spki_sha256: \"nope\" is not a base64 SHA-256"},
		{"serverz: []\n", "r.yaml:1:1: serverz: unknown field"},
		{"servers:\n  - name: a\n    owner: x\n    command: c\n    args: notalist\n", "servers[0].args: must be a list"},
	} {
		_, err := Parse("r.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v; want %q", tc.yaml, err, tc.want)
		}
	}
	if _, err := Parse("r.yaml", []byte("servers:\n  - name: a\n    owner: x\n    url: http://127.0.0.1:8080/mcp\n")); err != nil {
		t.Errorf("plain http on loopback refused: %v", err)
	}
}

func TestCheck(t *testing.T) {
	r, _ := Parse("r.yaml", []byte(goodRegistry))
	servers := []config.Server{
		{Name: "memory", Command: "npx", Args: []string{"-y", "@modelcontextprotocol/server-memory@2026.8.31"}},
		{Name: "local", Command: "/opt/mcp/server"},
		{Name: "remote", URL: "https://MCP.example.com:443/mcp/"},
		{Name: "githb", Command: "npx", Args: []string{"-y", "some-pkg"}},
		{Name: "memory2", Command: "npx", Args: []string{"-y", "@modelcontextprotocol/server-memory@2026.9.1"}},
	}
	fs := Check(r, servers, Options{Enforce: true, RequirePinned: true})
	got := map[string][]string{}
	for _, f := range fs {
		got[f.Server] = append(got[f.Server], f.Rule)
		if (f.Server == "memory" || f.Server == "local" || f.Server == "remote") && f.Refused {
			t.Errorf("registered server refused: %v", f)
		}
	}
	if len(got["memory"])+len(got["local"])+len(got["remote"]) != 0 {
		t.Errorf("findings on matching servers: %v", got)
	}
	if strings.Join(got["githb"], ",") != "not-registered,unpinned-package" {
		t.Errorf("githb: %v", got["githb"])
	}
	if !strings.Contains(strings.Join(got["memory2"], ","), "not-registered") {
		t.Errorf("memory2: %v", got["memory2"])
	}
	// A changed version is a source mismatch.
	servers[0].Args = []string{"-y", "@modelcontextprotocol/server-memory@2026.9.1"}
	fs = Check(r, servers[:1], Options{Enforce: true})
	if len(fs) != 1 || fs[0].Rule != "source-mismatch" || !fs[0].Refused {
		t.Errorf("changed version: %v", fs)
	}
	// Without a registry, only the sources are judged, never refused.
	fs = Check(nil, []config.Server{{Name: "x", Command: "npx", Args: []string{"-y", "pkg"}}}, Options{})
	if len(fs) != 1 || fs[0].Rule != "unpinned-package" || fs[0].Refused {
		t.Errorf("no registry: %v", fs)
	}
}

func TestSignVerify(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "registry.yaml")
	os.WriteFile(path, []byte(goodRegistry), 0o644)
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(r, pub); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("unsigned: %v", err)
	}
	os.WriteFile(SignatureFile(path), Sign(r, priv), 0o644)
	if err := Verify(r, pub); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{"mcp.example.com", "mcp.evil.example", `entry "remote" (line 10) was changed`},
		{"  - name: local\n", "  - name: extra\n    owner: x\n    command: y\n  - name: local\n", `entry "extra" (line 6) was added`},
		{"servers:\n", "# reviewed\nservers:\n", "the entries are as signed, but the file's bytes differ"},
	} {
		os.WriteFile(path, []byte(strings.Replace(goodRegistry, tc.from, tc.to, 1)), 0o644)
		r2, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(r2, pub); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tampered (%s): %v; want %q", tc.to, err, tc.want)
		}
	}
	// The public key may be given as a file or inline.
	pubText, _ := pub.MarshalText()
	os.WriteFile(filepath.Join(dir, "k.pub"), pubText, 0o644)
	for _, k := range []string{filepath.Join(dir, "k.pub"), pub.String()} {
		if got, err := PublicKey(k); err != nil || got.ID() != pub.ID() {
			t.Errorf("PublicKey(%s) = %v", k, err)
		}
	}
	if _, err := PublicKey(filepath.Join(dir, "missing.pub")); err == nil {
		t.Error("a missing key file accepted")
	}
	other, _, _ := minisign.GenerateKey(rand.Reader)
	if err := Verify(r, other); err == nil || !strings.Contains(err.Error(), "not with the configured public key") {
		t.Errorf("another key: %v", err)
	}
	// A forged manifest (comment changed) is not believed.
	os.WriteFile(path, []byte(goodRegistry), 0o644)
	sig, _ := os.ReadFile(SignatureFile(path))
	os.WriteFile(SignatureFile(path), []byte(strings.Replace(string(sig), "remote:", "remote2:", 1)), 0o644)
	if err := Verify(r, pub); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("forged comment: %v", err)
	}
}

func TestBinaryCheck(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "server")
	os.WriteFile(bin, []byte("#!/bin/sh\necho v1\n"), 0o755)
	h, err := HashFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	check := BinaryCheck(&Entry{Name: "s", Owner: "o", SHA256: h})
	if err := check(bin); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bin, []byte("#!/bin/sh\necho v2\n"), 0o755)
	if err := check(bin); err == nil || !strings.Contains(err.Error(), "was replaced or updated") {
		t.Errorf("replaced binary: %v", err)
	}
	if BinaryCheck(&Entry{Name: "s"}) != nil {
		t.Error("a check without a hash")
	}
}

func TestPinnedTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	pin := SPKI(srv.Certificate())
	get := func(pins []string) error {
		base := srv.Client().Transport.(*http.Transport).TLSClientConfig
		tr := &http.Transport{TLSClientConfig: PinnedTLS(base, "s", pins)}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get([]string{pin}); err != nil {
		t.Fatalf("the pinned key: %v", err)
	}
	if err := get([]string{"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}); err == nil || !strings.Contains(err.Error(), "not the pinned one") {
		t.Fatalf("another key: %v", err)
	}
}
