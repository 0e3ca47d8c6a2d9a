// Package cmdinj finds command injection in the arguments of tools that run commands.
// A tool runs commands when configuration says so, or when its name, description or
// parameters say so ("run_command", "execute a shell command", a "command" parameter).
//
// In the command line itself, shell features are the point, so only what is dangerous is
// flagged: reverse shells, download-and-execute, exfiltration of files or the environment,
// destruction of the system, reading secrets, and (at low severity) substitutions. In the
// other arguments of such a tool (a branch name, a file name), any shell metacharacter or
// substitution is injection: the server may paste the value into a shell command.
package cmdinj

import (
	"regexp"
	"strings"
	"unicode"

	"github.com/portcullis-mcp/portcullis/internal/detect"
	"github.com/portcullis-mcp/portcullis/internal/detect/pathtrav"
)

// Name is the detector's name in findings.
const Name = "cmdinj"

// Role is what an argument is to a tool.
type Role int

const (
	// Other is an argument of a tool that does not run commands: not checked.
	Other Role = iota
	// CommandLine is the command a command-running tool runs.
	CommandLine
	// CommandArg is any other argument of a command-running tool.
	CommandArg
)

var commandWords = map[string]bool{
	"exec": true, "execute": true, "shell": true, "bash": true, "sh": true, "zsh": true, "cmd": true,
	"command": true, "commands": true, "terminal": true, "powershell": true, "pwsh": true, "spawn": true,
	"subprocess": true, "cli": true, "console": true,
}

var commandPhrases = []string{
	"shell command", "terminal command", "command line", "command-line", "execute a command", "run a command",
	"executes a command", "runs a command", "execute command", "run command", "execute shell", "run shell",
	"executes commands", "runs commands", "in a shell", "in the shell", "on the terminal", "in the terminal",
	"bash script", "shell script",
}

// CommandParams are parameter names that hold a command line.
var CommandParams = map[string]bool{
	"command": true, "cmd": true, "commandline": true, "command_line": true, "cmdline": true, "script": true,
	"shell_command": true, "shellcommand": true, "bash_command": true,
}

