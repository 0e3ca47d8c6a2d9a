package clientconfig

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestRewriteGolden")

type want struct {
	name, scope, transport, target string
	env                            []string
}

var fixtures = []struct {
	file, client string
	entries      []want
}{
	{"claude-desktop.json", "claude-desktop", []want{
		{"filesystem", "user", Stdio, "npx", nil},
		{"github", "user", Stdio, "docker", []string{"GITHUB_PERSONAL_ACCESS_TOKEN"}},
	}},
	{"claude-code.json", "claude-code", []want{
		{"memory", "user", Stdio, "npx", nil},
		{"sentry", "user", HTTP, "https://mcp.sentry.dev/mcp", nil},
		{"db", "local:/home/alice/src/app", Stdio, "sudo", []string{"DATABASE_URI"}},
	}},
	{"project/.mcp.json", "claude-code", []want{
		{"everything", "project", Stdio, "npx", nil},
		{"remote", "project", SSE, "http://mcp.example.com:8080/sse", nil},
	}},
	{"cursor.json", "cursor", []want{
		{"sequential-thinking", "user", Stdio, "npx", nil},
		{"linear", "user", HTTP, "https://mcp.linear.app/mcp", nil},
	}},
	{"vscode-mcp.jsonc", "vscode", []want{
		{"memory", "user", Stdio, "npx", []string{"API_KEY"}},
		{"fetch", "user", HTTP, "http://localhost:3000/mcp", nil},
	}},
	{"vscode-settings.jsonc", "vscode-settings", []want{
		{"git", "user", Stdio, "uvx", nil},
	}},
	{"windsurf.json", "windsurf", []want{
		{"puppeteer", "user", Stdio, "npx", nil},
		{"remote-docs", "user", HTTP, "https://docs.example.com/mcp", nil},
	}},
	{"zed.jsonc", "zed", []want{
		{"postgres", "user", Stdio, "npx", nil},
		{"brave", "user", Stdio, "npx", []string{"BRAVE_API_KEY"}},
		{"remote", "user", HTTP, "https://mcp.example.org/mcp", nil},
	}},
	{"gemini.json", "gemini", []want{
		{"python-tools", "user", Stdio, "python", []string{"DATABASE_URL"}},
		{"http-server", "user", HTTP, "http://0.0.0.0:8080/mcp", nil},
		{"sse-server", "user", SSE, "http://localhost:8081/sse", nil},
	}},
	{"codex.toml", "codex", []want{
		{"docs", "user", Stdio, "npx", []string{"CONTEXT7_API_KEY"}},
		{"figma", "user", HTTP, "https://mcp.figma.com/mcp", nil},
		{"file system", "user", Stdio, "npx", nil},
	}},
	{"cline.json", "cline", []want{
		{"github.com/modelcontextprotocol/servers/tree/main/src/memory", "user", Stdio, "node", nil},
		{"weather", "user", SSE, "http://weather.example.com/sse", nil},
	}},
	{"continue.yaml", "continue", []want{
		{"SQLite MCP", "user", Stdio, "npx", nil},
		{"Remote", "user", HTTP, "https://mcp.example.net/mcp", nil},
	}},
}

func TestRead(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.file, func(t *testing.T) {
			f, err := Read(ByID(fx.client), filepath.Join("testdata", fx.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Entries) != len(fx.entries) {
				t.Fatalf("got %d entries, want %d: %+v", len(f.Entries), len(fx.entries), f.Entries)
			}
			for i, w := range fx.entries {
				e := f.Entries[i]
				target := e.Command
				if e.Transport != Stdio {
					target = e.URL
				}
				if e.Name != w.name || e.Scope != w.scope || e.Transport != w.transport || target != w.target {
					t.Errorf("entry %d = %q %s %s %s, want %q %s %s %s", i, e.Name, e.Scope, e.Transport, target, w.name, w.scope, w.transport, w.target)
				}
				if got := strings.Join(e.EnvNames(), ","); got != strings.Join(w.env, ",") {
					t.Errorf("entry %q env names %q, want %q", e.Name, got, strings.Join(w.env, ","))
				}
				if e.Line <= 0 {
					t.Errorf("entry %q has no line", e.Name)
				}
			}
		})
	}
}

