package approval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// WebhookConfig says where pending approvals are announced.
type WebhookConfig struct {
	// URL receives a POST of a JSON object for every pending approval.
	URL string `yaml:"url"`
	// BaseURL is the gateway as approvers reach it (https://gw.example.com); the links
	// are BaseURL + LinkPath.
	BaseURL string `yaml:"base_url"`
	// Headers are added to the POST (an Authorization header for the receiver).
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds the POST (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

// UnmarshalYAML decodes strictly: a misspelt key is an error with its line.
func (w *WebhookConfig) UnmarshalYAML(n *yaml.Node) error {
	known := []string{"url", "base_url", "headers", "timeout"}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: webhook must be a mapping (%s)", n.Line, strings.Join(known, ", "))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !slices.Contains(known, k.Value) {
			return fmt.Errorf("line %d: webhook: unknown field %q (known: %s)", k.Line, k.Value, strings.Join(known, ", "))
		}
	}
	type plain WebhookConfig
	return n.Decode((*plain)(w))
}

// LinkPath is where the gateway serves the signed approve/deny links (on its HTTP
// listener).
const LinkPath = "/approvals/link"

func (w *WebhookConfig) check() error {
	if w == nil {
		return nil
	}
	var errs []error
	u, err := url.Parse(w.URL)
	if w.URL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, fieldErr("webhook.url", "want an http(s) URL, not %q", w.URL))
	}
	b, err := url.Parse(w.BaseURL)
	if w.BaseURL == "" || err != nil || (b.Scheme != "https" && b.Scheme != "http") || b.Host == "" || (b.Path != "" && b.Path != "/") || b.RawQuery != "" {
		errs = append(errs, fieldErr("webhook.base_url", "want the gateway's http(s) origin such as https://gw.example.com, not %q", w.BaseURL))
	}
	if w.Timeout < 0 {
		errs = append(errs, fieldErr("webhook.timeout", "must be positive"))
	}
	return errors.Join(errs...)
}

