package audit_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
)

// syslogReceiver accepts RFC 6587 octet-counted frames.
type syslogReceiver struct {
	ln    net.Listener
	mu    sync.Mutex
	msgs  []string
	conns []net.Conn
}

func (r *syslogReceiver) stop() {
	r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
}

func newSyslogReceiver(t *testing.T, addr string) *syslogReceiver {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &syslogReceiver{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns = append(r.conns, c)
			r.mu.Unlock()
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					n, err := br.ReadString(' ')
					if err != nil {
						return
					}
					size, err := strconv.Atoi(strings.TrimSpace(n))
					if err != nil {
						t.Errorf("bad frame length %q", n)
						return
					}
					b := make([]byte, size)
					if _, err := io.ReadFull(br, b); err != nil {
						return
					}
					r.mu.Lock()
					r.msgs = append(r.msgs, string(b))
					r.mu.Unlock()
				}
			}()
		}
	}()
	return r
}

func (r *syslogReceiver) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

var rfc5424 = regexp.MustCompile(`^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\d+) (PC\d{4}[IWE]) \[portcullis@32473 id="([0-9a-f]{32})" seq="(\d+)" prev="([0-9a-f]{64})" hash="([0-9a-f]{64})"[^\]]*\] (.*)$`)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSyslogQueued(t *testing.T) {
	rcv := newSyslogReceiver(t, "127.0.0.1:0")
	addr := rcv.ln.Addr().String()
	d, err := audit.NewSyslog(audit.SyslogOptions{Address: addr, Format: audit.FormatCEF})
	if err != nil {
		t.Fatal(err)
	}
	q, err := audit.NewQueued(d, audit.QueueOptions{Dir: t.TempDir(), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	br, err := audit.NewBroker([]audit.Sink{q}, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	for i := range 3 {
		if err := br.Record(context.Background(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "4 messages", func() bool { return len(rcv.messages()) == 4 })
	// The receiver goes away; events queue up; it comes back on the same address.
	rcv.stop()
	time.Sleep(50 * time.Millisecond)
	for i := 3; i < 6; i++ {
		if err := br.Record(context.Background(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	rcv2 := newSyslogReceiver(t, addr)
	defer rcv2.stop()
	waitFor(t, "the queued messages", func() bool { return len(rcv2.messages()) >= 3 })
	time.Sleep(100 * time.Millisecond)
	all := append(rcv.messages(), rcv2.messages()...)
	seen := map[string]bool{}
	for i, m := range all {
		sm := rfc5424.FindStringSubmatch(m)
		if sm == nil {
			t.Fatalf("not RFC 5424: %q", m)
		}
		if seen[sm[7]] {
			t.Errorf("event %s delivered twice", sm[7])
		}
		seen[sm[7]] = true
		if sm[8] != strconv.Itoa(i+1) {
			t.Errorf("message %d has seq %s", i, sm[8])
		}
		if !strings.HasPrefix(sm[11], "CEF:0|Portcullis|Portcullis|") {
			t.Errorf("MSG is not CEF: %s", sm[11])
		}
	}
	if len(all) != 7 {
		t.Errorf("%d messages, want 7", len(all))
	}
}

func TestWebhookQueued(t *testing.T) {
	secret := []byte("s3cret")
	var mu sync.Mutex
	var got []map[string]any
	down := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if sig := audit.Sign(secret, r.Header.Get(audit.HeaderTimestamp), body); sig != r.Header.Get(audit.HeaderSignature) {
			t.Errorf("bad signature %s", r.Header.Get(audit.HeaderSignature))
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("body: %v", err)
		}
		md := m["metadata"].(map[string]any)
		if md["uid"] != r.Header.Get(audit.HeaderEventID) {
			t.Errorf("event id header %s, body %v", r.Header.Get(audit.HeaderEventID), md["uid"])
		}
		got = append(got, m)
	}))
	defer srv.Close()
	d, err := audit.NewWebhook(audit.WebhookOptions{URL: srv.URL, Secret: secret, Format: audit.FormatOCSF})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	q, err := audit.NewQueued(d, audit.QueueOptions{Dir: dir, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	br, err := audit.NewBroker([]audit.Sink{q}, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := br.Record(context.Background(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	// The gateway stops while the receiver is down: the queue survives a restart.
	br.Close()
	q, err = audit.NewQueued(d, audit.QueueOptions{Dir: dir, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	mu.Lock()
	down = false
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 6 {
		t.Fatalf("%d events delivered, want 6", len(got))
	}
	for i, m := range got {
		if m["class_uid"].(float64) != 6003 {
			t.Errorf("not OCSF API Activity: %v", m)
		}
		if seq := m["unmapped"].(map[string]any)["seq"].(float64); int(seq) != i+1 {
			t.Errorf("event %d has seq %v", i, seq)
		}
	}
}

func TestFormats(t *testing.T) {
	e := event(1)
	e.ID = audit.NewID()
	e.Kind = audit.KindResponse
	e.Decision, e.Code, e.Guard, e.Message = audit.Denied, audit.CodeDeniedAuthz, "authz", "a=b|c\nd"
	audit.Seal(e, audit.Position{}, nil)
	cef := string(audit.FormatCEF(nil, e))
	if strings.Count(cef, "|") < 7 || !strings.Contains(cef, `msg=a\=b|c\nd`) || !strings.Contains(cef, "|PC2001W|") || !strings.Contains(cef, "|6|") {
		t.Errorf("CEF: %s", cef)
	}
	var m map[string]any
	if err := json.Unmarshal(audit.FormatOCSF(nil, e), &m); err != nil || m["status"] != "Failure" || m["type_uid"].(float64) != 600399 {
		t.Errorf("OCSF: %v %v", m, err)
	}
}