func TestReadDetails(t *testing.T) {
	f, err := Read(ByID("cline"), "testdata/cline.json")
	if err != nil {
		t.Fatal(err)
	}
	if f.Entries[0].Flags["autoApprove"] != `["read_graph","create_entities"]` || !f.Entries[1].Disabled {
		t.Errorf("flags or disabled not read: %+v", f.Entries)
	}
	z, err := Read(ByID("zed"), "testdata/zed.jsonc")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(z.Entries[0].Args, " "); got != "-y @modelcontextprotocol/server-postgres postgresql://localhost/mydb" {
		t.Errorf("zed command object args = %q", got)
	}
	c, err := Read(ByID("codex"), "testdata/codex.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Entries[0].Line != 4 || c.Entries[1].Headers["Authorization"] != "Bearer ${FIGMA_OAUTH_TOKEN}" {
		t.Errorf("codex entries: %+v", c.Entries)
	}
	if a := c.Entries[0].Args; len(a) != 2 || a[1] != "@upstash/context7-mcp" {
		t.Errorf("codex multi-line args = %q", a)
	}
}

func TestMalformed(t *testing.T) {
	for _, tt := range []struct{ file, client, msg string }{
		{"bad-claude-desktop.json", "claude-desktop", "not valid JSON"},
		{"bad-claude-desktop-comments.json", "claude-desktop", "plain JSON"},
		{"bad-vscode-args.jsonc", "vscode", "args must be a list"},
		{"bad-codex.toml", "codex", "not valid TOML"},
		{"bad-continue.yaml", "continue", "not valid YAML"},
		{"bad-zed.jsonc", "zed", "must be an object"},
		{"bad-cursor.json", "cursor", "must be an object of servers"},
		{"bad-claude-code.json", "claude-code", `server "b": url must be a string`},
		{"bad-windsurf.json", "windsurf", "serverUrl must be a string"},
		{"bad-gemini.json", "gemini", "not valid JSON"},
		{"bad-cline.json", "cline", "neither a command nor a URL"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			_, err := Read(ByID(tt.client), path)
			if err == nil {
				t.Fatal("no error")
			}
			var ce *Error
			if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), path) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q: want *Error starting with %s and containing %q", err, path, tt.msg)
			}
		})
	}
}

// TestRewriteGolden rewrites every entry of every fixture to a portcullis command and
// compares with testdata/golden/<file>; everything not rewritten must be kept.
func TestRewriteGolden(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.file, func(t *testing.T) {
			f, err := Read(ByID(fx.client), filepath.Join("testdata", fx.file))
			if err != nil {
				t.Fatal(err)
			}
			var changes []Change
			for i, e := range f.Entries {
				changes = append(changes, Change{Pointer: e.Pointer, Command: "/usr/bin/portcullis",
					Args: []string{"run", "--config", "/home/alice/.config/portcullis/portcullis.yaml", fmt.Sprintf("s%d", i)}})
			}
			out, err := f.Rewrite(changes)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join("testdata", "golden", fx.file), out)
			g, err := Parse(f.Client, f.Path, out)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range g.Entries {
				if e.Transport != Stdio || e.Command != "/usr/bin/portcullis" || e.Name != f.Entries[i].Name {
					t.Errorf("entry %d after rewrite: %+v", i, e)
				}
				if strings.Join(e.EnvNames(), ",") != strings.Join(f.Entries[i].EnvNames(), ",") {
					t.Errorf("entry %q lost its env", e.Name)
				}
			}
			// Nothing asked, nothing changed.
			same, err := f.Rewrite(nil)
			if err != nil || string(same) != string(f.Data) {
				t.Errorf("an empty rewrite changed the file")
			}
		})
	}
}

