package wrap

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/portcullis-mcp/portcullis/internal/clientconfig"
)

// withEnvFile returns e with the variables of its envFile added to its environment by
// name. The client loads the file into the environment of the command it starts, which
// is `portcullis run` once wrapped; run hands a server only the variables its
// configuration names, so each name of the file becomes a "${NAME}" reference like the
// entry's own env (values stay in the file). note says what the user should check when
// the file cannot be read now.
func withEnvFile(e clientconfig.Entry, clientFile string) (clientconfig.Entry, string) {
	path := expandEnvFile(e.EnvFile, clientFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return e, fmt.Sprintf("envFile %s could not be read (%v): its variables will not reach the server until it is wrapped again", e.EnvFile, err)
	}
	names := envFileNames(data)
	if len(names) == 0 {
		return e, ""
	}
	env := maps.Clone(e.Env)
	if env == nil {
		env = map[string]string{}
	}
	for _, n := range names {
		if _, set := env[n]; !set {
			env[n] = ""
		}
	}
	e.Env = env
	return e, ""
}

// expandEnvFile resolves the variables VS Code allows in envFile: ${workspaceFolder}
// (the folder holding .vscode/, or the client file's own folder), ${userHome} and
// ${env:NAME}. A relative path is taken from the workspace folder.
func expandEnvFile(p, clientFile string) string {
	workspace := filepath.Dir(clientFile)
	if filepath.Base(workspace) == ".vscode" {
		workspace = filepath.Dir(workspace)
	}
	home, _ := os.UserHomeDir()
	p = os.Expand(p, func(v string) string {
		switch {
		case v == "workspaceFolder":
			return workspace
		case v == "userHome":
			return home
		case strings.HasPrefix(v, "env:"):
			return os.Getenv(strings.TrimPrefix(v, "env:"))
		}
		return "${" + v + "}"
	})
	if !filepath.IsAbs(p) {
		p = filepath.Join(workspace, p)
	}
	return p
}

// envFileNames returns the variable names a dotenv file sets, in order: NAME=value
// lines, with an optional "export ", blank lines and # comments skipped.
func envFileNames(data []byte) []string {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		name, _, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if ok && validEnvName(name) {
			names = append(names, name)
		}
	}
	return names
}

func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
