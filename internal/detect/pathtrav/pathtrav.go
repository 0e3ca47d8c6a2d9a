// Package pathtrav finds path traversal in tool arguments: ".." sequences that climb out
// of where a path starts, in any encoding (percent-encoded once or twice, backslashes,
// fullwidth or look-alike characters, NUL bytes), absolute paths outside the allowed roots,
// and references to files that hold secrets (/etc/shadow, ~/.ssh, .env, cloud credentials,
// MCP client configurations).
package pathtrav

import (
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"github.com/portcullis-mcp/portcullis/internal/detect"
)

// Name is the detector's name in findings.
const Name = "pathtrav"

// Options parameterize the checks.
type Options struct {
	// Roots are the directories paths must stay in (absolute, cleaned). None: no root
	// restriction, only escapes and sensitive files are found.
	Roots []string
	// ResolveSymlinks follows symbolic links of paths that exist on this host (when the
	// gateway shares the server's filesystem, as `portcullis run` does).
	ResolveSymlinks bool
}

// Checker checks paths. It is safe for concurrent use.
type Checker struct {
	roots   []string
	resolve bool
}

// New returns a checker.
func New(o Options) *Checker {
	c := &Checker{resolve: o.ResolveSymlinks}
	for _, r := range o.Roots {
		r = expandHome(r)
		c.roots = append(c.roots, path.Clean(filepath.ToSlash(r)))
	}
	return c
}

// Roots returns the allowed roots.
func (c *Checker) Roots() []string { return c.roots }