func TestLocations(t *testing.T) {
	for _, tt := range []struct {
		env    Env
		client string
		want   string
	}{
		{Env{OS: "linux", Home: "/home/a"}, "claude-desktop", "/home/a/.config/Claude/claude_desktop_config.json"},
		{Env{OS: "darwin", Home: "/Users/a"}, "claude-desktop", "/Users/a/Library/Application Support/Claude/claude_desktop_config.json"},
		{Env{OS: "windows", Home: `C:\Users\a`, AppData: `C:\Users\a\AppData\Roaming`}, "claude-desktop", `C:\Users\a\AppData\Roaming\Claude\claude_desktop_config.json`},
		{Env{OS: "linux", Home: "/home/a"}, "codex", "/home/a/.codex/config.toml"},
		{Env{OS: "linux", Home: "/home/a", CodexDir: "/srv/codex"}, "codex", "/srv/codex/config.toml"},
		{Env{OS: "darwin", Home: "/Users/a"}, "vscode-settings", "/Users/a/Library/Application Support/Code/User/settings.json"},
		{Env{OS: "linux", Home: "/home/a", XDG: "/x"}, "zed", "/x/zed/settings.json"},
		{Env{OS: "windows", Home: `C:\Users\a`}, "windsurf", `C:\Users\a\.codeium\windsurf\mcp_config.json`},
		{Env{OS: "linux", Home: "/home/a"}, "cline", "/home/a/.config/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json"},
	} {
		got := ByID(tt.client).UserPaths(tt.env)[0]
		if got != tt.want {
			t.Errorf("%s on %s: %q, want %q", tt.client, tt.env.OS, got, tt.want)
		}
	}
	for _, tt := range []struct{ path, client string }{
		{"/home/a/.config/Claude/claude_desktop_config.json", "claude-desktop"},
		{"/src/app/.mcp.json", "claude-code"},
		{"/src/app/.cursor/mcp.json", "cursor"},
		{"/src/app/.vscode/mcp.json", "vscode"},
		{"/home/a/.config/Code/User/settings.json", "vscode-settings"},
		{"/home/a/.codex/config.toml", "codex"},
		{"/home/a/.continue/config.yaml", "continue"},
		{"/home/a/.gemini/settings.json", "gemini"},
	} {
		if c := Detect(tt.path); c == nil || c.ID != tt.client {
			t.Errorf("Detect(%s) = %v, want %s", tt.path, c, tt.client)
		}
	}
}

// HTTP entries pointed at another URL (the gateway's endpoint of the server) stay HTTP
// servers of the client, in the member and type the client reads Streamable HTTP from,
// with the new headers only; putting the entries back from the original gives its bytes.
func TestRewriteHTTPGolden(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.file, func(t *testing.T) {
			f, err := Read(ByID(fx.client), filepath.Join("testdata", fx.file))
			if err != nil {
				t.Fatal(err)
			}
			var changes []Change
			var pointers []string
			for i, e := range f.Entries {
				if e.Transport == Stdio {
					continue
				}
				changes = append(changes, Change{Pointer: e.Pointer, URL: fmt.Sprintf("http://127.0.0.1:8931/mcp/s%d", i),
					Headers: map[string]string{"Authorization": "Bearer pck_test"}})
				pointers = append(pointers, e.Pointer)
			}
			if len(changes) == 0 {
				t.Skip("no HTTP entry")
			}
			out, err := f.Rewrite(changes)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join("testdata", "golden-http", fx.file), out)
			g, err := Parse(f.Client, f.Path, out)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range g.Entries {
				was := f.Entries[i]
				if was.Transport == Stdio {
					if e.Command != was.Command || strings.Join(e.Args, " ") != strings.Join(was.Args, " ") {
						t.Errorf("stdio entry %q changed: %+v", e.Name, e)
					}
					continue
				}
				if e.Transport != HTTP || e.URL != fmt.Sprintf("http://127.0.0.1:8931/mcp/s%d", i) || len(e.Headers) != 1 || e.Headers["Authorization"] != "Bearer pck_test" {
					t.Errorf("entry %q after rewrite: %+v", e.Name, e)
				}
			}
			back, err := g.Restore(f, pointers)
			if err != nil {
				t.Fatal(err)
			}
			if string(back) != string(f.Data) {
				t.Errorf("restoring the entries does not give the original bytes:\n%s", back)
			}
		})
	}
}

// checkGolden compares out with the golden file (written first with -update).
func checkGolden(t *testing.T, golden string, out []byte) {
	t.Helper()
	if *update {
		os.MkdirAll(filepath.Dir(golden), 0o755)
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if string(out) != string(want) {
		t.Errorf("rewritten output differs from %s:\n%s", golden, out)
	}
}
