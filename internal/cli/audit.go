package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/config"
	auditguard "github.com/portcullis-mcp/portcullis/internal/guards/audit"
)

func init() {
	register("audit", "audit verify|tail|search|export [--file PATH | --config FILE] [filters] [--json]", auditCmd)
}

const auditUsage = `Usage:
  portcullis audit verify [--file PATH | --config FILE] [--json]
      walk the hash chain of every file of the trail; name the first event altered,
      removed or reordered (exit 1)
  portcullis audit tail   [-n N] [-f] [filters] [--json]
  portcullis audit search [filters] [--json]
  portcullis audit export [filters] [--format json|cef|ocsf]

Filters: --since T --until T (RFC 3339, or a duration back from now: 1h),
  --principal P --server S --tool T --method M --decision allowed|denied|failed --code PC2001W
  --kind request|response|alert|system|security
The trail is guards.audit.file of --config (default portcullis.yaml), or --file; when
guards.audit writes only to the store (its default sink, and the default when the
configuration has no guards.audit), or with --store, the commands read the store of
--config (every chain, or --chain NAME).
`

type auditFlags struct {
	fs                                              *flag.FlagSet
	file, cfg                                       *string
	useStore                                        *bool
	chain                                           *string
	jsonOut                                         *bool
	since, until                                    *string
	principal, server, tool, method, decision, code *string
	kind                                            *string
	n                                               *int
	follow                                          *bool
	format                                          *string
	sinceT, untilT                                  time.Time
}

func newAuditFlags(name string, stderr io.Writer) *auditFlags {
	fs := flag.NewFlagSet("audit "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, auditUsage) }
	a := &auditFlags{fs: fs}
	a.file = fs.String("file", "", "the audit trail (its live file; rotated files are found next to it)")
	a.cfg = fs.String("config", "portcullis.yaml", "configuration file naming guards.audit.file")
	a.jsonOut = fs.Bool("json", false, "JSON output")
	a.useStore = fs.Bool("store", false, "read the trail from the store of --config")
	a.chain = fs.String("chain", "", "with the store: only this chain (default: every chain)")
	if name != "verify" {
		a.since = fs.String("since", "", "events at or after this time (RFC 3339) or this long ago (1h)")
		a.until = fs.String("until", "", "events before this time or this long ago")
		a.principal = fs.String("principal", "", "events of this principal")
		a.server = fs.String("server", "", "events of this server")
		a.tool = fs.String("tool", "", "events of this tool, prompt or resource")
		a.method = fs.String("method", "", "events of this method")
		a.decision = fs.String("decision", "", "allowed, denied or failed")
		a.code = fs.String("code", "", "events with this code")
		a.kind = fs.String("kind", "", "events of this kind: request, response, alert, system, security")
	}
	if name == "tail" {
		a.n = fs.Int("n", 20, "how many of the last events")
		a.follow = fs.Bool("f", false, "keep printing events as they are recorded")
	}
	if name == "export" {
		a.format = fs.String("format", "json", "json (the stored lines), cef or ocsf")
	}
	return a
}

func (a *auditFlags) parse(args []string) error {
	if err := a.fs.Parse(args); err != nil {
		return err
	}
	if a.fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", a.fs.Args())
	}
	var err error
	if a.since != nil {
		if a.sinceT, err = parseWhen(*a.since); err != nil {
			return fmt.Errorf("--since: %w", err)
		}
		if a.untilT, err = parseWhen(*a.until); err != nil {
			return fmt.Errorf("--until: %w", err)
		}
	}
	if a.decision != nil && *a.decision != "" && *a.decision != trail.Allowed && *a.decision != trail.Denied && *a.decision != trail.Failed {
		return fmt.Errorf("--decision %q: want allowed, denied or failed", *a.decision)
	}
	return nil
}

func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a time (RFC 3339) nor a duration", s)
}

