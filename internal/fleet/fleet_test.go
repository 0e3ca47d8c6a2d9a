package fleet

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var key = bytes.Repeat([]byte("k"), 32)

func TestNewRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		advertise string
		key       []byte
		want      string
	}{
		{"10.0.0.5:8931", key, "base URL"},
		{"http://10.0.0.5:8931/mcp", key, "base URL"},
		{"ftp://10.0.0.5", key, "base URL"},
		{"http://u:p@10.0.0.5:8931", key, "base URL"},
		{"http://10.0.0.5:8931", []byte("short"), "at least 32 bytes"},
	} {
		if _, err := New(tc.advertise, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q): %v, want an error with %q", tc.advertise, err, tc.want)
		}
	}
}

func TestOwner(t *testing.T) {
	a, _ := New("http://10.0.0.1:8931", key)
	b, _ := New("http://10.0.0.2:8931/", key)
	other, _ := New("http://10.0.0.1:8931", bytes.Repeat([]byte("x"), 32))
	id := a.NewID()
	if id == a.NewID() {
		t.Fatal("two ids are equal")
	}
	for _, c := range id {
		if c < 0x21 || c > 0x7e {
			t.Fatalf("id %q has a character outside visible ASCII", id)
		}
	}
	if o, err := b.Owner(id); err != nil || o != "http://10.0.0.1:8931" {
		t.Fatalf("b.Owner(a's id) = %q, %v", o, err)
	}
	if _, err := other.Owner(id); err != ErrNotFleetID {
		t.Fatalf("a replica of another fleet accepted the id: %v", err)
	}
	// A client that edits the owner part to steer the replica elsewhere is not forwarded.
	parts := strings.Split(id, ".")
	forged := parts[0] + "." + strings.TrimSuffix(b.enc, "") + "." + parts[2]
	if _, err := b.Owner(forged); err != ErrNotFleetID {
		t.Fatalf("forged owner accepted: %v", err)
	}
	for _, bad := range []string{"", "abc", "a.b", "a.b.c", id + "x"} {
		if _, err := a.Owner(bad); err == nil {
			t.Errorf("Owner(%q) accepted", bad)
		}
	}
}

// Two replicas: a request for a session of A that reaches B is answered by A, with the
// client's headers and body, and B's own sessions and sessionless requests stay on B.
func TestHandlerForwardsToOwner(t *testing.T) {
	var seenByA []*http.Request
	var bodyAtA string
	aSrv := httptest.NewServer(nil)
	defer aSrv.Close()
	a, _ := New(aSrv.URL, key)
	aSrv.Config.Handler = a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenByA = append(seenByA, r)
		b, _ := io.ReadAll(r.Body)
		bodyAtA = string(b)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: from-a\n\n")
	}), nil)
	bSrv := httptest.NewServer(nil)
	defer bSrv.Close()
	b, _ := New(bSrv.URL, key)
	bSrv.Config.Handler = b.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "from-b")
	}), nil)

	post := func(sid string) (int, string) {
		req, _ := http.NewRequest("POST", bSrv.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Authorization", "Bearer pc_x_y")
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if _, body := post(a.NewID()); body != "data: from-a\n\n" {
		t.Fatalf("a session of A at B: %q, want A's answer", body)
	}
	if len(seenByA) != 1 {
		t.Fatalf("A saw %d requests, want 1", len(seenByA))
	}
	r := seenByA[0]
	if r.Header.Get("Authorization") != "Bearer pc_x_y" || r.URL.Path != "/mcp" || bodyAtA != `{"jsonrpc":"2.0","id":1,"method":"ping"}` {
		t.Fatalf("A got %s %v %q", r.URL.Path, r.Header, bodyAtA)
	}
	if r.Header.Get(HeaderForwarded) != b.Self() {
		t.Fatalf("forwarded request carries %q, want B's URL", r.Header.Get(HeaderForwarded))
	}
	if r.Host != strings.TrimPrefix(bSrv.URL, "http://") {
		t.Fatalf("A saw Host %q, want the client's %q", r.Host, bSrv.URL)
	}
	if _, body := post(b.NewID()); body != "from-b" {
		t.Fatalf("B's own session: %q", body)
	}
	if _, body := post(""); body != "from-b" {
		t.Fatalf("no session: %q", body)
	}
	if _, body := post("not-a-fleet-id"); body != "from-b" {
		t.Fatalf("a foreign id: %q", body)
	}

	// The owner is gone: 404, so the client starts a new session.
	aSrv.Close()
	if code, body := post(a.NewID()); code != http.StatusNotFound || !strings.Contains(body, "initialize a new one") {
		t.Fatalf("owner gone: %d %q, want 404 asking for a new session", code, body)
	}
}
