package guard

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// withRegistry gives the test an empty registry and its own Order, and restores the real
// ones when the test ends. Tests that use it must not run in parallel.
func withRegistry(t *testing.T, order ...string) {
	t.Helper()
	regMu.Lock()
	savedOrder, savedRegistry := Order, registry
	Order, registry = order, map[string]registration{}
	regMu.Unlock()
	t.Cleanup(func() {
		regMu.Lock()
		Order, registry = savedOrder, savedRegistry
		regMu.Unlock()
	})
}

// tracer records the order in which guards and the terminal see a call.
type tracer struct{ seen []string }

func (tr *tracer) guard(name string) Setup {
	return func(cfg Config, env Env) (Middleware, error) {
		return func(next Handler) Handler {
			return HandlerFunc(func(ctx context.Context, c *Call) (*jsonrpc.Message, error) {
				tr.seen = append(tr.seen, name)
				return next.Handle(ctx, c)
			})
		}, nil
	}
}

func (tr *tracer) terminal() Handler {
	return HandlerFunc(func(ctx context.Context, c *Call) (*jsonrpc.Message, error) {
		tr.seen = append(tr.seen, "terminal")
		return jsonrpc.NewResult(c.Msg.ID, map[string]any{}), nil
	})
}

func request() *Call {
	return &Call{Msg: jsonrpc.NewRequest(jsonrpc.IntID(1), "tools/call", map[string]any{"name": "t"}), Era: "legacy"}
}

// section is a guard configuration that decodes nothing.
type section struct {
	name string
	off  bool
}

func (section) Decode(v any) error { return nil }
func (s section) Off() bool        { return s.off }

func TestBuildOrder(t *testing.T) {
	order := []string{"first", "second", "third", "fourth"}
	tests := []struct {
		name     string
		register []string
	}{
		{"in order", []string{"first", "second", "third", "fourth"}},
		{"reversed", []string{"fourth", "third", "second", "first"}},
		{"shuffled", []string{"third", "first", "fourth", "second"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withRegistry(t, order...)
			tr := &tracer{}
			for _, n := range tt.register {
				Register(n, true, tr.guard(n))
			}
			h, names, err := Build(tr.terminal(), nil, Env{})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if !slices.Equal(names, order) {
				t.Errorf("names = %v, want %v", names, order)
			}
			if _, err := h.Handle(context.Background(), request()); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			want := append(slices.Clone(order), "terminal")
			if !slices.Equal(tr.seen, want) {
				t.Errorf("call went through %v, want %v", tr.seen, want)
			}
		})
	}
}

