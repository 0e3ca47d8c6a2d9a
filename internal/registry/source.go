package registry

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/portcullis-mcp/portcullis/internal/config"
)

// Package is what a package runner (npx, uvx, docker run, ...) starts.
type Package struct {
	Runner  string // npx, bunx, pnpm dlx, yarn dlx, npm exec, uvx, pipx run, docker run, podman run
	Spec    string // as written: @scope/name@1.2.3, name==1.2.3, image@sha256:...
	Pinned  bool   // an exact version (or image digest)
	Problem string // why it is not pinned, or what is weak about the pin
}

var (
	semverRE    = regexp.MustCompile(`^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	pyExactRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?(==|@)v?\d+(\.\d+)*([A-Za-z0-9.+-]*)$`)
	digestRE    = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
	gitCommitRE = regexp.MustCompile(`@[0-9a-f]{40}$`)
)

// npm runners' options that take a value (the package for -p/--package).
var npmValueFlags = []string{"-p", "--package", "-c", "--call", "--registry", "--cache", "--userconfig", "-w", "--workspace"}

// PackageOf returns the package a command line runs, when its command is a package runner.
func PackageOf(command string, args []string) (Package, bool) {
	base := strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(filepath.Base(command)), ".cmd"), ".exe")
	switch base {
	case "npx", "bunx":
		return npmPackage(base, args), true
	case "pnpm", "yarn", "npm", "bun":
		if len(args) > 0 && (args[0] == "dlx" || args[0] == "exec" || args[0] == "x") {
			return npmPackage(base+" "+args[0], args[1:]), true
		}
	case "uvx":
		return pyPackage(base, args, "--from"), true
	case "uv":
		if len(args) > 1 && args[0] == "tool" && args[1] == "run" {
			return pyPackage("uv tool run", args[2:], "--from"), true
		}
	case "pipx":
		if len(args) > 0 && args[0] == "run" {
			return pyPackage("pipx run", args[1:], "--spec"), true
		}
	case "docker", "podman":
		if len(args) > 0 && args[0] == "run" {
			return imagePackage(base+" run", args[1:]), true
		}
		if len(args) > 1 && args[0] == "container" && args[1] == "run" {
			return imagePackage(base+" run", args[2:]), true
		}
	}
	return Package{}, false
}

func npmPackage(runner string, args []string) Package {
	p := Package{Runner: runner}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if v, ok := strings.CutPrefix(a, "--package="); ok {
			p.Spec = v
			break
		}
		if slices.Contains(npmValueFlags, a) {
			if (a == "-p" || a == "--package") && i+1 < len(args) {
				p.Spec = args[i+1]
				break
			}
			i++
			continue
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		p.Spec = a
		break
	}
	if p.Spec == "" {
		p.Problem = "no package named"
		return p
	}
	name, version := splitNPM(p.Spec)
	switch {
	case strings.Contains(p.Spec, "://") || strings.HasPrefix(p.Spec, "github:") || strings.HasPrefix(p.Spec, "git+") || strings.HasPrefix(p.Spec, "file:"):
		p.Problem = fmt.Sprintf("%s is not a registry package with a version", p.Spec)
	case version == "":
		p.Problem = fmt.Sprintf("%s has no version: whatever is newest is run (write %s@X.Y.Z)", name, name)
	case version == "latest" || version == "next":
		p.Problem = fmt.Sprintf("%s@%s is a moving tag (write an exact version)", name, version)
	case !semverRE.MatchString(version):
		p.Problem = fmt.Sprintf("%s@%s is a range, not an exact version", name, version)
	default:
		p.Pinned = true
	}
	return p
}

// splitNPM splits name@version, minding scoped names (@scope/name@version).
func splitNPM(spec string) (name, version string) {
	at := strings.LastIndex(spec, "@")
	if at <= 0 {
		return spec, ""
	}
	return spec[:at], spec[at+1:]
}

func pyPackage(runner string, args []string, specFlag string) Package {
	p := Package{Runner: runner}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if v, ok := strings.CutPrefix(a, specFlag+"="); ok {
			p.Spec = v
			break
		}
		if a == specFlag && i+1 < len(args) {
			p.Spec = args[i+1]
			break
		}
		if strings.HasPrefix(a, "-") {
			if !strings.Contains(a, "=") && (a == "--python" || a == "-p" || a == "--with" || a == "--index-url" || a == "--index") {
				i++
			}
			continue
		}
		p.Spec = a
		break
	}
	switch {
	case p.Spec == "":
		p.Problem = "no package named"
	case strings.HasPrefix(p.Spec, "git+"):
		if gitCommitRE.MatchString(p.Spec) {
			p.Pinned = true
		} else {
			p.Problem = fmt.Sprintf("%s is not pinned to a commit", p.Spec)
		}
	case pyExactRE.MatchString(p.Spec):
		p.Pinned = true
	case strings.HasSuffix(p.Spec, "@latest"):
		p.Problem = fmt.Sprintf("%s is a moving tag (write name==X.Y.Z)", p.Spec)
	default:
		p.Problem = fmt.Sprintf("%s has no exact version: whatever is newest is run (write %s==X.Y.Z)", p.Spec, p.Spec)
	}
	return p
}

// docker run options that take no value.
var dockerBoolFlags = []string{"-i", "-t", "-it", "-ti", "-d", "-q", "-P", "--rm", "--init", "--read-only", "--privileged",
	"--interactive", "--tty", "--detach", "--quiet", "--publish-all", "--no-healthcheck", "--oom-kill-disable", "--sig-proxy"}

