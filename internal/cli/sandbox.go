package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/config"
	auditguard "github.com/portcullis-mcp/portcullis/internal/guards/audit"
	"github.com/portcullis-mcp/portcullis/internal/sandbox"
)

func init() {
	hidden[sandbox.LauncherArg] = sandbox.Main
	register("sandbox", "sandbox check [--config FILE]   which sandbox protections this kernel supports", runSandbox)
}

func runSandbox(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: portcullis sandbox check [--config FILE]")
		return 2
	}
	fs := flag.NewFlagSet("sandbox check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "also say, for each local server of this configuration, whether it can start")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	sup := sandbox.Probe()
	for _, st := range sup.Statuses {
		mark := "ok     "
		if !st.Available {
			mark = "MISSING"
		}
		fmt.Fprintf(stdout, "%s %-10s %s\n", mark, st.Name, st.Detail)
	}
	code := 0
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		for _, s := range cfg.Servers {
			if s.URL != "" {
				continue
			}
			switch missing := sup.Missing(s.Sandbox.Required()); {
			case !s.Sandbox.On():
				fmt.Fprintf(stdout, "server %s: sandbox disabled (sandbox.enabled: false)\n", s.Name)
			case len(missing) > 0:
				code = 1
				fmt.Fprintf(stdout, "server %s: will NOT start: requires", s.Name)
				for _, m := range missing {
					fmt.Fprintf(stdout, " %s", m.Name)
				}
				fmt.Fprintln(stdout, " (remove them from sandbox.require to start it without)")
			default:
				fmt.Fprintf(stdout, "server %s: starts sandboxed\n", s.Name)
			}
		}
	}
	for _, st := range sup.Statuses {
		if !st.Available && *cfgPath == "" {
			code = 1
		}
	}
	return code
}

// sandboxExtra is what a sandbox grants besides the server's configuration: the scanner's
// canary directory and listener, and nothing for servers the gateway runs.
type sandboxExtra struct {
	readWrite []string
	forward   []sandbox.Forward
}

// sandboxWrap confines a local server as its configuration says (and extra).
func sandboxWrap(s config.Server, logger *slog.Logger, extra sandboxExtra) func(*exec.Cmd) error {
	sb := s.Sandbox
	if sb == nil {
		sb = &config.Sandbox{}
	}
	o := sandbox.Options{
		Name:      s.Name,
		ReadOnly:  sb.ReadOnly,
		ReadWrite: append(append([]string{}, sb.ReadWrite...), extra.readWrite...),
		Forward:   extra.forward,
		Limits: sandbox.Limits{
			Memory:    int64(orDefault(int64(sb.Memory), config.DefaultSandboxMemory)),
			CPU:       int64(orDefault(int64(sb.CPU), int64(config.DefaultSandboxCPU)) / int64(time.Second)),
			Processes: orDefault(int64(sb.Processes), config.DefaultSandboxProcesses),
			Files:     orDefault(int64(sb.Files), config.DefaultSandboxFiles),
		},
		Require:     sb.Required(),
		Wasm:        sb.Wasm,
		WasmTimeout: sb.Timeout,
		UID:         sb.UID,
		Env:         s.Env,
		Logger:      logger,
		Audit:       auditRecorder,
	}
	var proxyErr error
	if len(sb.Egress) > 0 {
		p, err := sandbox.SharedProxy(sandbox.ProxyOptions{Server: s.Name, Hosts: sb.Egress, AllowPrefixes: sb.AllowPrefixes,
			Logger: logger, Audit: auditRecorder})
		o.Egress, proxyErr = p, err
	}
	wrap := sandbox.Wrap(o)
	return func(cmd *exec.Cmd) error {
		if proxyErr != nil {
			return errors.Join(errors.New("sandbox: the egress proxy did not start"), proxyErr)
		}
		return wrap(cmd)
	}
}

func auditRecorder() sandbox.Recorder {
	if b := auditguard.Current(); b != nil {
		return b
	}
	return nil
}

func orDefault(v, d int64) int64 {
	if v == 0 {
		return d
	}
	return v
}
