package approval

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

const modernCaps = `{"elicitation":{"form":{}}}`

// modernCall is a 2026-07-28 tools/call; extra holds retry fields ("requestState",
// "inputResponses") as raw JSON members.
func modernCall(args string, extra ...string) *guard.Call {
	p := `{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":` + modernCaps + `},"name":"write","arguments":` + args
	for _, e := range extra {
		p += "," + e
	}
	p += "}"
	return &guard.Call{Msg: &jsonrpc.Message{ID: jsonrpc.IntID(1), Method: "tools/call", Params: json.RawMessage(p)}, Direction: guard.Inbound,
		Principal: alice, Server: "fs", Name: "write", Era: "modern", Client: &client{caps: modernCaps},
		Holds: []guard.Hold{{Guard: "authz", Reason: `rule "writes"`}}}
}

type inputRequired struct {
	ResultType    string `json:"resultType"`
	InputRequests map[string]struct {
		Method string `json:"method"`
		Params struct {
			Mode            string          `json:"mode"`
			Message         string          `json:"message"`
			RequestedSchema json.RawMessage `json:"requestedSchema"`
		} `json:"params"`
	} `json:"inputRequests"`
	RequestState string `json:"requestState"`
}

func first(t *testing.T, h guard.Handler, u *upstream, args string) inputRequired {
	t.Helper()
	before := u.n()
	resp, err, ds := handle(h, modernCall(args))
	if err != nil {
		t.Fatal(err)
	}
	var ir inputRequired
	if err := json.Unmarshal(resp.Result, &ir); err != nil {
		t.Fatal(err)
	}
	q, ok := ir.InputRequests[elicitKey]
	if ir.ResultType != "input_required" || !ok || q.Method != "elicitation/create" || q.Params.Mode != "form" || ir.RequestState == "" {
		t.Fatalf("first answer %s, want input_required with an elicitation request and a requestState", resp.Result)
	}
	if !strings.Contains(q.Params.Message, "Arguments: "+args) || !strings.Contains(q.Params.Message, "Tool: write") {
		t.Errorf("question %q does not show the call", q.Params.Message)
	}
	if strings.Contains(string(q.Params.RequestedSchema), `"session"`) {
		t.Errorf("a session scope offered to a sessionless client: %s", q.Params.RequestedSchema)
	}
	if u.n() != before {
		t.Fatal("the upstream saw a held call")
	}
	if len(ds) != 1 || ds[0].Code != trail.CodeApprovalAsked {
		t.Errorf("decisions %+v", ds)
	}
	return ir
}

func stateField(s string) string { return `"requestState":` + string(jsonrpc.Quote(s)) }

const accept = `"inputResponses":{"portcullis_approval":{"action":"accept","content":{"scope":"once"}}}`

// The 2026-07-28 multi round-trip: input_required with an elicitation request and a signed
// requestState; the retry with the answer is released (without the gateway's fields); the
// same retry again is not (single use), nor is the state on other arguments, by another
// principal, changed, or expired.
func TestModernRoundTrip(t *testing.T) {
	st := openStore(t)
	h, u, _ := newGuard(t, st, Config{})
	ir := first(t, h, u, `{"a":1}`)
	if as, _ := st.ListApprovals(context.Background(), "", 0); len(as) != 0 {
		t.Fatalf("the question left approvals in the store: %+v", as)
	}

	// Tampered, or for other arguments or another principal: refused.
	tampered := ir.RequestState[:len(ir.RequestState)-2] + "xx"
	if _, err := h.Handle(context.Background(), modernCall(`{"a":1}`, stateField(tampered), accept)); err == nil {
		t.Fatal("a changed requestState was accepted")
	}
	if _, err := h.Handle(context.Background(), modernCall(`{"a":2}`, stateField(ir.RequestState), accept)); err == nil {
		t.Fatal("a requestState released a call with other arguments")
	}
	c := modernCall(`{"a":1}`, stateField(ir.RequestState), accept)
	c.Principal = identity.Principal{ID: "mallory", Method: "apikey"}
	if _, err := h.Handle(context.Background(), c); err == nil {
		t.Fatal("a requestState released another principal's call")
	}
	if u.n() != 0 {
		t.Fatal("the upstream saw a refused call")
	}

	// A retry without the answer is asked again.
	resp, err := h.Handle(context.Background(), modernCall(`{"a":1}`, stateField(ir.RequestState)))
	if err != nil || !strings.Contains(string(resp.Result), "input_required") {
		t.Fatalf("retry without an answer: %v %s", err, resp.Result)
	}

	// The answer releases the call, once.
	_, err, ds := handle(h, modernCall(`{"a":1}`, stateField(ir.RequestState), accept))
	if err != nil || u.n() != 1 {
		t.Fatalf("accepted retry: %v, upstream %d", err, u.n())
	}
	if p := string(u.calls[0].Msg.Params); strings.Contains(p, "requestState") || strings.Contains(p, "inputResponses") {
		t.Errorf("the server got the gateway's retry fields: %s", p)
	}
	if len(ds) != 1 || ds[0].Code != trail.CodeApproved || ds[0].Approver != "alice via elicitation" {
		t.Errorf("decisions %+v", ds)
	}
	if _, err := h.Handle(context.Background(), modernCall(`{"a":1}`, stateField(ir.RequestState), accept)); err == nil {
		t.Fatal("a replayed retry was released again")
	}
	if u.n() != 1 {
		t.Fatalf("upstream saw %d calls", u.n())
	}
}

