package wrap

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/clientconfig"
	"github.com/portcullis-mcp/portcullis/internal/config"
)

var fixtures = []struct{ file, client string }{
	{"claude-desktop.json", "claude-desktop"},
	{"claude-code.json", "claude-code"},
	{"project/.mcp.json", "claude-code"},
	{"cursor.json", "cursor"},
	{"vscode-mcp.jsonc", "vscode"},
	{"vscode-settings.jsonc", "vscode-settings"},
	{"windsurf.json", "windsurf"},
	{"zed.jsonc", "zed"},
	{"gemini.json", "gemini"},
	{"codex.toml", "codex"},
	{"cline.json", "cline"},
	{"continue.yaml", "continue"},
}

func read(t *testing.T, client, path string) *clientconfig.File {
	t.Helper()
	f, err := clientconfig.Read(clientconfig.ByID(client), path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestWrapUnwrap wraps every fixture, checks the result, wraps again (nothing changes) and
// unwraps (the original bytes come back, the configuration it created is gone).
func TestWrapUnwrap(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.file, func(t *testing.T) {
			dir := t.TempDir()
			orig, err := os.ReadFile(filepath.Join("..", "clientconfig", "testdata", fx.file))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "client", filepath.Base(fx.file))
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, orig, 0o640); err != nil {
				t.Fatal(err)
			}
			opts := Options{Config: filepath.Join(dir, "pc", "portcullis.yaml"), Portcullis: "/opt/bin/portcullis"}
			before := read(t, fx.client, path)
			p, err := Prepare([]*clientconfig.File{before}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Changed() || !strings.Contains(p.Diff(), "+++ b/"+strings.TrimPrefix(path, "/")) {
				t.Fatalf("plan changes nothing or diff misses the file:\n%s", p.Diff())
			}
			if err := p.Apply(); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(opts.Config)
			if err != nil {
				t.Fatal(err)
			}
			after := read(t, fx.client, path)
			for i, e := range after.Entries {
				if !IsWrapped(e, opts.Portcullis) || e.Args[2] != opts.Config {
					t.Errorf("entry %q not wrapped: %+v", e.Name, e)
					continue
				}
				var s *config.Server
				for j := range cfg.Servers {
					if cfg.Servers[j].Name == e.Args[3] {
						s = &cfg.Servers[j]
					}
				}
				o := before.Entries[i]
				switch {
				case s == nil:
					t.Errorf("entry %q names server %q, which is not in the configuration", e.Name, e.Args[3])
				case o.Transport == clientconfig.Stdio && (s.Command != o.Command || strings.Join(s.Args, " ") != strings.Join(o.Args, " ")):
					t.Errorf("server %q = %s %q, want %s %q", s.Name, s.Command, s.Args, o.Command, o.Args)
				case o.Transport != clientconfig.Stdio && s.URL != o.URL:
					t.Errorf("server %q url %q, want %q", s.Name, s.URL, o.URL)
				case len(withoutFetcher(*s).Env) != len(o.Env):
					t.Errorf("server %q env %v, want the names of %v", s.Name, s.Env, o.Env)
				}
				// Package launchers get a cache of their own and their registry in the sandbox.
				if s != nil {
					b := filepath.Base(s.Command)
					if f, ok := fetchers[b]; ok {
						cache := filepath.Join(filepath.Dir(opts.Config), "cache", b+"-"+s.Name)
						if s.Env[f.cacheEnv] != cache || s.Sandbox == nil || !slices.Equal(s.Sandbox.ReadWrite, []string{cache}) || !slices.Equal(s.Sandbox.Egress, f.egress) {
							t.Errorf("server %q (%s) env %v sandbox %+v, want %s=%s writable and egress %v", s.Name, b, s.Env, s.Sandbox, f.cacheEnv, cache, f.egress)
						}
					} else if s.Sandbox != nil {
						t.Errorf("server %q (%s) got a sandbox section: %+v", s.Name, b, s.Sandbox)
					}
				}
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
				t.Errorf("mode changed to %v", st.Mode().Perm())
			}
			// Again: nothing to do.
			p2, err := Prepare([]*clientconfig.File{after}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if p2.Changed() {
				t.Fatalf("second wrap changes things:\n%s", p2.Diff())
			}
			res, err := Unwrap(opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != string(orig) {
				t.Errorf("unwrap did not restore the original bytes (%v):\n%s", res, got)
			}
			if _, err := os.Stat(opts.Config); !os.IsNotExist(err) {
				t.Errorf("the configuration wrap created is still there: %v", err)
			}
			if _, err := os.Stat(opts.StateFile()); !os.IsNotExist(err) {
				t.Errorf("the state file is still there")
			}

			// Again, and this time the client changes its file while wrapped.
			p, err = Prepare([]*clientconfig.File{read(t, fx.client, path)}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Apply(); err != nil {
				t.Fatal(err)
			}
			wrapped := mustRead(t, path)
			edit := func(b []byte) []byte { return append([]byte("\n"), b...) }
			if strings.HasSuffix(path, ".toml") || strings.HasSuffix(path, ".yaml") {
				edit = func(b []byte) []byte { return append(append([]byte{}, b...), "\n# edited by the client\n"...) }
			}
			os.WriteFile(path, edit(wrapped), 0o640)
			if _, err := Unwrap(opts, nil); err != nil {
				t.Fatal(err)
			}
			got = mustRead(t, path)
			if strings.HasSuffix(path, ".yaml") { // re-encoded: compare what it says
				now := read(t, fx.client, path)
				for i, e := range now.Entries {
					o := before.Entries[i]
					if e.Command != o.Command || strings.Join(e.Args, " ") != strings.Join(o.Args, " ") || e.URL != o.URL {
						t.Errorf("entry %d after unwrap of the edited file: %+v, want %+v", i, e, o)
					}
				}
				if !strings.Contains(string(got), "# edited by the client") {
					t.Errorf("the client's edit is lost:\n%s", got)
				}
			} else if string(got) != string(edit(orig)) {
				t.Errorf("unwrap of the edited file:\n%s\nwant:\n%s", got, edit(orig))
			}
		})
	}
}

func TestWrapKeepsExistingConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "portcullis.yaml")
	cfgBytes := []byte("# mine\nlisten: 127.0.0.1:8931\nauth: none\nservers:\n  - name: memory\n    command: npx\n    args: [\"-y\", \"@modelcontextprotocol/server-memory\"]\n")
	os.WriteFile(cfgPath, cfgBytes, 0o600)
	client := filepath.Join(dir, "mcp.json")
	orig := []byte(`{"mcpServers": {"memory": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"]}, "fs": {"command": "npx", "args": ["-y", "fs"]}}}`)
	os.WriteFile(client, orig, 0o600)
	opts := Options{Config: cfgPath, Portcullis: "/opt/bin/portcullis"}
	p, err := Prepare([]*clientconfig.File{read(t, "cursor", client)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Servers) != 2 || cfg.Servers[0].Name != "memory" || cfg.Servers[1].Name != "fs" || cfg.Listen != "127.0.0.1:8931" {
		t.Errorf("configuration after wrap: %+v", cfg.Servers)
	}
	// The client rewrote its file, and the user the configuration: unwrap undoes only
	// what wrap did.
	wrapped, _ := os.ReadFile(client)
	os.WriteFile(client, append([]byte("\n"), wrapped...), 0o600)
	cur, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, append(cur, []byte("log:\n  level: debug\n")...), 0o600)
	res, err := Unwrap(opts, nil)
	if err != nil {
		t.Fatalf("unwrap of edited files: %v", err)
	}
	if got, _ := os.ReadFile(client); string(got) != "\n"+string(orig) {
		t.Errorf("client file after unwrap:\n%s\nwant the original entries and the edit (%+v)", got, res)
	}
	cfg, err = config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Servers) != 1 || cfg.Servers[0].Name != "memory" || cfg.Log.Level != "debug" {
		t.Errorf("configuration after unwrap: servers %+v, log %+v", cfg.Servers, cfg.Log)
	}
	// --force restores the original bytes even of an edited file.
	p, _ = Prepare([]*clientconfig.File{read(t, "cursor", client)}, opts)
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	before := string(mustRead(t, client))
	os.WriteFile(client, []byte(before+" "), 0o600)
	if _, err := Unwrap(Options{Config: cfgPath, Portcullis: opts.Portcullis, Force: true}, nil); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, client); string(got) != "\n"+string(orig) {
		t.Errorf("forced unwrap:\n%s", got)
	}
	if got := mustRead(t, client+".unwrapped"); string(got) != before+" " {
		t.Errorf("the edited file was not kept")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestServerName(t *testing.T) {
	for in, want := range map[string]string{
		"filesystem": "filesystem",
		"github.com/modelcontextprotocol/servers/tree/main/src/memory": "memory",
		"SQLite MCP":  "sqlite-mcp",
		"file system": "file-system",
		"___":         "server",
	} {
		if got := serverName(in); got != want {
			t.Errorf("serverName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUnified(t *testing.T) {
	d := Unified("/x/f", []byte("a\nb\nc\nd\ne\nf\ng\nh\n"), []byte("a\nb\nc\nD\ne\nf\ng\nh\n"))
	want := "--- a/x/f\n+++ b/x/f\n@@ -1,7 +1,7 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n"
	if d != want {
		t.Errorf("diff:\n%s\nwant:\n%s", d, want)
	}
}

// With a gateway, HTTP entries stay HTTP and point at the gateway's endpoint of their
// server with the client's credential (one key per client, created once, written into a
// file only its owner may read); stdio entries run through portcullis run. A second wrap
// creates nothing; unwrap gives back the original bytes and mode and revokes the keys.
func TestWrapHTTPToGateway(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.file, func(t *testing.T) {
			dir := t.TempDir()
			orig := mustRead(t, filepath.Join("..", "clientconfig", "testdata", fx.file))
			path := filepath.Join(dir, "client", filepath.Base(fx.file))
			os.MkdirAll(filepath.Dir(path), 0o755)
			os.WriteFile(path, orig, 0o644)
			os.Chmod(path, 0o644)
			var created, revoked []string
			opts := Options{Config: filepath.Join(dir, "pc", "portcullis.yaml"), Portcullis: "/opt/bin/portcullis",
				Gateway: "http://127.0.0.1:8931",
				Credential: func(client string) (Credential, error) {
					id := fmt.Sprintf("key%d", len(created)+1)
					created = append(created, id)
					return Credential{Headers: map[string]string{"Authorization": "Bearer secret-" + id}, KeyID: id}, nil
				},
				Revoke: func(id string) error { revoked = append(revoked, id); return nil },
			}
			before := read(t, fx.client, path)
			p, err := Prepare([]*clientconfig.File{before}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(p.Diff(), "secret-key") {
				t.Errorf("the diff shows the API key:\n%s", p.Diff())
			}
			if err := p.Apply(); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(opts.Config)
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]config.Server{}
			for _, s := range cfg.Servers {
				byName[s.Name] = s
			}
			http := 0
			for i, e := range read(t, fx.client, path).Entries {
				o := before.Entries[i]
				if o.Transport == clientconfig.Stdio {
					if !IsWrapped(e, opts.Portcullis) {
						t.Errorf("stdio entry %q not run through portcullis: %+v", e.Name, e)
					}
					continue
				}
				http++
				name, ok := strings.CutPrefix(e.URL, "http://127.0.0.1:8931/mcp/")
				if e.Transport != clientconfig.HTTP || !ok || e.Headers["Authorization"] != "Bearer secret-key1" || len(e.Headers) != 1 {
					t.Errorf("HTTP entry %q after wrap: %+v", e.Name, e)
					continue
				}
				if s, ok := byName[name]; !ok || s.URL != o.URL || len(s.Headers) != len(o.Headers) {
					t.Errorf("entry %q points at %s, registered as %+v; want url %s and its headers", e.Name, e.URL, s, o.URL)
				}
			}
			wantKeys := 0
			if http > 0 {
				wantKeys = 1
			}
			if len(created) != wantKeys {
				t.Errorf("%d keys created for %d HTTP entries of one client, want %d", len(created), http, wantKeys)
			}
			st, _ := os.Stat(path)
			if wantMode := map[bool]os.FileMode{true: 0o600, false: 0o644}[http > 0]; st.Mode().Perm() != wantMode {
				t.Errorf("mode after wrap %v, want %v", st.Mode().Perm(), wantMode)
			}
			p2, err := Prepare([]*clientconfig.File{read(t, fx.client, path)}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if p2.Changed() || len(created) != wantKeys {
				t.Fatalf("second wrap changes things (keys %v):\n%s", created, p2.Diff())
			}
			// Nor when the gateway is named differently now: the entries point at the one
			// they were pointed at.
			other := opts
			other.Gateway = "http://127.0.0.1:9999"
			if p3, err := Prepare([]*clientconfig.File{read(t, fx.client, path)}, other); err != nil || p3.Changed() {
				t.Fatalf("wrap with another gateway URL changes things (%v):\n%s", err, p3.Diff())
			}
			if _, err := Unwrap(opts, nil); err != nil {
				t.Fatal(err)
			}
			if got := mustRead(t, path); string(got) != string(orig) {
				t.Errorf("unwrap did not restore the original bytes:\n%s", got)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
				t.Errorf("mode after unwrap %v, want 0644", st.Mode().Perm())
			}
			if !slices.Equal(revoked, created) {
				t.Errorf("unwrap revoked %v, want %v", revoked, created)
			}
			if _, err := os.Stat(opts.StateFile()); !os.IsNotExist(err) {
				t.Errorf("the state file is still there")
			}
		})
	}
}

// A gateway whose authentication wrap cannot give a client leaves HTTP entries alone.
func TestWrapHTTPCredentialUnavailable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mcp.json")
	orig := []byte(`{"mcpServers": {"remote": {"url": "https://mcp.example.com/mcp"}, "fs": {"command": "npx", "args": ["-y", "fs@1.0.0"]}}}`)
	os.WriteFile(path, orig, 0o600)
	opts := Options{Config: filepath.Join(dir, "portcullis.yaml"), Portcullis: "/opt/bin/portcullis", Gateway: "http://127.0.0.1:8931",
		Credential: func(string) (Credential, error) {
			return Credential{}, fmt.Errorf("the gateway takes OIDC tokens only")
		}}
	p, err := Prepare([]*clientconfig.File{read(t, "cursor", path)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Files[0].Changes) != 1 || len(p.Files[0].Skipped) != 1 || !strings.Contains(p.Files[0].Skipped[0], "OIDC") {
		t.Fatalf("changes %+v, skipped %v", p.Files[0].Changes, p.Files[0].Skipped)
	}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	for _, e := range read(t, "cursor", path).Entries {
		if e.Name == "remote" && e.URL != "https://mcp.example.com/mcp" {
			t.Errorf("the HTTP entry was changed: %+v", e)
		}
	}
}

// A VS Code entry's envFile reaches the wrapped server: VS Code loads the file into the
// environment of `portcullis run`, and the server's configuration names each of its
// variables (values stay in the file). A file that cannot be read is noted.
func TestWrapVSCodeEnvFile(t *testing.T) {
	dir := t.TempDir()
	project := filepath.Join(dir, "project")
	os.MkdirAll(filepath.Join(project, ".vscode"), 0o755)
	os.WriteFile(filepath.Join(project, ".env"), []byte("# tokens\nexport GITHUB_TOKEN=ghp_example\nAPI_URL = \"https://x\"\n\nnot a variable\n"), 0o600)
	client := filepath.Join(project, ".vscode", "mcp.json")
	os.WriteFile(client, []byte(`{"servers": {
  "github": {"type": "stdio", "command": "node", "args": ["gh-mcp.js"], "env": {"LOG": "1"}, "envFile": "${workspaceFolder}/.env"},
  "other": {"type": "stdio", "command": "node", "args": ["other.js"], "envFile": "missing.env"}
}}`), 0o600)
	opts := Options{Config: filepath.Join(dir, "pc", "portcullis.yaml"), Portcullis: "/opt/bin/portcullis"}
	p, err := Prepare([]*clientconfig.File{read(t, "vscode", client)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	fp := p.Files[0]
	env := map[string]map[string]string{}
	for _, s := range fp.Servers {
		env[s.Name] = s.Env
	}
	want := map[string]string{"LOG": "${LOG}", "GITHUB_TOKEN": "${GITHUB_TOKEN}", "API_URL": "${API_URL}"}
	if fmt.Sprint(env["github"]) != fmt.Sprint(want) {
		t.Errorf("github's environment %v, want %v", env["github"], want)
	}
	if len(env["other"]) != 0 {
		t.Errorf("other's environment %v, want none", env["other"])
	}
	if len(fp.Notes) != 1 || !strings.Contains(fp.Notes[0], "other: envFile missing.env could not be read") {
		t.Errorf("notes %q, want one about other's envFile", fp.Notes)
	}
	if strings.Contains(string(p.ConfigAfter), "ghp_example") {
		t.Errorf("a value of the envFile was copied into the configuration:\n%s", p.ConfigAfter)
	}
	if err := p.Apply(); err != nil {
		t.Fatal(err)
	}
	if after := string(mustRead(t, client)); !strings.Contains(after, `"envFile": "${workspaceFolder}/.env"`) || !strings.Contains(after, `"/opt/bin/portcullis"`) {
		t.Errorf("the wrapped entry must keep its envFile (VS Code loads it for portcullis run):\n%s", after)
	}
}
