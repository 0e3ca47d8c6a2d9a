package clientconfig

import "strings"

// Client is an MCP client and where it keeps its servers.
type Client struct {
	ID   string // claude-desktop, claude-code, cursor, vscode, vscode-settings, windsurf, zed, gemini, codex, cline, continue
	Name string
	// ProjectFiles are paths, relative to a project directory, of project-level files.
	ProjectFiles []string
	userPaths    func(Env) []string
	format       format
}

// format parses one client file format.
type format interface {
	parse(c *Client, path string, data []byte) (document, error)
}

// UserPaths returns where the client keeps its user-level servers in env.
func (c *Client) UserPaths(env Env) []string { return c.userPaths(env) }

// Matches reports whether a --client name selects c ("vscode" selects both VS Code files).
func (c *Client) Matches(name string) bool {
	return c.ID == name || strings.HasPrefix(c.ID, name+"-")
}

// Clients are the known clients.
var Clients = []*Client{
	{ID: "claude-desktop", Name: "Claude Desktop",
		userPaths: func(e Env) []string {
			return []string{e.join(e.appSupport(), "Claude", "claude_desktop_config.json")}
		},
		format: jsonFormat{containers: [][]string{{"mcpServers"}}, strict: true}},
	{ID: "claude-code", Name: "Claude Code", ProjectFiles: []string{".mcp.json"},
		userPaths: func(e Env) []string { return []string{e.join(e.Home, ".claude.json")} },
		format:    jsonFormat{containers: [][]string{{"mcpServers"}}, strict: true, claudeProjects: true}},
	{ID: "cursor", Name: "Cursor", ProjectFiles: []string{".cursor/mcp.json"},
		userPaths: func(e Env) []string { return []string{e.join(e.Home, ".cursor", "mcp.json")} },
		format:    jsonFormat{containers: [][]string{{"mcpServers"}}}},
	{ID: "vscode", Name: "VS Code", ProjectFiles: []string{".vscode/mcp.json"},
		userPaths: func(e Env) []string { return []string{e.join(e.appSupport(), "Code", "User", "mcp.json")} },
		format:    jsonFormat{containers: [][]string{{"servers"}}}},
	{ID: "vscode-settings", Name: "VS Code (settings.json)",
		userPaths: func(e Env) []string { return []string{e.join(e.appSupport(), "Code", "User", "settings.json")} },
		format:    jsonFormat{containers: [][]string{{"mcp", "servers"}}}},
	{ID: "windsurf", Name: "Windsurf",
		userPaths: func(e Env) []string { return []string{e.join(e.Home, ".codeium", "windsurf", "mcp_config.json")} },
		format:    jsonFormat{containers: [][]string{{"mcpServers"}}}},
	{ID: "zed", Name: "Zed", ProjectFiles: []string{".zed/settings.json"},
		userPaths: func(e Env) []string {
			switch e.OS {
			case "windows":
				return []string{e.join(e.appData(), "Zed", "settings.json")}
			case "darwin":
				return []string{e.join(e.Home, ".config", "zed", "settings.json")}
			}
			if e.XDG != "" {
				return []string{e.join(e.XDG, "zed", "settings.json")}
			}
			return []string{e.join(e.Home, ".config", "zed", "settings.json")}
		},
		format: jsonFormat{containers: [][]string{{"context_servers"}}, zed: true}},
	{ID: "gemini", Name: "Gemini CLI", ProjectFiles: []string{".gemini/settings.json"},
		userPaths: func(e Env) []string { return []string{e.join(e.Home, ".gemini", "settings.json")} },
		format:    jsonFormat{containers: [][]string{{"mcpServers"}}, urlIsSSE: true, httpKey: "httpUrl"}},
	{ID: "codex", Name: "Codex",
		userPaths: func(e Env) []string {
			if e.CodexDir != "" {
				return []string{e.join(e.CodexDir, "config.toml")}
			}
			return []string{e.join(e.Home, ".codex", "config.toml")}
		},
		format: tomlFormat{}},
	{ID: "cline", Name: "Cline",
		userPaths: func(e Env) []string {
			var out []string
			for _, editor := range []string{"Code", "Cursor", "Windsurf"} {
				out = append(out, e.join(e.appSupport(), editor, "User", "globalStorage", "saoudrizwan.claude-dev", "settings", "cline_mcp_settings.json"))
			}
			return out
		},
		format: jsonFormat{containers: [][]string{{"mcpServers"}}, strict: true, urlIsSSE: true, httpType: "streamableHttp"}},
	{ID: "continue", Name: "Continue", ProjectFiles: []string{".continue/mcpServers/mcp.yaml"},
		userPaths: func(e Env) []string { return []string{e.join(e.Home, ".continue", "config.yaml")} },
		format:    yamlFormat{}},
}

// ByID returns the client with id, nil when there is none.
func ByID(id string) *Client {
	for _, c := range Clients {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// IDs lists the client ids.
func IDs() []string {
	var out []string
	for _, c := range Clients {
		out = append(out, c.ID)
	}
	return out
}
