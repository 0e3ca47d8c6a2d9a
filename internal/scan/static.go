package scan

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/portcullis-mcp/portcullis/internal/clientconfig"
	"github.com/portcullis-mcp/portcullis/internal/detect"
	"github.com/portcullis-mcp/portcullis/internal/detect/secrets"
)

// Static returns the findings of a configuration entry alone.
func Static(t Target) []Finding {
	e := t.Entry
	var out []Finding
	add := func(rule string, sev detect.Severity, ptr, msg, evidence string) {
		l := t.loc()
		l.Pointer = ptr
		out = append(out, Finding{Rule: rule, Severity: sev, Message: msg, Evidence: evidence, Location: l})
	}
	if e.Transport == clientconfig.Stdio {
		argv := append([]string{e.Command}, e.Args...)
		checkPrivilege(argv, add)
		checkPinning(argv, add)
		checkFlags(argv, add)
	} else {
		checkURL(e.URL, add)
	}
	checkSecrets(e, add)
	for _, k := range sortedKeys(e.Flags) {
		v := e.Flags[k]
		switch k {
		case "autoApprove", "alwaysAllow":
			if v != "[]" && v != "" && v != "null" {
				add("auto-approve", detect.Low, "/"+k, "the client calls these tools without asking: "+v, v)
			}
		case "trust":
			if v == "true" {
				add("auto-approve", detect.Medium, "/trust", "every tool call of this server runs without confirmation (trust: true)", v)
			}
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type adder func(rule string, sev detect.Severity, ptr, msg, evidence string)

func argPtr(i int) string {
	if i == 0 {
		return "/command"
	}
	return fmt.Sprintf("/args/%d", i-1)
}

func base(cmd string) string {
	b := strings.ToLower(filepath.Base(strings.ReplaceAll(cmd, `\`, "/")))
	return strings.TrimSuffix(strings.TrimSuffix(b, ".exe"), ".cmd")
}

func checkPrivilege(argv []string, add adder) {
	for i, a := range argv {
		switch base(a) {
		case "sudo", "doas", "pkexec", "su", "runas":
			if i == 0 || i == 1 {
				add("privileged", detect.High, argPtr(i), "the server is started with "+base(a)+": it runs as root", a)
			}
		}
	}
	if len(argv) < 2 {
		return
	}
	var docker bool
	for i := 0; i < len(argv) && i < 3; i++ {
		switch base(argv[i]) {
		case "docker", "podman", "nerdctl":
			docker = true
		}
	}
	if !docker {
		return
	}
	for i, a := range argv {
		la := strings.ToLower(a)
		next := ""
		if i+1 < len(argv) {
			next = strings.ToLower(argv[i+1])
		}
		switch {
		case la == "--privileged":
			add("privileged", detect.Critical, argPtr(i), "the container runs privileged: it controls the host", a)
		case (la == "-u" || la == "--user") && (next == "0" || next == "root" || strings.HasPrefix(next, "0:") || strings.HasPrefix(next, "root:")),
			la == "--user=0" || la == "--user=root":
			add("privileged", detect.High, argPtr(i), "the container runs as root", a+" "+next)
		case strings.Contains(la, "docker.sock"):
			add("privileged", detect.Critical, argPtr(i), "the container gets the Docker socket: it can start privileged containers on the host", a)
		case (la == "-v" || la == "--volume" || la == "--mount") && (strings.HasPrefix(next, "/:") || strings.Contains(next, "source=/,") || strings.HasPrefix(next, "/etc:")):
			add("privileged", detect.High, argPtr(i+1), "the container mounts the host's root or /etc", argv[i+1])
		case (la == "--pid" || la == "--network" || la == "--net" || la == "--ipc") && next == "host",
			la == "--pid=host" || la == "--network=host" || la == "--net=host":
			add("privileged", detect.Medium, argPtr(i), "the container shares the host's "+strings.TrimPrefix(strings.SplitN(la, "=", 2)[0], "--")+" namespace", a+" "+next)
		case la == "--cap-add" && (next == "all" || next == "sys_admin" || next == "sys_ptrace"), strings.HasPrefix(la, "--cap-add=all"), strings.HasPrefix(la, "--cap-add=sys_admin"):
			add("privileged", detect.High, argPtr(i), "the container gets powerful capabilities", a+" "+next)
		}
	}
}

var (
	npmVersioned  = regexp.MustCompile(`^(@[^/@]+/)?[^/@]+@[0-9v]`) // pkg@1.2.3, @scope/pkg@1.2.3
	pyVersioned   = regexp.MustCompile(`==|@[0-9v]|~=`)
	imageDigest   = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
	imageWithTag  = regexp.MustCompile(`:[\w][\w.-]{0,127}$`)
	latestVersion = regexp.MustCompile(`@(latest|next|beta|canary|\*|x)$`)
)

func checkPinning(argv []string, add adder) {
	cmd := base(argv[0])
	firstPositional := func(from int, valueFlags map[string]bool) int {
		for i := from; i < len(argv); i++ {
			a := argv[i]
			if strings.HasPrefix(a, "-") {
				if valueFlags[a] {
					i++
				}
				continue
			}
			return i
		}
		return -1
	}
	switch {
	case cmd == "npx" || cmd == "bunx" || (cmd == "pnpm" || cmd == "yarn") && len(argv) > 1 && argv[1] == "dlx" || cmd == "pnpx":
		from := 1
		if cmd == "pnpm" || cmd == "yarn" {
			from = 2
		}
		// npx -p pkg cmd / --package=pkg
		for i := from; i < len(argv); i++ {
			if (argv[i] == "-p" || argv[i] == "--package") && i+1 < len(argv) {
				checkNPM(argv[i+1], i+1, add)
				return
			}
			if v, ok := strings.CutPrefix(argv[i], "--package="); ok {
				checkNPM(v, i, add)
				return
			}
		}
		if i := firstPositional(from, map[string]bool{"--registry": true, "--cache": true, "-c": true, "--call": true}); i >= 0 {
			checkNPM(argv[i], i, add)
		}
	case cmd == "uvx" || cmd == "uv" && len(argv) > 2 && argv[1] == "tool" && argv[2] == "run" || cmd == "pipx" && len(argv) > 1 && argv[1] == "run":
		from := 1
		if cmd == "uv" {
			from = 3
		} else if cmd == "pipx" {
			from = 2
		}
		for i := from; i < len(argv); i++ {
			if argv[i] == "--from" && i+1 < len(argv) {
				if !pyVersioned.MatchString(argv[i+1]) {
					add("unpinned-package", detect.Medium, argPtr(i+1), "the Python package is not pinned to a version", argv[i+1])
				}
				return
			}
		}
		if i := firstPositional(from, map[string]bool{"--python": true, "--with": true, "--index-url": true, "-p": true}); i >= 0 && !pyVersioned.MatchString(argv[i]) && !strings.ContainsAny(argv[i], "/\\") {
			add("unpinned-package", detect.Medium, argPtr(i), "the Python package is not pinned to a version (pkg==1.2.3)", argv[i])
		}
	case cmd == "docker" || cmd == "podman" || cmd == "nerdctl":
		if len(argv) < 2 || argv[1] != "run" {
			return
		}
		vf := map[string]bool{"-e": true, "--env": true, "-v": true, "--volume": true, "-u": true, "--user": true, "--name": true, "--network": true,
			"--net": true, "-p": true, "--publish": true, "-w": true, "--workdir": true, "--mount": true, "--env-file": true, "--entrypoint": true,
			"-l": true, "--label": true, "--cap-add": true, "--cap-drop": true, "--pid": true, "--platform": true, "-m": true, "--memory": true}
		if i := firstPositional(2, vf); i >= 0 {
			img := argv[i]
			switch {
			case imageDigest.MatchString(img):
			case imageWithTag.MatchString(img[strings.LastIndex(img, "/")+1:]) && !strings.HasSuffix(img, ":latest"):
				add("unpinned-package", detect.Low, argPtr(i), "the image is pinned by a tag, which can be moved; pin it by digest (image@sha256:...)", img)
			default:
				add("unpinned-package", detect.Medium, argPtr(i), "the image is not pinned (no tag or :latest)", img)
			}
		}
	}
}

func checkNPM(pkg string, i int, add adder) {
	if strings.HasPrefix(pkg, ".") || strings.HasPrefix(pkg, "/") || strings.Contains(pkg, "://") || strings.HasPrefix(pkg, "file:") {
		return // a local path or URL, not a registry package
	}
	if !npmVersioned.MatchString(pkg) || latestVersion.MatchString(pkg) {
		add("unpinned-package", detect.Medium, argPtr(i), "the npm package is not pinned to a version (npx -y pkg@1.2.3)", pkg)
	}
}

var dangerousFlags = []struct {
	re  *regexp.Regexp
	sev detect.Severity
	why string
}{
	{regexp.MustCompile(`^--?(dangerously[-_]\w[\w-]*|yolo|no-sandbox|disable-sandbox|unsafe[\w-]*|allow-all[\w-]*|allow-dangerous[\w-]*)(=.*)?$`), detect.High, "turns off a safety check"},
	{regexp.MustCompile(`^--?(disable|no|skip)-?(auth|authentication|tls-verify|verify|ssl-verify|confirm|confirmation)s?(=.*)?$`), detect.High, "turns off authentication, verification or confirmation"},
	{regexp.MustCompile(`^--?(insecure|allow-insecure|trust-all|ignore-certificate-errors|unrestricted|allow-write-all|read-write-all)(=.*)?$`), detect.Medium, "weakens a security setting"},
	{regexp.MustCompile(`^--?access[-_]mode[= ]?unrestricted$`), detect.High, "gives the server unrestricted access"},
}

func checkFlags(argv []string, add adder) {
	for i, a := range argv[1:] {
		la := strings.ToLower(a)
		for _, d := range dangerousFlags {
			if d.re.MatchString(la) {
				add("dangerous-flag", d.sev, argPtr(i+1), fmt.Sprintf("the flag %s %s", a, d.why), a)
				break
			}
		}
	}
	// A filesystem server given the whole disk or the home directory.
	fsServer := false
	for _, a := range argv {
		if strings.Contains(a, "server-filesystem") || strings.Contains(a, "mcp-server-filesystem") {
			fsServer = true
		}
	}
	if !fsServer {
		return
	}
	for i, a := range argv[1:] {
		switch strings.TrimRight(a, "/\\") {
		case "", "~", "$HOME", "${HOME}", "C:", "/home", "/Users", "/root", "%USERPROFILE%":
			if a == "" {
				continue
			}
			add("dangerous-flag", detect.High, argPtr(i+1), "the filesystem server may read and write the whole disk or home directory", a)
		}
	}
}

func isLoopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func checkURL(raw string, add adder) {
	u, err := url.Parse(raw)
	if err != nil {
		add("dangerous-flag", detect.Medium, "/url", "the URL does not parse: "+err.Error(), raw)
		return
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		add("plaintext-http", detect.High, "/url", "the server is reached over plain HTTP off this machine: calls and credentials travel unencrypted", raw)
	}
	if u.User != nil {
		add("secret-in-config", detect.High, "/url", "the URL carries credentials", detect.Mask(u.User.String()))
	}
	for k, vs := range u.Query() {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "key") || strings.Contains(lk, "token") || strings.Contains(lk, "secret") || strings.Contains(lk, "password") || lk == "sig" {
			for _, v := range vs {
				if len(v) >= 8 && !isReference(v) {
					add("secret-in-config", detect.High, "/url", "the URL carries a credential in its query ("+k+")", detect.Mask(v))
				}
			}
		}
	}
}

// isReference says whether a value names a secret instead of holding it.
func isReference(v string) bool {
	v = strings.TrimSpace(v)
	return strings.HasPrefix(v, "${") || strings.HasPrefix(v, "$") && !strings.Contains(v, " ") && len(v) > 1 ||
		strings.HasPrefix(v, "%") && strings.HasSuffix(v, "%") || strings.HasPrefix(v, "{{") || strings.HasPrefix(v, "op://") ||
		strings.HasPrefix(v, "env:") || strings.HasPrefix(v, "Bearer ${") || strings.HasPrefix(v, "Bearer $")
}

var secretName = regexp.MustCompile(`(?i)(token|secret|passw(or)?d|passwd|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credential|auth|pat$|_key$)`)

func checkSecrets(e clientconfig.Entry, add adder) {
	seen := map[string]bool{}
	report := func(ptr, value, why string) {
		if seen[ptr] {
			return
		}
		seen[ptr] = true
		add("secret-in-config", detect.High, ptr, why, detect.Mask(value))
	}
	scan := func(ptr, name, value string) {
		if value == "" || isReference(value) {
			return
		}
		for _, f := range secrets.Default.Scan(value, ptr) {
			if f.Severity >= detect.Medium && f.Rule != "high-entropy-value" {
				report(ptr, value, "the configuration holds "+strings.TrimPrefix(f.Message, "the text contains "))
				return
			}
		}
		if name != "" && secretName.MatchString(name) && len(value) >= 8 && !strings.ContainsAny(value, " /") {
			report(ptr, value, "the configuration holds the value of "+name+" in clear")
		}
	}
	for _, k := range e.EnvNames() {
		scan(detect.Pointer("env", k), k, e.Env[k])
	}
	for _, k := range sortedKeys(e.Headers) {
		v := e.Headers[k]
		scan(detect.Pointer("headers", k), k, strings.TrimPrefix(strings.TrimPrefix(v, "Bearer "), "bearer "))
	}
	for i, a := range e.Args {
		name := ""
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "-") {
			name, a = strings.TrimLeft(k, "-"), v
		} else if i > 0 && strings.HasPrefix(e.Args[i-1], "-") {
			name = strings.TrimLeft(e.Args[i-1], "-")
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		scan(argPtr(i+1), name, a)
	}
}