func imagePackage(runner string, args []string) Package {
	p := Package{Runner: runner}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			if !strings.Contains(a, "=") && !slices.Contains(dockerBoolFlags, a) {
				i++ // its value
			}
			continue
		}
		p.Spec = a
		break
	}
	if p.Spec == "" {
		p.Problem = "no image named"
		return p
	}
	switch {
	case digestRE.MatchString(p.Spec):
		p.Pinned = true
	default:
		ref := p.Spec
		if i := strings.LastIndex(ref, "/"); i >= 0 {
			ref = ref[i+1:]
		}
		_, tag, ok := strings.Cut(ref, ":")
		switch {
		case !ok:
			p.Problem = fmt.Sprintf("image %s has no tag or digest: latest is run (write %s@sha256:...)", p.Spec, p.Spec)
		case tag == "latest":
			p.Problem = fmt.Sprintf("image %s is a moving tag (write a digest: @sha256:...)", p.Spec)
		default:
			p.Pinned = true
			p.Problem = fmt.Sprintf("image %s is pinned by tag, which its publisher can move; a digest (@sha256:...) is exact", p.Spec)
		}
	}
	return p
}

// Options are the registry's settings.
type Options struct {
	Enforce       bool // refuse servers not in the registry, or whose source differs
	RequirePinned bool // refuse unpinned packages and local executables without sha256
}

// Finding is what the registry says of a configured server.
type Finding struct {
	Server  string
	Rule    string // not-registered, source-mismatch, unpinned-package, unpinned-binary, plain-http, imitation
	Message string
	Refused bool // the server may not be fronted
}

func (f Finding) String() string {
	verdict := "finding"
	if f.Refused {
		verdict = "refused"
	}
	return fmt.Sprintf("server %q %s (%s): %s", f.Server, verdict, f.Rule, f.Message)
}

// Check decides on the servers of a configuration. r may be nil (no registry: only
// findings on the sources themselves). Findings with Refused set must stop the gateway.
func Check(r *Registry, servers []config.Server, o Options) []Finding {
	var out []Finding
	var names []string
	for _, s := range servers {
		names = append(names, s.Name)
	}
	for _, s := range servers {
		var e *Entry
		if r != nil {
			var ok bool
			e, ok = r.Lookup(s.Name)
			if !ok {
				msg := fmt.Sprintf("not in the registry %s", r.File)
				for _, n := range r.Names() {
					if Imitates(s.Name, n) {
						msg += fmt.Sprintf("; its name imitates the registered server %q", n)
						break
					}
				}
				out = append(out, Finding{Server: s.Name, Rule: "not-registered", Message: msg, Refused: o.Enforce})
			} else if d := mismatch(e, &s); d != "" {
				out = append(out, Finding{Server: s.Name, Rule: "source-mismatch", Message: d + fmt.Sprintf(" (registry entry at %s:%d, owner %s)", r.File, e.Line, e.Owner), Refused: o.Enforce})
			}
		}
		for _, n := range names {
			if Imitates(s.Name, n) && (r == nil || !slices.Contains(r.Names(), s.Name)) {
				out = append(out, Finding{Server: s.Name, Rule: "imitation", Message: fmt.Sprintf("its name imitates server %q", n)})
				break
			}
		}
		switch {
		case s.Command != "":
			if p, ok := PackageOf(s.Command, s.Args); ok {
				if !p.Pinned {
					out = append(out, Finding{Server: s.Name, Rule: "unpinned-package", Message: fmt.Sprintf("%s: %s", p.Runner, p.Problem), Refused: o.RequirePinned})
				} else if p.Problem != "" {
					out = append(out, Finding{Server: s.Name, Rule: "weak-pin", Message: p.Problem})
				}
			} else if e == nil || e.SHA256 == "" {
				msg := fmt.Sprintf("the executable %s has no sha256 in the registry, so a replaced binary would run", s.Command)
				out = append(out, Finding{Server: s.Name, Rule: "unpinned-binary", Message: msg, Refused: o.RequirePinned})
			}
		case s.URL != "":
			if u, err := url.Parse(s.URL); err == nil && u.Scheme == "http" && !Loopback(u.Hostname()) {
				out = append(out, Finding{Server: s.Name, Rule: "plain-http", Message: fmt.Sprintf("%s is plain HTTP off loopback: anyone on the path can read and change the calls", s.URL), Refused: o.Enforce})
			}
		}
	}
	return out
}

// mismatch says how a configured server differs from its entry ("" when it matches).
func mismatch(e *Entry, s *config.Server) string {
	switch {
	case e.URL != "":
		if s.URL == "" {
			return fmt.Sprintf("the registry has a remote server at %s, the configuration runs the command %s", e.URL, s.Command)
		}
		if Canonical(e.URL) != Canonical(s.URL) {
			return fmt.Sprintf("the registry has url %s, the configuration %s", e.URL, s.URL)
		}
	default:
		if s.Command == "" {
			return fmt.Sprintf("the registry has the command %s, the configuration a url %s", e.Command, s.URL)
		}
		if e.Command != s.Command {
			return fmt.Sprintf("the registry has command %q, the configuration %q", e.Command, s.Command)
		}
		if !slices.Equal(e.Args, s.Args) {
			return fmt.Sprintf("the registry has args %q, the configuration %q", e.Args, s.Args)
		}
	}
	return ""
}