func TestBuildEnables(t *testing.T) {
	// "opt-in" and "opt-in-2" run only with a section; "default" runs without one.
	tests := []struct {
		name     string
		sections []string
		want     []string
	}{
		{"no sections", nil, []string{"default"}},
		{"one opt-in", []string{"opt-in"}, []string{"opt-in", "default"}},
		{"other opt-in", []string{"opt-in-2"}, []string{"default", "opt-in-2"}},
		{"all", []string{"opt-in-2", "default", "opt-in"}, []string{"opt-in", "default", "opt-in-2"}},
		{"default off", []string{"default:off"}, nil},
		{"default off, opt-in on", []string{"default:off", "opt-in"}, []string{"opt-in"}},
		{"opt-in off", []string{"opt-in:off"}, []string{"default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withRegistry(t, "opt-in", "default", "opt-in-2")
			tr := &tracer{}
			setups := map[string]int{}
			got := map[string]Config{}
			for _, n := range []string{"opt-in", "default", "opt-in-2"} {
				inner := tr.guard(n)
				Register(n, n == "default", func(cfg Config, env Env) (Middleware, error) {
					setups[n]++
					got[n] = cfg
					return inner(cfg, env)
				})
			}
			sections := map[string]Config{}
			for _, n := range tt.sections {
				n, off := strings.CutSuffix(n, ":off")
				sections[n] = &section{name: n, off: off}
			}
			h, names, err := Build(tr.terminal(), sections, Env{})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("names = %v, want %v", names, tt.want)
			}
			for _, n := range []string{"opt-in", "default", "opt-in-2"} {
				wantSetups := 0
				if slices.Contains(tt.want, n) {
					wantSetups = 1
				}
				if setups[n] != wantSetups {
					t.Errorf("setup of %s ran %d times, want %d", n, setups[n], wantSetups)
				}
			}
			// A configured guard gets its section; a default one without a section gets nil.
			for n, cfg := range got {
				if s, ok := sections[n]; ok {
					if cfg != s {
						t.Errorf("setup of %s got config %v, want its section", n, cfg)
					}
				} else if cfg != nil {
					t.Errorf("setup of %s got config %v, want nil", n, cfg)
				}
			}
			if _, err := h.Handle(context.Background(), request()); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if want := append(slices.Clone(tt.want), "terminal"); !slices.Equal(tr.seen, want) {
				t.Errorf("call went through %v, want %v", tr.seen, want)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name     string
		sections []string
		want     []string // substrings of the error
		wantIs   error
	}{
		{"unknown section", []string{"limits2"}, []string{`unknown guard "limits2"`, "known: [audit limits broken]"}, nil},
		{"unknown among known", []string{"audit", "limits2"}, []string{`unknown guard "limits2"`}, nil},
		{"setup fails", []string{"broken"}, []string{"guard broken: boom"}, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withRegistry(t, "audit", "limits", "broken", "not-registered")
			tr := &tracer{}
			Register("limits", true, tr.guard("limits"))
			Register("audit", false, tr.guard("audit"))
			Register("broken", false, func(Config, Env) (Middleware, error) { return nil, boom })
			sections := map[string]Config{}
			for _, n := range tt.sections {
				sections[n] = section{name: n}
			}
			h, names, err := Build(tr.terminal(), sections, Env{})
			if err == nil {
				t.Fatalf("Build = %v, %v; want an error", h, names)
			}
			if h != nil || names != nil {
				t.Errorf("Build returned a chain %v with its error", names)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q does not wrap %q", err, tt.wantIs)
			}
		})
	}
}

func TestBuildUnknownListsKnown(t *testing.T) {
	withRegistry(t, "audit", "limits", "authz", "not-registered")
	tr := &tracer{}
	// Registered out of order: the message lists them in Order, and only registered ones.
	Register("authz", false, tr.guard("authz"))
	Register("audit", true, tr.guard("audit"))
	Register("limits", true, tr.guard("limits"))
	_, _, err := Build(tr.terminal(), map[string]Config{"limits": section{}, "nope": section{}}, Env{})
	if err == nil {
		t.Fatal("Build with an unknown section succeeded")
	}
	want := `unknown guard "nope" (known: [audit limits authz])`
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if Known("nope") || Known("not-registered") || !Known("authz") {
		t.Errorf("Known disagrees with the registry")
	}
}

func TestRegisterPanics(t *testing.T) {
	tests := []struct {
		name  string
		first string // registered before, if not ""
		reg   string
		want  string
	}{
		{"not in Order", "", "stranger", `guard "stranger" is not in guard.Order`},
		{"twice", "audit", "audit", `guard "audit" registered twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withRegistry(t, "audit")
			tr := &tracer{}
			if tt.first != "" {
				Register(tt.first, true, tr.guard(tt.first))
			}
			defer func() {
				p := recover()
				if p == nil {
					t.Fatalf("Register(%q) did not panic", tt.reg)
				}
				if fmt.Sprint(p) != tt.want {
					t.Errorf("panic %q, want %q", p, tt.want)
				}
			}()
			Register(tt.reg, true, tr.guard(tt.reg))
		})
	}
}

func TestSafePanic(t *testing.T) {
	const secret = "token=hunter2"
	tests := []struct {
		name         string
		before       bool // the guard panics before calling next
		wantTerminal bool
	}{
		{"before next", true, false},
		{"after next", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withRegistry(t, "outer", "crashy")
			reached := false
			terminal := HandlerFunc(func(ctx context.Context, c *Call) (*jsonrpc.Message, error) {
				reached = true
				return jsonrpc.NewResult(c.Msg.ID, map[string]any{"ok": true}), nil
			})
			var outerErr error
			Register("outer", true, func(Config, Env) (Middleware, error) {
				return func(next Handler) Handler {
					return HandlerFunc(func(ctx context.Context, c *Call) (*jsonrpc.Message, error) {
						resp, err := next.Handle(ctx, c)
						outerErr = err
						return resp, err
					})
				}, nil
			})
			Register("crashy", true, func(Config, Env) (Middleware, error) {
				return func(next Handler) Handler {
					return HandlerFunc(func(ctx context.Context, c *Call) (*jsonrpc.Message, error) {
						if tt.before {
							panic("checking " + secret)
						}
						resp, err := next.Handle(ctx, c)
						var m map[string]any
						m["x"] = resp // nil map: a runtime panic while inspecting the result
						return resp, err
					})
				}, nil
			})
			h, _, err := Build(terminal, nil, Env{})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := h.Handle(context.Background(), request())
			if resp != nil {
				t.Errorf("a panicking guard let a response through: %s", resp.Marshal())
			}
			if reached != tt.wantTerminal {
				t.Errorf("terminal reached = %v, want %v", reached, tt.wantTerminal)
			}
			var r *Refusal
			if !errors.As(err, &r) {
				t.Fatalf("err = %v (%T), want a *Refusal", err, err)
			}
			if r.Guard != "crashy" || r.Code != jsonrpc.CodeGatewayError || r.Incident == "" {
				t.Errorf("refusal = %+v, want guard crashy, code %d and an incident", r, jsonrpc.CodeGatewayError)
			}
			if outerErr != err {
				t.Errorf("the outer guard saw %v, want the refusal", outerErr)
			}
			// The client learns the guard and the incident, not what the panic said.
			je, incident := ErrorFor(err)
			if incident != r.Incident || je.Code != jsonrpc.CodeGatewayError {
				t.Errorf("ErrorFor = %v, %q", je, incident)
			}
			var data map[string]any
			if err := json.Unmarshal(je.Data, &data); err != nil {
				t.Fatal(err)
			}
			if want := map[string]any{"guard": "crashy", "incident": r.Incident}; !reflect.DeepEqual(data, want) {
				t.Errorf("client data = %v, want %v", data, want)
			}
			if client := string(jsonrpc.NewError(jsonrpc.IntID(1), je).Marshal()); strings.Contains(client, "hunter2") || strings.Contains(client, "nil map") {
				t.Errorf("the client sees the panic: %s", client)
			}
			// The log (err.Error()) keeps it for the incident.
			wantLog := "assignment to entry in nil map"
			if tt.before {
				wantLog = "checking " + secret
			}
			if !strings.Contains(err.Error(), wantLog) || !strings.Contains(err.Error(), r.Incident) {
				t.Errorf("err.Error() = %q, want the panic %q and the incident", err, wantLog)
			}
			if !strings.Contains(err.Error(), "TestSafePanic") {
				t.Errorf("err.Error() = %q, want the stack of the panic", err)
			}
		})
	}
}

func TestSafePassesThrough(t *testing.T) {
	want := jsonrpc.NewResult(jsonrpc.IntID(3), map[string]any{"a": 1})
	wantErr := errors.New("refused")
	tests := []struct {
		name string
		resp *jsonrpc.Message
		err  error
	}{
		{"response", want, nil},
		{"error", nil, wantErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Safe("g", HandlerFunc(func(context.Context, *Call) (*jsonrpc.Message, error) { return tt.resp, tt.err }))
			resp, err := h.Handle(context.Background(), request())
			if resp != tt.resp || err != tt.err {
				t.Errorf("Safe changed the result: %v, %v", resp, err)
			}
		})
	}
}

func TestErrorFor(t *testing.T) {
	refusal := &Refusal{Guard: "limits", Code: jsonrpc.CodeLimitExceeded, Message: "too many", Incident: "0123456789abcdef",
		Data: map[string]any{"limit": "max_concurrent_per_session", "retryAfterMs": 100}}
	rpcErr := &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "bad params", Data: json.RawMessage(`{"x":1}`)}
	tests := []struct {
		name        string
		err         error
		code        int
		message     string
		data        map[string]any // "incident" is checked against the returned id when "*"
		incident    string         // "*": any fresh id
		samePointer bool
		mustNotLeak string
	}{
		{"refusal", refusal, jsonrpc.CodeLimitExceeded, "too many",
			map[string]any{"guard": "limits", "incident": "0123456789abcdef", "limit": "max_concurrent_per_session", "retryAfterMs": 100.0},
			"0123456789abcdef", false, ""},
		{"wrapped refusal", fmt.Errorf("chain: %w", refusal), jsonrpc.CodeLimitExceeded, "too many",
			map[string]any{"guard": "limits", "incident": "0123456789abcdef", "limit": "max_concurrent_per_session", "retryAfterMs": 100.0},
			"0123456789abcdef", false, ""},
		{"denied", &Refusal{Guard: "authz", Code: jsonrpc.CodeDenied, Message: "no", Incident: "ab"}, jsonrpc.CodeDenied, "no",
			map[string]any{"guard": "authz", "incident": "ab"}, "ab", false, ""},
		{"jsonrpc error", rpcErr, jsonrpc.CodeInvalidParams, "bad params", map[string]any{"x": 1.0}, "", true, ""},
		{"internal", errors.New("dial tcp 10.0.0.7:5432: password authentication failed for user admin"),
			jsonrpc.CodeGatewayError, "the gateway could not process this message; it was not passed on",
			map[string]any{"incident": "*"}, "*", false, "10.0.0.7"},
		{"wrapped internal", fmt.Errorf("upstream: %w", errors.New("secret-path /etc/shadow")),
			jsonrpc.CodeGatewayError, "the gateway could not process this message; it was not passed on",
			map[string]any{"incident": "*"}, "*", false, "shadow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			je, incident := ErrorFor(tt.err)
			if tt.samePointer && je != rpcErr {
				t.Errorf("ErrorFor(%v) = %v, want the error as it is", tt.err, je)
			}
			if je.Code != tt.code || je.Message != tt.message {
				t.Errorf("ErrorFor = %d %q, want %d %q", je.Code, je.Message, tt.code, tt.message)
			}
			if tt.incident == "*" {
				if b, err := hex.DecodeString(incident); err != nil || len(b) != 8 {
					t.Errorf("incident %q is not a fresh id", incident)
				}
			} else if incident != tt.incident {
				t.Errorf("incident = %q, want %q", incident, tt.incident)
			}
			var data map[string]any
			if err := json.Unmarshal(je.Data, &data); err != nil {
				t.Fatalf("data %s: %v", je.Data, err)
			}
			if tt.data["incident"] == "*" {
				tt.data["incident"] = incident
			}
			if !reflect.DeepEqual(data, tt.data) {
				t.Errorf("data = %v, want %v", data, tt.data)
			}
			if tt.mustNotLeak != "" && strings.Contains(string(jsonrpc.NewError(nil, je).Marshal()), tt.mustNotLeak) {
				t.Errorf("the client sees %q: %s", tt.mustNotLeak, jsonrpc.NewError(nil, je).Marshal())
			}
		})
	}
}

func TestInternalErrorsGetDistinctIncidents(t *testing.T) {
	_, a := ErrorFor(errors.New("x"))
	_, b := ErrorFor(errors.New("x"))
	if a == b {
		t.Errorf("two internal errors share incident %q", a)
	}
}

func TestDeny(t *testing.T) {
	r := Deny("authz", jsonrpc.CodeDenied, "tool %q is not allowed for %s", "rm", "bob")
	if r.Guard != "authz" || r.Code != jsonrpc.CodeDenied || r.Message != `tool "rm" is not allowed for bob` {
		t.Errorf("Deny = %+v", r)
	}
	if b, err := hex.DecodeString(r.Incident); err != nil || len(b) != 8 {
		t.Errorf("incident %q is not 8 random bytes in hex", r.Incident)
	}
	if want := `guard/authz: tool "rm" is not allowed for bob (incident ` + r.Incident + ")"; r.Error() != want {
		t.Errorf("Error() = %q, want %q", r.Error(), want)
	}
}

func TestDirectionString(t *testing.T) {
	for d, want := range map[Direction]string{Inbound: "inbound", Outbound: "outbound"} {
		if d.String() != want {
			t.Errorf("%d.String() = %q, want %q", d, d.String(), want)
		}
	}
}

// TestOrderIsUnique guards the one list that decides the order of guards.
func TestOrderIsUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range Order {
		if seen[n] {
			t.Errorf("%q is twice in Order", n)
		}
		seen[n] = true
	}
	if Order[0] != "audit" {
		t.Errorf("Order starts with %q; audit must be outermost so that every refusal is recorded", Order[0])
	}
}