// path finds the trail: --file, or guards.audit.file of the configuration. It returns the
// configuration instead (and no path) when the trail is to be read from the store.
func (a *auditFlags) path() (string, *config.Config, error) {
	if *a.file != "" {
		return *a.file, nil, nil
	}
	cfg, err := config.Load(*a.cfg)
	if err != nil {
		return "", nil, fmt.Errorf("%w (or name the trail with --file)", err)
	}
	if *a.useStore {
		return "", cfg, nil
	}
	sec, ok := cfg.GuardSections()[auditguard.Name]
	if !ok {
		return "", cfg, nil // audit is on by default, into the store
	}
	if sec.Off() {
		return "", nil, fmt.Errorf("%s: guards.audit is off (name a trail with --file, or read what the store holds with --store)", cfg.File)
	}
	var c auditguard.Config
	if err := sec.Decode(&c); err != nil {
		return "", nil, err
	}
	if c.File == "" {
		if c.Syslog == nil && c.Webhook == nil || c.Store != nil {
			return "", cfg, nil // the store is the trail
		}
		return "", nil, fmt.Errorf("%s: guards.audit has no file and no store (syslog and webhook copies are read where they go)", cfg.File)
	}
	return c.File, nil, nil
}

func (a *auditFlags) match(e *trail.Event) bool {
	if a.principal == nil {
		return true
	}
	eq := func(flag *string, v string) bool { return *flag == "" || *flag == v }
	return eq(a.principal, e.Principal) && eq(a.server, e.Server) && eq(a.tool, e.Tool) && eq(a.method, e.Method) &&
		eq(a.decision, e.Decision) && eq(a.code, e.Code) && eq(a.kind, e.Kind) &&
		(a.sinceT.IsZero() || !e.Time.Before(a.sinceT)) && (a.untilT.IsZero() || e.Time.Before(a.untilT))
}

func auditCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, auditUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub := args[0]
	switch sub {
	case "verify", "tail", "search", "export":
	default:
		fmt.Fprintf(stderr, "portcullis audit: unknown subcommand %q\n\n%s", sub, auditUsage)
		return 2
	}
	a := newAuditFlags(sub, stderr)
	if err := a.parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "portcullis audit %s: %v\n", sub, err)
		return 2
	}
	path, cfg, err := a.path()
	if err != nil {
		fmt.Fprintf(stderr, "portcullis audit %s: %v\n", sub, err)
		return 1
	}
	if cfg != nil {
		return auditStore(a, sub, cfg, stdout, stderr)
	}
	files, err := trail.Files(path)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis audit %s: %v\n", sub, err)
		return 1
	}
	switch sub {
	case "verify":
		return auditVerify(a, files, stdout, stderr)
	case "export":
		format, err := trail.FormatByName(*a.format)
		if err != nil {
			fmt.Fprintf(stderr, "portcullis audit export: %v\n", err)
			return 2
		}
		return auditEach(a, files, stdout, stderr, func(w *bufio.Writer, e *trail.Event, raw []byte) {
			if *a.format == "json" || *a.format == "" {
				w.Write(raw)
			} else {
				w.Write(format(nil, e))
			}
			w.WriteByte('\n')
		})
	case "search":
		return auditEach(a, files, stdout, stderr, a.print)
	case "tail":
		return auditTail(a, path, files, stdout, stderr)
	}
	return 2
}

func auditVerify(a *auditFlags, files []string, stdout, stderr io.Writer) int {
	v, p, err := trail.VerifyFiles(files)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis audit verify: %v\n", err)
		return 1
	}
	if *a.jsonOut {
		out := map[string]any{"ok": p == nil, "files": files, "events": v.Count()}
		if v.Count() > 0 {
			out["first_seq"], out["last_seq"], out["last_hash"] = v.First, v.Last().Seq, v.Last().Hash
		}
		if p != nil {
			out["problem"] = map[string]any{"kind": p.Kind, "file": p.File, "line": p.Line, "seq": p.Seq, "message": p.Msg}
		}
		json.NewEncoder(stdout).Encode(out)
	} else if p == nil {
		fmt.Fprintf(stdout, "ok: %d events in %d files verify", v.Count(), len(files))
		if v.Count() > 0 {
			fmt.Fprintf(stdout, " (events %d to %d; last hash %s)", v.First, v.Last().Seq, v.Last().Hash)
		}
		fmt.Fprintln(stdout)
		if v.Count() > 0 && v.FirstPrev != trail.Genesis {
			fmt.Fprintf(stdout, "note: the trail starts at event %d; the events before it are not in these files\n", v.First)
		}
	} else {
		fmt.Fprintf(stdout, "FAILED after %d good events: %v\n", v.Count(), p)
	}
	if p != nil {
		return 1
	}
	return 0
}