// Words splits an identifier into lower-case words (snake, kebab, camel, dots).
func Words(id string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	prev := rune(0)
	for _, r := range id {
		switch {
		case r == '_' || r == '-' || r == '.' || r == ' ' || r == '/':
			flush()
		case unicode.IsUpper(r) && prev != 0 && unicode.IsLower(prev):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
		prev = r
	}
	flush()
	return out
}

// IsCommandTool says whether a tool runs commands, from its name, description and
// parameter names.
func IsCommandTool(name, description string, params []string) bool {
	for _, w := range Words(name) {
		if commandWords[w] {
			return true
		}
	}
	for _, p := range params {
		if CommandParams[strings.ToLower(p)] {
			return true
		}
	}
	d := strings.ToLower(description)
	for _, p := range commandPhrases {
		if strings.Contains(d, p) {
			return true
		}
	}
	return false
}

type rule struct {
	id  string
	sev detect.Severity
	re  *regexp.Regexp
	msg string
}

var lineRules = []rule{
	{"reverse-shell", detect.Critical, regexp.MustCompile(`(?i)/dev/(tcp|udp)/|\b(nc|ncat|netcat)\b[^|;&]*\s-[a-z]*[ec]\b|\bbash\s+-i\b[^|;&]*[>&]|\bsocat\b[^|;&]*\bexec:|\bmkfifo\b[^;]*\b(nc|ncat|sh)\b|socket\.socket\(.*connect\(`),
		"the command opens a reverse shell"},
	{"download-exec", detect.Critical, regexp.MustCompile(`(?i)\b(curl|wget|fetch|iwr|invoke-webrequest)\b[^|;&]*\|\s*(sudo\s+)?(ba|z|da|k)?sh\b|\b(curl|wget)\b[^|;&]*\|\s*(python\d?|perl|ruby|node|php)\b|\biex\s*\(\s*(new-object|iwr|invoke-webrequest)`),
		"the command downloads code and runs it"},
	{"decode-exec", detect.High, regexp.MustCompile(`(?i)base64\s+(-d|--decode)[^|;&]*\|\s*(ba|z)?sh\b|\beval\s*\(?\s*["'$]?\(?\s*(echo|printf)[^|]*\|\s*base64`),
		"the command decodes hidden code and runs it"},
	{"exfiltration", detect.High, regexp.MustCompile(`(?i)\b(curl|wget)\b[^;&|]*(\s-d\s*@|--data(-binary|-raw|-urlencode)?[ =]@|\s-F\s*\S*=@|--upload-file|\s-T\s)|\|\s*(curl|wget|nc|ncat)\b|\b(env|printenv|set)\s*\|\s*(curl|nc|wget)|\bscp\b[^;&|]*\S+@\S+:`),
		"the command sends data to another host"},
	{"destructive", detect.High, regexp.MustCompile(`(?i)\brm\s+(-[a-z]*[rf][a-z]*\s+)+(--no-preserve-root\s+)?(/|~|\*|/\*|\$home)(\s|$)|\bmkfs(\.\w+)?\b|\bdd\b[^;&|]*\bof=/dev/(sd|nvme|hd|disk)|:\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;|\bchmod\s+(-r\s+)?[0-7]?777\s+/(\s|$)|>\s*/dev/sd[a-z]|\bshutdown\b|\breboot\b|\bformat\s+c:`),
		"the command destroys data or the system"},
	{"persistence", detect.High, regexp.MustCompile(`(?i)>>?\s*~?/?[^\s;|&]*(\.ssh/authorized_keys|\.bashrc|\.zshrc|\.profile|crontab|/etc/cron)|\bcrontab\s+-[a-z]*\b|\buseradd\b|\bpasswd\b\s+\w`),
		"the command installs persistence (keys, cron, shell profile, accounts)"},
}

var substitution = regexp.MustCompile("\\$\\([^)]*\\)|`[^`]+`|\\$\\{[^}]*\\}")

// Check returns findings for one argument value in its role.
func Check(value, pointer string, role Role) []detect.Finding {
	if role == Other || value == "" {
		return nil
	}
	if len(value) > 16384 {
		value = value[:16384]
	}
	v := detect.Normalize(value)
	var out []detect.Finding
	add := func(sev detect.Severity, r, msg string) {
		out = append(out, detect.Finding{Detector: Name, Rule: r, Severity: sev, Pointer: pointer, Evidence: detect.Evidence(value), Message: msg})
	}
	for _, r := range lineRules {
		if r.re.MatchString(v) {
			add(r.sev, r.id, r.msg)
		}
	}
	if role == CommandLine {
		for _, w := range strings.FieldsFunc(v, func(r rune) bool {
			return r == ' ' || r == '\t' || r == '\n' || r == ';' || r == '|' || r == '&' || r == '<' || r == '>' || r == '"' || r == '\'' || r == '=' || r == '(' || r == ')'
		}) {
			if !strings.ContainsAny(w, "/~.") {
				continue
			}
			for _, f := range pathtrav.New(pathtrav.Options{}).Check(w, pointer, false) {
				if f.Rule == "sensitive-file" {
					add(detect.High, "secret-read", "the command touches "+strings.TrimPrefix(f.Message, "the path names "))
					return out
				}
			}
		}
		if substitution.MatchString(v) && len(out) == 0 {
			add(detect.Low, "substitution", "the command uses shell substitution")
		}
		return out
	}
	// CommandArg: the value should be data; any shell syntax is injection.
	switch {
	case substitution.MatchString(v):
		add(detect.High, "substitution", "an argument of a command-running tool contains shell substitution")
	case strings.ContainsAny(v, ";|&\n") && hasCommandAfterMeta(v):
		add(detect.High, "chaining", "an argument of a command-running tool chains another command")
	case strings.ContainsAny(v, ";|&`<>\n"):
		add(detect.Medium, "metacharacters", "an argument of a command-running tool contains shell metacharacters")
	case strings.HasPrefix(strings.TrimSpace(v), "-") && len(strings.TrimSpace(v)) > 1 && !isNumber(strings.TrimSpace(v)):
		add(detect.Medium, "option-injection", "an argument of a command-running tool starts with \"-\" and may be read as an option")
	}
	return out
}

func isNumber(s string) bool {
	for i, c := range s {
		if !(c >= '0' && c <= '9' || c == '.' || (i == 0 && c == '-')) {
			return false
		}
	}
	return true
}

// hasCommandAfterMeta reports a word after ; | & or newline.
func hasCommandAfterMeta(v string) bool {
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case ';', '|', '&', '\n':
			rest := strings.TrimLeft(v[i+1:], " \t;|&")
			if rest != "" && (rest[0] >= 'a' && rest[0] <= 'z' || rest[0] == '/' || rest[0] == '.') {
				return true
			}
		}
	}
	return false
}
