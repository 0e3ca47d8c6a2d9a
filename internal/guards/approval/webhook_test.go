package approval

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store"
)

// The webhook gets every pending approval with signed links; GET on a link only shows the
// call, POST settles it, once; a link with a changed decision, id or expiry, or an expired
// one, settles nothing.
func TestWebhookLinks(t *testing.T) {
	notices := make(chan Notice, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n Notice
		json.NewDecoder(r.Body).Decode(&n)
		if r.Header.Get("Authorization") != "Bearer t" {
			t.Errorf("webhook headers: %v", r.Header)
		}
		notices <- n
	}))
	defer hook.Close()
	gw := httptest.NewServer(Links())
	defer gw.Close()

	st := openStore(t)
	g, err := Setup(Config{Timeout: 2 * time.Second, PollInterval: 10 * time.Millisecond, KeyFile: filepath.Join(t.TempDir(), "approval.key"),
		Webhook: &WebhookConfig{URL: hook.URL, BaseURL: gw.URL, Headers: map[string]string{"Authorization": "Bearer t"}}}, st)
	if err != nil {
		t.Fatal(err)
	}
	var off atomic.Int64
	g.o.Now = func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
	current.Store(g)
	defer current.Store(nil)
	u := &upstream{}
	h := g.Middleware()(u)

	for _, approve := range []bool{true, false} {
		done := make(chan error, 1)
		go func() {
			_, err := h.Handle(context.Background(), call(`{"approve":`+map[bool]string{true: "true", false: "false"}[approve]+`}`, nil))
			done <- err
		}()
		n := <-notices
		if n.Server != "fs" || n.Tool != "write" || n.Principal != "alice" || !strings.HasPrefix(n.ApproveURL, gw.URL+LinkPath) {
			t.Fatalf("notice %+v", n)
		}
		link, other := n.ApproveURL, n.DenyURL
		if !approve {
			link, other = other, link
		}
		// A link with its decision swapped is not valid.
		forged := strings.Replace(link, "d="+map[bool]string{true: "approve", false: "deny"}[approve], "d="+map[bool]string{true: "deny", false: "approve"}[approve], 1)
		if code, _ := post(t, forged); code != http.StatusForbidden {
			t.Errorf("forged link: HTTP %d", code)
		}
		// GET shows the call and settles nothing.
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "write") || !strings.Contains(string(body), "<form") {
			t.Fatalf("GET link: %d %s", resp.StatusCode, body)
		}
		if a, _ := st.GetApproval(context.Background(), n.ID); a.Status != store.ApprovalPending {
			t.Fatalf("GET settled the approval: %s", a.Status)
		}
		if code, _ := post(t, link); code != http.StatusOK {
			t.Fatalf("POST link: HTTP %d", code)
		}
		err = <-done
		if approve != (err == nil) {
			t.Fatalf("approve %v: %v", approve, err)
		}
		// Single use: neither link settles again.
		if code, _ := post(t, link); code != http.StatusConflict {
			t.Errorf("second use: HTTP %d", code)
		}
		if code, _ := post(t, other); code != http.StatusConflict {
			t.Errorf("the other link after settlement: HTTP %d", code)
		}
		a, _ := st.GetApproval(context.Background(), n.ID)
		if a.Via != "link" || a.Approver != "signed link" {
			t.Errorf("settled %+v", a)
		}
	}
	if u.n() != 1 {
		t.Errorf("upstream saw %d calls, want 1", u.n())
	}

	// Expired links.
	done := make(chan error, 1)
	go func() { _, err := h.Handle(context.Background(), call(`{"late":1}`, nil)); done <- err }()
	n := <-notices
	off.Store(int64(time.Hour))
	if code, _ := post(t, n.ApproveURL); code != http.StatusForbidden {
		t.Errorf("expired link: HTTP %d", code)
	}
	<-done
}

func post(t *testing.T, link string) (int, string) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm(u.Scheme+"://"+u.Host+u.Path, u.Query())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestWebhookConfig(t *testing.T) {
	for _, w := range []WebhookConfig{
		{URL: "", BaseURL: "https://gw"},
		{URL: "ftp://x", BaseURL: "https://gw"},
		{URL: "https://hook", BaseURL: "https://gw/path"},
		{URL: "https://hook", BaseURL: ""},
	} {
		if _, err := Setup(Config{KeyFile: filepath.Join(t.TempDir(), "k"), Webhook: &w}, nil); err == nil {
			t.Errorf("webhook %+v accepted", w)
		}
	}
}