func auditEach(a *auditFlags, files []string, stdout, stderr io.Writer, fn func(*bufio.Writer, *trail.Event, []byte)) int {
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	bad := 0
	err := trail.Walk(files, func(en trail.Entry) error {
		if len(bytes.TrimSpace(en.Raw)) == 0 {
			return nil
		}
		e, err := trail.ParseLine(en.Raw)
		if err != nil {
			bad++
			return nil
		}
		if a.match(e) {
			fn(w, e, en.Raw)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "portcullis audit: %v\n", err)
		return 1
	}
	if bad > 0 {
		fmt.Fprintf(stderr, "portcullis audit: %d lines are not events (run audit verify)\n", bad)
	}
	return 0
}

// print writes one event: its stored line with --json, else a line for people.
func (a *auditFlags) print(w *bufio.Writer, e *trail.Event, raw []byte) {
	if *a.jsonOut {
		w.Write(raw)
		w.WriteByte('\n')
		return
	}
	target := e.Server
	if e.Tool != "" {
		target += "/" + e.Tool
	}
	fmt.Fprintf(w, "%s %6d %s %-8s %-9s %-16s %-24s %-28s", e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), e.Seq, e.Code,
		e.Kind, dash(e.Decision), dash(e.Principal), dash(e.Method), dash(target))
	if e.LatencyMicros > 0 {
		fmt.Fprintf(w, " %s", e.Latency().Round(time.Microsecond))
	}
	if e.Guard != "" {
		fmt.Fprintf(w, " guard=%s", e.Guard)
	}
	if e.ErrorCode != 0 {
		fmt.Fprintf(w, " code=%d", e.ErrorCode)
	}
	if e.Incident != "" {
		fmt.Fprintf(w, " incident=%s", e.Incident)
	}
	if len(e.Findings) > 0 {
		var fs []string
		for _, f := range e.Findings {
			fs = append(fs, f.Severity+":"+f.Detector)
		}
		fmt.Fprintf(w, " findings=%s", strings.Join(fs, ","))
	}
	if e.Kind == trail.KindSystem && e.Message != "" {
		fmt.Fprintf(w, " %q", e.Message)
	}
	w.WriteByte('\n')
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func auditTail(a *auditFlags, path string, files []string, stdout, stderr io.Writer) int {
	var last []*trail.Event
	var raws [][]byte
	trail.Walk(files, func(en trail.Entry) error {
		e, err := trail.ParseLine(en.Raw)
		if err != nil || !a.match(e) {
			return nil
		}
		last = append(last, e)
		raws = append(raws, bytes.Clone(en.Raw))
		if len(last) > *a.n {
			last, raws = last[1:], raws[1:]
		}
		return nil
	})
	w := bufio.NewWriter(stdout)
	for i, e := range last {
		a.print(w, e, raws[i])
	}
	w.Flush()
	if !*a.follow {
		return 0
	}
	// Follow the live file: print what is appended; start again from the beginning of a
	// new file when it was rotated or replaced.
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "portcullis audit tail: %v\n", err)
		return 1
	}
	f.Seek(0, io.SeekEnd)
	r := bufio.NewReader(f)
	var partial []byte
	for {
		line, err := r.ReadBytes('\n')
		partial = append(partial, line...)
		if err == nil {
			if e, perr := trail.ParseLine(bytes.TrimSpace(partial)); perr == nil && a.match(e) {
				a.print(w, e, bytes.TrimSpace(partial))
				w.Flush()
			}
			partial = partial[:0]
			continue
		}
		time.Sleep(250 * time.Millisecond)
		cur, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && !os.SameFile(cur, now) {
			if nf, err := os.Open(path); err == nil {
				f.Close()
				f = nf
				r.Reset(f)
				partial = partial[:0]
			}
		}
	}
}
