// Package detectresults is the guard that inspects what servers return before the model
// reads it: the results of tools/call, resources/read and prompts/get (seed risks 1 and 7).
// It finds secrets and tokens, prompt injection addressed to the model, hidden characters
// and terminal escapes, and canary tokens, and acts per kind: redact (secrets, by default:
// the value is replaced by [REDACTED:<rule>] and every other byte is kept), strip or make
// visible (hidden characters, by default stripped), alert (prompt injection, by default:
// logged and listed in the result's _meta), or block (the client gets an error instead of
// the result). A canary always blocks.
package detectresults

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/detect"
	"github.com/portcullis-mcp/portcullis/internal/detect/canary"
	"github.com/portcullis-mcp/portcullis/internal/detect/injection"
	"github.com/portcullis-mcp/portcullis/internal/detect/invisible"
	"github.com/portcullis-mcp/portcullis/internal/detect/pii"
	"github.com/portcullis-mcp/portcullis/internal/detect/secrets"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// Name is the guard's name in configuration and refusals.
const Name = "detect-results"

// MetaKey is the _meta key under which alerts are listed in a result.
const MetaKey = "io.portcullis/findings"

// Actions.
const (
	Redact  = "redact"
	Block   = "block"
	Alert   = "alert"
	Strip   = "strip"
	Visible = "visible"
	Off     = "off"
)

// Config is the guard's configuration section.
type Config struct {
	Secrets   string `yaml:"secrets"`   // redact (default) | block | alert | off
	Injection string `yaml:"injection"` // alert (default) | block | redact | off
	Invisible string `yaml:"invisible"` // strip (default) | visible | alert | off
	// InjectionModel: the learned model (internal/detect/injection, model.bin) also reads
	// each line; default true.
	InjectionModel *bool           `yaml:"injection_model"`
	PII            string          `yaml:"pii"`          // redact (default) | block | alert | off
	PIISeverity    detect.Severity `yaml:"pii_severity"` // personal data below is ignored (default medium: cards and IBANs; low adds e-mail addresses and phone numbers)
	MinSeverity    detect.Severity `yaml:"min_severity"` // findings below are ignored (default medium)
	Methods        []string        `yaml:"methods"`      // default tools/call, resources/read, prompts/get
	CanaryFile     string          `yaml:"canary_file"`  // canary tokens (default $PORTCULLIS_CANARY_FILE)
}

// Extra scans a string of a result; canary tokens plug in here. Its findings block.
type Extra func(value, pointer string) []detect.Finding

func init() {
	guard.Register(Name, true, func(cfg guard.Config, env guard.Env) (guard.Middleware, error) {
		var c Config
		if cfg != nil {
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
		}
		var extras []Extra
		path := c.CanaryFile
		if path == "" {
			path = os.Getenv(canary.EnvFile)
		}
		if path != "" {
			f, err := canary.Load(path)
			if err != nil {
				return nil, fmt.Errorf("canary_file: %w", err)
			}
			if s := canary.NewScanner(f); s != nil {
				extras = append(extras, s.Scan)
			}
		}
		g, err := Compile(c, extras, env.Logger)
		if err != nil {
			return nil, err
		}
		return g.Middleware(), nil
	})
}

// Guard is the configured guard.
type Guard struct {
	c       Config
	methods map[string]bool
	extras  []Extra
	secrets *secrets.Scanner
	inj     *injection.Detector
	log     *slog.Logger
}