// Notice is what the webhook receives for a pending approval.
type Notice struct {
	ID         string          `json:"id"`
	Principal  string          `json:"principal"`
	AuthMethod string          `json:"auth_method,omitempty"`
	Server     string          `json:"server"`
	Method     string          `json:"method"`
	Tool       string          `json:"tool"`
	Arguments  json.RawMessage `json:"arguments"`
	Reason     string          `json:"reason"`
	Approvers  []string        `json:"approvers,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	ExpiresAt  time.Time       `json:"expires_at"`
	ApproveURL string          `json:"approve_url"`
	DenyURL    string          `json:"deny_url"`
	Text       string          `json:"text"` // a one-line summary for chat webhooks
}

// Link returns the signed link that settles approval a with decision.
func (s *Signer) Link(base string, a store.Approval, decision string) string {
	v := url.Values{}
	v.Set("id", a.ID)
	v.Set("d", decision)
	v.Set("exp", a.ExpiresAt.UTC().Format(time.RFC3339))
	v.Set("sig", s.LinkSig(a.ID, decision, a.ExpiresAt))
	return strings.TrimSuffix(base, "/") + LinkPath + "?" + v.Encode()
}

// webhook posts notices; a failure is logged (the approval still waits in the store for
// the command line and the dashboard).
type webhook struct {
	c      WebhookConfig
	signer *Signer
	client *http.Client
	log    *slog.Logger
}

func (w *webhook) notify(ctx context.Context, a store.Approval) {
	n := Notice{ID: a.ID, Principal: a.Principal, AuthMethod: a.PrincipalMethod, Server: a.Server, Method: a.Method, Tool: a.Tool,
		Arguments: a.Arguments, Reason: a.Reason, Approvers: a.Approvers, CreatedAt: a.CreatedAt, ExpiresAt: a.ExpiresAt,
		ApproveURL: w.signer.Link(w.c.BaseURL, a, LinkApprove), DenyURL: w.signer.Link(w.c.BaseURL, a, LinkDeny)}
	n.Text = fmt.Sprintf("%s asks to run %s %s on %s with %s (%s). Approval %s expires %s.", a.Principal, a.Method, a.Tool, a.Server,
		a.Arguments, a.Reason, a.ID, a.ExpiresAt.UTC().Format(time.RFC3339))
	body, _ := json.Marshal(n)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, w.c.Timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.c.URL, bytes.NewReader(body))
		if err != nil {
			w.log.Error("approval webhook", "approval", a.ID, "err", err)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range w.c.Headers {
			req.Header.Set(k, v)
		}
		resp, err := w.client.Do(req)
		if err != nil {
			w.log.Warn("approval webhook failed; the approval waits in the store", "approval", a.ID, "err", err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			w.log.Warn("approval webhook refused the notice; the approval waits in the store", "approval", a.ID, "status", resp.Status)
		}
	}()
}

// Links serves the signed approve/deny links of the running gateway's approval guard
// (404 while no guard with a webhook is configured). GET shows the call and a button; only
// the POST of that button settles, so that link previews and scanners that fetch links
// settle nothing. A link settles once and expires with its approval.
func Links() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := current.Load()
		if g == nil || g.c.Webhook == nil || g.o.Store == nil {
			http.NotFound(w, r)
			return
		}
		g.serveLink(w, r)
	})
}

var page = template.Must(template.New("link").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><title>Portcullis approval {{.A.ID}}</title></head>
<body style="font-family:sans-serif;max-width:48em;margin:2em auto">
<h1>{{if .Done}}{{.Done}}{{else}}{{if eq .D "approve"}}Approve{{else}}Deny{{end}} this call?{{end}}</h1>
<table>
<tr><th align=left>Approval</th><td>{{.A.ID}} ({{.A.Status}})</td></tr>
<tr><th align=left>Caller</th><td>{{.A.Principal}}</td></tr>
<tr><th align=left>Server</th><td>{{.A.Server}}</td></tr>
<tr><th align=left>Call</th><td>{{.A.Method}} {{.A.Tool}}</td></tr>
<tr><th align=left>Arguments</th><td><pre>{{printf "%s" .A.Arguments}}</pre></td></tr>
<tr><th align=left>Why</th><td>{{.A.Reason}}</td></tr>
<tr><th align=left>Expires</th><td>{{.A.ExpiresAt}}</td></tr>
</table>
{{if not .Done}}<form method="post"><input type="hidden" name="id" value="{{.A.ID}}"><input type="hidden" name="d" value="{{.D}}">
<input type="hidden" name="exp" value="{{.Exp}}"><input type="hidden" name="sig" value="{{.Sig}}">
<button type="submit">{{if eq .D "approve"}}Approve once{{else}}Deny{{end}}</button></form>{{end}}
</body></html>
`))

func (g *Guard) serveLink(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		http.Error(w, "use GET to see the call and POST to decide", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	id, d, expS, sig := r.Form.Get("id"), r.Form.Get("d"), r.Form.Get("exp"), r.Form.Get("sig")
	exp, err := time.Parse(time.RFC3339, expS)
	if err != nil || (d != LinkApprove && d != LinkDeny) || id == "" {
		http.Error(w, "this is not an approval link", http.StatusBadRequest)
		return
	}
	now := g.o.Now()
	signer, err := g.sign()
	if err != nil {
		http.Error(w, "the approval key could not be loaded", http.StatusInternalServerError)
		return
	}
	if err := signer.CheckLink(id, d, exp, sig, now); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	ctx := r.Context()
	a, err := g.o.Store.GetApproval(ctx, id)
	if err != nil {
		http.Error(w, "no such approval", http.StatusNotFound)
		return
	}
	data := map[string]any{"A": a, "D": d, "Exp": expS, "Sig": sig}
	if a.Status != store.ApprovalPending {
		data["Done"] = "This approval was already settled: " + a.Status
		w.WriteHeader(http.StatusConflict)
		page.Execute(w, data)
		return
	}
	if r.Method == http.MethodGet {
		page.Execute(w, data)
		return
	}
	a, err = Settle(ctx, g.o.Store, id, Decision{Approve: d == LinkApprove, Approver: "signed link", Via: "link"}, now)
	data["A"] = a
	switch {
	case errors.Is(err, store.ErrNotPending):
		data["Done"] = "This approval was already settled: " + a.Status
		w.WriteHeader(http.StatusConflict)
	case err != nil:
		g.log.Error("approval link", "approval", id, "err", err)
		http.Error(w, "the decision could not be recorded", http.StatusInternalServerError)
		return
	default:
		data["Done"] = "Recorded: " + a.Status
	}
	page.Execute(w, data)
}
