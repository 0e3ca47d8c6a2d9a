package audit

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
)

// AlertRule is one entry of guards.audit.alerts: it fires when findings at or above a
// severity (of some detectors) reach a count within a window, overall or per principal,
// server, tool or session. A firing is recorded as an alert event (PC8001W), which every
// sink gets and which a webhook with `events: alerts` hands to a SOAR alone.
type AlertRule struct {
	Name string `yaml:"name"`
	// MinSeverity: info, low, medium, high (default) or critical.
	MinSeverity string `yaml:"min_severity"`
	// Detectors limits the rule to findings of these detectors (default: any).
	Detectors []string `yaml:"detectors"`
	// Count findings within Window fire the rule (defaults 1 and 1m).
	Count  int           `yaml:"count"`
	Window time.Duration `yaml:"window"`
	// Per counts separately for each principal, server, tool or session (default: all
	// together).
	Per string `yaml:"per"`
	// Cooldown is how long a fired rule stays quiet for the same key (default: Window).
	Cooldown time.Duration `yaml:"cooldown"`
}

// UnmarshalYAML decodes strictly.
func (r *AlertRule) UnmarshalYAML(n *yaml.Node) error {
	type plain AlertRule
	return strict(n, (*plain)(r), "name", "min_severity", "detectors", "count", "window", "per", "cooldown")
}

var severities = []string{"info", "low", "medium", "high", "critical"}

func severityRank(s string) int { return slices.Index(severities, strings.ToLower(s)) }

// maxAlertKeys bounds the keys (principals, ...) one rule counts for; past it, keys whose
// window ended are forgotten, and then the oldest.
const maxAlertKeys = 10000

type alertRule struct {
	AlertRule
	min int

	mu   sync.Mutex
	keys map[string]*alertState
}

type alertState struct {
	times []time.Time // the last Count matching findings
	fired time.Time
}

func compileAlerts(rules []AlertRule) ([]*alertRule, error) {
	var out []*alertRule
	var errs []error
	names := map[string]bool{}
	for i, r := range rules {
		where := fmt.Sprintf("alerts[%d]", i)
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", where))
		} else if names[r.Name] {
			errs = append(errs, fmt.Errorf("%s: name %q is used twice", where, r.Name))
		}
		names[r.Name] = true
		if r.MinSeverity == "" {
			r.MinSeverity = "high"
		}
		min := severityRank(r.MinSeverity)
		if min < 0 {
			errs = append(errs, fmt.Errorf("%s: min_severity %q: want %s", where, r.MinSeverity, strings.Join(severities, ", ")))
		}
		if r.Count < 0 || r.Window < 0 || r.Cooldown < 0 {
			errs = append(errs, fmt.Errorf("%s: count, window and cooldown must not be negative", where))
		}
		if r.Count == 0 {
			r.Count = 1
		}
		if r.Count > 100000 {
			errs = append(errs, fmt.Errorf("%s: count %d is too large (at most 100000)", where, r.Count))
		}
		if r.Window == 0 {
			r.Window = time.Minute
		}
		if r.Cooldown == 0 {
			r.Cooldown = r.Window
		}
		switch r.Per {
		case "", "principal", "server", "tool", "session":
		default:
			errs = append(errs, fmt.Errorf("%s: per %q: want principal, server, tool or session", where, r.Per))
		}
		out = append(out, &alertRule{AlertRule: r, min: min, keys: map[string]*alertState{}})
	}
	return out, errors.Join(errs...)
}

func (r *alertRule) matches(f trail.Finding) bool {
	return severityRank(f.Severity) >= r.min && (len(r.Detectors) == 0 || slices.Contains(r.Detectors, f.Detector))
}

func (r *alertRule) key(e *trail.Event) string {
	switch r.Per {
	case "principal":
		return e.Principal
	case "server":
		return e.Server
	case "tool":
		return e.Server + "/" + e.Tool
	case "session":
		return e.Session
	}
	return ""
}

// observe counts the matching findings of a call's outcome event and returns the alert
// event to record when the rule fires.
func (r *alertRule) observe(e *trail.Event, now time.Time) *trail.Event {
	var hit []trail.Finding
	for _, f := range e.Findings {
		if r.matches(f) {
			hit = append(hit, f)
		}
	}
	if len(hit) == 0 {
		return nil
	}
	key := r.key(e)
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.keys[key]
	if st == nil {
		if len(r.keys) >= maxAlertKeys {
			r.forget(now)
		}
		st = &alertState{}
		r.keys[key] = st
	}
	for range hit {
		st.times = append(st.times, now)
	}
	if over := len(st.times) - r.Count; over > 0 {
		st.times = append(st.times[:0], st.times[over:]...)
	}
	if len(st.times) < r.Count || now.Sub(st.times[0]) > r.Window {
		return nil
	}
	if !st.fired.IsZero() && now.Sub(st.fired) < r.Cooldown {
		return nil
	}
	st.fired = now
	msg := fmt.Sprintf("alert %q: %d finding(s) at or above %s", r.Name, r.Count, r.MinSeverity)
	if r.Count > 1 {
		msg += fmt.Sprintf(" within %s", r.Window)
	}
	if r.Per != "" {
		msg += fmt.Sprintf(" for %s %q", r.Per, key)
	}
	return &trail.Event{Time: now, Code: trail.CodeAlert, Kind: trail.KindAlert, Alert: r.Name, Direction: e.Direction,
		Principal: e.Principal, AuthMethod: e.AuthMethod, Session: e.Session, Server: e.Server, Method: e.Method, Tool: e.Tool,
		RequestID: e.RequestID, Call: e.ID, Decision: e.Decision, Guard: e.Guard, Incident: e.Incident,
		TraceID: e.TraceID, SpanID: e.SpanID, Message: msg, Findings: hit}
}

// forget drops keys whose window and cooldown ended, or else the half that fired longest ago.
func (r *alertRule) forget(now time.Time) {
	for k, st := range r.keys {
		last := st.fired
		if n := len(st.times); n > 0 && st.times[n-1].After(last) {
			last = st.times[n-1]
		}
		if now.Sub(last) > max(r.Window, r.Cooldown) {
			delete(r.keys, k)
		}
	}
	if len(r.keys) < maxAlertKeys {
		return
	}
	n := 0
	for k := range r.keys {
		delete(r.keys, k)
		if n++; n >= maxAlertKeys/2 {
			break
		}
	}
}