func oneOf(field, v string, allowed ...string) (string, error) {
	if v == "" {
		return allowed[0], nil
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s: %q is not one of %s", field, v, strings.Join(allowed, ", "))
}

// Compile checks a configuration (filling defaults) and builds the guard.
func Compile(c Config, extras []Extra, logger *slog.Logger) (*Guard, error) {
	var err error
	if c.Secrets, err = oneOf("secrets", c.Secrets, Redact, Block, Alert, Off); err != nil {
		return nil, err
	}
	if c.Injection, err = oneOf("injection", c.Injection, Alert, Block, Redact, Off); err != nil {
		return nil, err
	}
	if c.Invisible, err = oneOf("invisible", c.Invisible, Strip, Visible, Alert, Off); err != nil {
		return nil, err
	}
	if c.PII, err = oneOf("pii", c.PII, Redact, Block, Alert, Off); err != nil {
		return nil, err
	}
	if c.MinSeverity == detect.Info {
		c.MinSeverity = detect.Medium
	}
	if c.PIISeverity == detect.Info {
		c.PIISeverity = detect.Medium
	}
	if len(c.Methods) == 0 {
		c.Methods = []string{"tools/call", "resources/read", "prompts/get"}
	}
	g := &Guard{c: c, methods: map[string]bool{}, extras: extras, secrets: secrets.Default, inj: injection.Default, log: logger}
	if c.InjectionModel != nil && !*c.InjectionModel {
		g.inj = injection.Default.WithModel(nil)
	}
	for _, m := range c.Methods {
		g.methods[m] = true
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.log = g.log.With("guard", Name)
	return g, nil
}

// The guard's detectors (secrets.Default, injection.Default) have their keywords in the
// process's shared automaton (detect.Shared): one pass finds both, and the poisoning
// detector of detect-listings uses the same tables. It is built on first use: a gateway
// that never scans does not pay for it.

// injection is g.inj.Scan.
func (g *Guard) injection(text, pointer string) []detect.Finding {
	norm := detect.Normalize(text)
	return g.inj.Findings(text, g.inj.Score(norm), pointer)
}

// Middleware returns the guard around next.
func (g *Guard) Middleware() guard.Middleware {
	return func(next guard.Handler) guard.Handler {
		return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*jsonrpc.Message, error) {
			m := c.Msg
			if c.Direction != guard.Inbound || !m.IsRequest() || !g.methods[m.Method] {
				return next.Handle(ctx, c)
			}
			resp, err := next.Handle(ctx, c)
			if err != nil || resp == nil || resp.Error != nil || len(resp.Result) == 0 {
				return resp, err
			}
			return g.decide(ctx, c, resp)
		})
	}
}

// decide inspects an answered call's result, records and logs the findings, and returns
// the result to forward or the refusal. (Apart from the middleware, so that the rest of
// the chain does not run on top of this frame.)
func (g *Guard) decide(ctx context.Context, c *guard.Call, resp *jsonrpc.Message) (*jsonrpc.Message, error) {
	m := c.Msg
	out, fs, block := g.Inspect(resp.Result)
	for _, f := range fs { // into the call's audit event, allowed or not
		trail.Report(ctx, trail.Finding{Detector: f.Detector, Rule: f.Rule, Severity: f.Severity.String(), Pointer: f.Pointer,
			In: "result", Evidence: f.Evidence, Message: f.Message})
	}
	for _, f := range fs {
		level, msg := slog.LevelWarn, "finding in result"
		if f.Severity == detect.Critical {
			level, msg = slog.LevelError, "ALERT: critical finding in result"
		}
		g.log.LogAttrs(ctx, level, msg, slog.String("upstream", c.Server), slog.String("method", m.Method),
			slog.String("tool", c.Name), slog.String("principal", c.Principal.ID), slog.String("detector", f.Detector),
			slog.String("rule", f.Rule), slog.String("severity", f.Severity.String()), slog.String("pointer", f.Pointer),
			slog.String("message", f.Message), slog.Bool("blocked", len(block) > 0))
	}
	if len(block) > 0 {
		return nil, Refusal(m.Method, c.Name, block)
	}
	if len(fs) == 0 {
		return resp, nil
	}
	nr := *resp
	nr.Result = out
	return &nr, nil
}

// Refusal is the error the client gets instead of a blocked result.
func Refusal(method, name string, fs []detect.Finding) *guard.Refusal {
	top := fs[0]
	for _, f := range fs[1:] {
		if f.Severity > top.Severity {
			top = f
		}
	}
	what := method
	if name != "" {
		what = fmt.Sprintf("%s of %q", method, name)
	}
	r := guard.Deny(Name, jsonrpc.CodeDenied, "the result of %s was withheld: %s (at %s)", what, top.Message, top.Pointer)
	r.Data = map[string]any{"findings": detect.Data(fs)}
	return r
}

// skipKeys hold binary or protocol values, never text for the model.
var skipKeys = map[string]bool{"blob": true, "data": true, "mimeType": true, "type": true}

// withPointer sets the JSON pointer of findings made without one.
func withPointer(fs []detect.Finding, pointer func() string) []detect.Finding {
	for i := range fs {
		fs[i].Pointer = pointer()
	}
	return fs
}