func TestModernDeclineAndExpiry(t *testing.T) {
	st := openStore(t)
	h, u, _ := newGuard(t, st, Config{})
	ir := first(t, h, u, `{"a":1}`)
	_, err := h.Handle(context.Background(), modernCall(`{"a":1}`, stateField(ir.RequestState), `"inputResponses":{"portcullis_approval":{"action":"decline"}}`))
	if r := refusal(t, err); r.Code != jsonrpc.CodeDenied {
		t.Fatalf("decline: %+v", r)
	}
	if a := only(t, st); a.Status != store.ApprovalDenied {
		t.Errorf("status %s", a.Status)
	}

	// Expired state.
	st2 := openStore(t)
	g, err := Compile(Config{Timeout: time.Minute}, Options{Store: st2, Signer: NewSigner([]byte("0123456789abcdef"))})
	if err != nil {
		t.Fatal(err)
	}
	u2 := &upstream{}
	h2 := g.Middleware()(u2)
	ir = first(t, h2, u2, `{"a":1}`)
	g.o.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if _, err := h2.Handle(context.Background(), modernCall(`{"a":1}`, stateField(ir.RequestState), accept)); err == nil || u2.n() != 0 {
		t.Fatalf("an expired requestState released the call: %v", err)
	}
}

// A 2026-07-28 client without elicitation waits for the store like any other.
func TestModernWithoutElicitationWaits(t *testing.T) {
	st := openStore(t)
	h, u, _ := newGuard(t, st, Config{})
	c := modernCall(`{"a":1}`)
	c.Client = &client{caps: `{}`}
	done := make(chan error, 1)
	go func() { _, err := h.Handle(context.Background(), c); done <- err }()
	a := waitPending(t, st)
	if _, err := Settle(context.Background(), st, a.ID, Decision{Approve: true, Approver: "bob", Via: "cli"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil || u.n() != 1 {
		t.Fatalf("%v, upstream %d", err, u.n())
	}
}

// A duration answer from a 2026-07-28 client releases its later calls with the same
// arguments without asking again.
func TestModernDurationGrant(t *testing.T) {
	st := openStore(t)
	h, u, _ := newGuard(t, st, Config{})
	ir := first(t, h, u, `{"a":1}`)
	if _, err := h.Handle(context.Background(), modernCall(`{"a":1}`, stateField(ir.RequestState),
		`"inputResponses":{"portcullis_approval":{"action":"accept","content":{"scope":"duration"}}}`)); err != nil {
		t.Fatal(err)
	}
	resp, err := h.Handle(context.Background(), modernCall(`{"a":1}`))
	if err != nil || strings.Contains(string(resp.Result), "input_required") || u.n() != 2 {
		t.Fatalf("later call: %v %s, upstream %d", err, resp.Result, u.n())
	}
	first(t, h, u, `{"a":2}`) // other arguments: asked
}