// LooksLikePath reports whether a whole argument value reads as a file system path (used
// for arguments whose name does not say so).
func LooksLikePath(v string) bool {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 4096 || strings.ContainsAny(v, " \n\t") && !strings.HasPrefix(v, "/") {
		return false
	}
	lv := strings.ToLower(v)
	switch {
	case strings.HasPrefix(v, "/"), strings.HasPrefix(v, "~/"), strings.HasPrefix(v, "./"), strings.HasPrefix(v, "../"),
		strings.HasPrefix(v, `..\`), strings.HasPrefix(v, `\\`), strings.HasPrefix(lv, "file:"),
		len(v) > 2 && v[1] == ':' && (v[2] == '\\' || v[2] == '/') && isLetter(v[0]),
		strings.Contains(lv, "%2e%2e"), strings.Contains(lv, "%252e"), strings.Contains(v, "/../"), strings.Contains(v, `\..\`):
		return true
	}
	return false
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// Canonical returns p decoded and cleaned as the server would most likely read it, with
// whether it was absolute, and what was odd about it (encodings, NUL bytes).
func Canonical(p string) (clean string, abs bool, notes []string) {
	if i := strings.IndexByte(p, 0); i >= 0 {
		notes = append(notes, "NUL byte")
		p = p[:i]
	}
	s := detect.Normalize(p)
	if s != p {
		notes = append(notes, "look-alike or invisible characters")
	}
	if strings.HasPrefix(strings.ToLower(s), "file:") {
		if u, err := url.Parse(s); err == nil && u.Path != "" {
			s = u.Path
		} else {
			s = s[len("file:"):]
		}
	}
	for i := 0; i < 3 && strings.Contains(s, "%"); i++ {
		d, err := url.PathUnescape(s)
		if err != nil || d == s {
			break
		}
		if i == 1 {
			notes = append(notes, "percent-encoded twice")
		} else if i == 0 {
			notes = append(notes, "percent-encoded")
		}
		s = d
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		notes = append(notes, "NUL byte (encoded)")
		s = s[:i]
	}
	if strings.Contains(s, `\`) {
		s = strings.ReplaceAll(s, `\`, "/")
	}
	s = expandHome(s)
	if len(s) > 2 && s[1] == ':' && s[2] == '/' && isLetter(s[0]) { // C:/...
		s = "/" + strings.ToLower(s[:1]) + ":" + s[2:]
	}
	abs = strings.HasPrefix(s, "/")
	if abs {
		return path.Clean(s), true, notes
	}
	return path.Clean(s), false, notes
}

func expandHome(s string) string {
	if s == "~" || strings.HasPrefix(s, "~/") {
		return "/~" + s[1:] // a home directory we do not know: keep it recognizable
	}
	return s
}

// Check returns the findings for one argument value. pathParam says whether the argument
// is known to be a path (by its name or schema); other arguments are checked only when
// their value looks like a path.
func (c *Checker) Check(value, pointer string, pathParam bool) []detect.Finding {
	if !pathParam && !LooksLikePath(value) {
		return nil
	}
	if len(value) > 8192 {
		value = value[:8192]
	}
	clean, abs, notes := Canonical(value)
	var out []detect.Finding
	add := func(sev detect.Severity, rule, msg string) {
		if len(notes) > 0 {
			msg += " (" + strings.Join(notes, ", ") + ")"
		}
		out = append(out, detect.Finding{Detector: Name, Rule: rule, Severity: sev, Pointer: pointer,
			Evidence: detect.Evidence(value), Message: msg})
	}
	climbs := hasDotDot(clean) || (!abs && strings.HasPrefix(clean, ".."))
	switch {
	case !abs && (clean == ".." || strings.HasPrefix(clean, "../")):
		add(detect.High, "escape", "the path climbs out of its base directory with \"..\"")
	case climbs:
		add(detect.High, "escape", "the path climbs with \"..\"")
	case abs && strings.Contains(filepath.ToSlash(decodedOnly(value)), "/../"):
		add(detect.Medium, "dotdot", "the path contains \"..\" segments")
	}
	if r := sensitive(clean); r != "" {
		add(detect.High, "sensitive-file", "the path names "+r)
	}
	if len(c.roots) > 0 {
		target := clean
		if !abs {
			target = path.Join(c.roots[0], clean)
		}
		if c.resolve && abs {
			if real, err := filepath.EvalSymlinks(filepath.FromSlash(target)); err == nil {
				real = filepath.ToSlash(real)
				if real != target && !c.within(real) {
					add(detect.High, "symlink-escape", "the path is a symbolic link to a place outside the allowed roots")
					return out
				}
			}
		}
		if !c.within(target) && !hasRule(out, "escape") {
			add(detect.High, "outside-roots", "the path is outside the allowed roots ("+strings.Join(c.roots, ", ")+")")
		}
	}
	if len(out) == 0 && len(notes) > 0 && pathParam {
		for _, n := range notes {
			if strings.HasPrefix(n, "NUL byte") || n == "percent-encoded twice" {
				add(detect.Medium, "encoding", "the path is disguised")
				break
			}
		}
	}
	return out
}

func hasRule(fs []detect.Finding, rule string) bool {
	for _, f := range fs {
		if f.Rule == rule {
			return true
		}
	}
	return false
}

// decodedOnly percent-decodes without cleaning.
func decodedOnly(v string) string {
	if d, err := url.PathUnescape(v); err == nil {
		return strings.ReplaceAll(d, `\`, "/")
	}
	return v
}

func hasDotDot(clean string) bool {
	return clean == ".." || strings.HasPrefix(clean, "../") || strings.Contains(clean, "/../") || strings.HasSuffix(clean, "/..")
}

func (c *Checker) within(p string) bool {
	for _, r := range c.roots {
		if r == "/" || p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

// sensitive names what a cleaned path refers to when it holds secrets or system
// configuration, or "".
func sensitive(p string) string {
	lp := strings.ToLower(p)
	base := path.Base(lp)
	for _, s := range sensitivePrefixes {
		if lp == s.path || strings.HasPrefix(lp, s.path+"/") || (!strings.HasPrefix(s.path, "/") && (strings.HasSuffix(lp, "/"+s.path) || strings.Contains(lp, "/"+s.path+"/") || lp == s.path || strings.HasPrefix(lp, s.path+"/"))) {
			return s.what
		}
	}
	if sensitiveBase[base] != "" {
		return sensitiveBase[base]
	}
	if strings.HasPrefix(base, ".env") && (base == ".env" || base[4] == '.') && !strings.HasSuffix(base, ".example") && !strings.HasSuffix(base, ".sample") && !strings.HasSuffix(base, ".template") {
		return "an environment file (.env) that usually holds secrets"
	}
	if strings.HasPrefix(base, "id_") && (strings.HasPrefix(base, "id_rsa") || strings.HasPrefix(base, "id_ed25519") || strings.HasPrefix(base, "id_ecdsa") || strings.HasPrefix(base, "id_dsa")) && !strings.HasSuffix(base, ".pub") {
		return "an SSH private key"
	}
	return ""
}

type place struct{ path, what string }

// Paths that start with "/" match from the root; the others match as a trailing sequence
// of segments anywhere ("/~/" stands for any home directory).
var sensitivePrefixes = []place{
	{"/etc/passwd", "the system's account list (/etc/passwd)"},
	{"/etc/shadow", "the system's password hashes (/etc/shadow)"},
	{"/etc/gshadow", "the system's group password hashes"},
	{"/etc/sudoers", "the sudo configuration"},
	{"/etc/ssh", "the SSH server configuration and host keys"},
	{"/etc/kubernetes", "Kubernetes credentials"},
	{"/root", "the root user's home directory"},
	{"/proc/self/environ", "the process environment (secrets in variables)"},
	{"/proc/1/environ", "a process environment"},
	{"/var/run/secrets", "mounted service-account secrets"},
	{"/run/secrets", "mounted secrets"},
	{"/var/run/docker.sock", "the Docker socket (root on the host)"},
	{"/c:/windows/system32/config", "the Windows registry hives (SAM)"},
	{".ssh", "SSH keys and configuration (~/.ssh)"},
	{".aws/credentials", "AWS credentials"},
	{".aws/config", "AWS configuration"},
	{".config/gcloud", "Google Cloud credentials"},
	{".azure", "Azure credentials"},
	{".kube/config", "Kubernetes credentials"},
	{".docker/config.json", "Docker registry credentials"},
	{".gnupg", "GnuPG keys"},
	{".git-credentials", "stored Git credentials"},
	{".config/gh/hosts.yml", "GitHub CLI credentials"},
	{".cursor/mcp.json", "an MCP client configuration"},
	{".vscode/mcp.json", "an MCP client configuration"},
	{"library/application support/claude", "Claude Desktop's configuration"},
	{".config/claude", "Claude's configuration"},
	{".password-store", "a password store"},
	{"/~/.config", "application configuration in a home directory"},
}

var sensitiveBase = map[string]string{
	".netrc":                               "stored network credentials (.netrc)",
	".npmrc":                               "npm credentials (.npmrc)",
	".pypirc":                              "PyPI credentials (.pypirc)",
	".pgpass":                              "PostgreSQL passwords (.pgpass)",
	".bash_history":                        "shell history",
	".zsh_history":                         "shell history",
	"mcp.json":                             "an MCP client configuration (mcp.json)",
	"claude_desktop_config.json":           "Claude Desktop's MCP configuration",
	"credentials.json":                     "a credentials file",
	"service-account.json":                 "a cloud service-account key",
	"terraform.tfstate":                    "Terraform state (holds secrets)",
	"wp-config.php":                        "WordPress database credentials",
	"shadow":                               "a password hash file",
	"master.key":                           "an application master key",
	"secrets.yml":                          "a secrets file",
	"secrets.yaml":                         "a secrets file",
	"keystore.jks":                         "a Java keystore",
	"htpasswd":                             "an htpasswd file",
	".htpasswd":                            "an htpasswd file",
	"known_hosts":                          "SSH known hosts",
	"authorized_keys":                      "SSH authorized keys",
	"ntds.dit":                             "the Active Directory database",
	"login data":                           "a browser's saved passwords",
	"cookies.sqlite":                       "a browser's cookies",
	"keychain-2.db":                        "the macOS keychain",
	"application_default_credentials.json": "Google Cloud default credentials",
}