// Inspect scans a raw result. It returns the result to forward (the same slice when
// nothing changed), every finding at or above the minimum severity, and those that block.
func (g *Guard) Inspect(result []byte) ([]byte, []detect.Finding, []detect.Finding) {
	var all, block, alerts []detect.Finding
	var edits []detect.Edit
	err := detect.Walk(result, func(v *detect.Value) bool {
		if skipKeys[v.Key] || len(v.Text) == 0 {
			return true
		}
		ptr := ""
		pointer := func() string {
			if ptr == "" {
				ptr = v.Pointer()
			}
			return ptr
		}
		text := v.Text
		changed := false
		plain := detect.Plain(text)
		var secretFs, injFs []detect.Finding
		if plain && g.c.Secrets != Off && g.c.Injection != Off {
			ss, is := g.secrets.Start(text), g.inj.Start(text)
			detect.Shared().Scan(text, func(id, end int) bool {
				ss.HitShared(id, end)
				is.HitShared(id, end)
				return true
			})
			// The value's pointer is made only for a finding (most values have none).
			secretFs = withPointer(g.secrets.Findings(text, ss.Matches(), ""), pointer)
			injFs = withPointer(g.inj.Findings(text, is.Result(), ""), pointer)
		} else {
			if g.c.Injection != Off {
				injFs = g.injection(v.Text, pointer()) // before stripping: hidden text counts
			}
		}
		for _, e := range g.extras {
			if fs := e(text, pointer()); len(fs) > 0 {
				all = append(all, fs...)
				block = append(block, fs...)
			}
		}
		if g.c.Invisible != Off && !plain {
			if hidden := detect.FindHidden(text); len(hidden) > 0 {
				fs := detect.AtLeast(invisible.Findings(text, hidden, pointer()), g.c.MinSeverity)
				all = append(all, fs...)
				switch g.c.Invisible {
				case Strip, Visible:
					text, _ = detect.Clean(text, g.c.Invisible == Visible)
					changed = true
				case Alert:
					alerts = append(alerts, fs...)
				}
			}
		}
		if g.c.Secrets != Off {
			if !plain || g.c.Injection == Off {
				secretFs = g.secrets.Scan(text, pointer())
			}
			fs := detect.AtLeast(secretFs, g.c.MinSeverity)
			if len(fs) > 0 {
				all = append(all, fs...)
				switch g.c.Secrets {
				case Redact:
					spans := make([]detect.Span, 0, len(fs))
					for _, f := range fs {
						spans = append(spans, detect.Span{Start: f.Start, End: f.End, Marker: "[REDACTED:" + f.Rule + "]"})
					}
					text = detect.Replace(text, spans)
					changed = true
				case Block:
					block = append(block, fs...)
				case Alert:
					alerts = append(alerts, fs...)
				}
			}
		}
		if g.c.PII != Off {
			if fs := pii.ScanAtLeast(text, pointer(), g.c.PIISeverity); len(fs) > 0 {
				all = append(all, fs...)
				switch g.c.PII {
				case Redact:
					spans := make([]detect.Span, 0, len(fs))
					for _, f := range fs {
						spans = append(spans, detect.Span{Start: f.Start, End: f.End, Marker: "[REDACTED:" + f.Rule + "]"})
					}
					text = detect.Replace(text, spans)
					changed = true
				case Block:
					block = append(block, fs...)
				case Alert:
					alerts = append(alerts, fs...)
				}
			}
		}
		if g.c.Injection != Off {
			fs := detect.AtLeast(injFs, g.c.MinSeverity)
			if len(fs) > 0 {
				all = append(all, fs...)
				switch g.c.Injection {
				case Redact:
					text = "[REDACTED:prompt-injection]"
					changed = true
				case Block:
					block = append(block, fs...)
				case Alert:
					alerts = append(alerts, fs...)
				}
			}
		}
		if changed && text != v.Text {
			edits = append(edits, detect.Edit{Start: v.Start, End: v.End, Text: text})
		}
		return true
	})
	if err != nil {
		// Not JSON we can read: nothing the gateway has checked may pass.
		f := detect.Finding{Detector: "detect", Severity: detect.High, Message: "the result could not be inspected"}
		return result, []detect.Finding{f}, []detect.Finding{f}
	}
	if len(block) > 0 || len(all) == 0 {
		return result, all, block
	}
	out := detect.Apply(result, edits)
	if len(alerts) > 0 {
		out = annotate(out, alerts)
	}
	return out, all, nil
}

// annotate lists findings in the result's _meta.
func annotate(result []byte, fs []detect.Finding) []byte {
	out, err := jsonrpc.SetMeta(result, MetaKey, detect.MarshalFindings(fs))
	if err != nil {
		return result
	}
	return out
}
