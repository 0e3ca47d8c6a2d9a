package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/store/postgres/pgtest"
)

// roundRobin is the load balancer of the fleet tests: it sends each request to the next
// replica in turn, with no session affinity, and skips a replica it cannot connect to (as
// a load balancer's health checks would).
type roundRobin struct {
	backends []string
	next     atomic.Uint64
	served   []atomic.Int64
	client   *http.Client
}

func newRoundRobin(t *testing.T, backends ...string) (*roundRobin, string) {
	rr := &roundRobin{backends: backends, served: make([]atomic.Int64, len(backends)),
		client: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}}
	srv := httptest.NewServer(rr)
	t.Cleanup(srv.Close)
	return rr, srv.URL + "/mcp"
}

func (rr *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	start := rr.next.Add(1)
	var last error
	for i := range rr.backends {
		n := int(start+uint64(i)) % len(rr.backends)
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, rr.backends[n]+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		req.Host = r.Host
		resp, err := rr.client.Do(req)
		if err != nil {
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" {
				last = err
				continue // that replica is down: the next one
			}
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		rr.served[n].Add(1)
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		fl, _ := w.(http.Flusher)
		buf := make([]byte, 32<<10)
		for {
			k, err := resp.Body.Read(buf)
			if k > 0 {
				w.Write(buf[:k])
				if fl != nil {
					fl.Flush()
				}
			}
			if err != nil {
				break
			}
		}
		resp.Body.Close()
		return
	}
	http.Error(w, fmt.Sprintf("no replica answered: %v", last), http.StatusBadGateway)
}

// startFleet starts two replicas sharing one PostgreSQL store, with fleet session
// forwarding, in front of one upstream, and a round-robin load balancer before them.
func startFleet(t *testing.T, guards string) (a, b *Gateway, rr *roundRobin, lbURL string) {
	t.Helper()
	return startFleetWith(t, guards, "", "")
}

// startFleetWith is startFleet with more top-level YAML for each replica (extraA, extraB).
func startFleetWith(t *testing.T, guards, extraA, extraB string) (a, b *Gateway, rr *roundRobin, lbURL string) {
	t.Helper()
	dsn := pgtest.Schema(t)
	key := make([]byte, 32)
	rand.Read(key)
	upstream := startEverythingHTTP(t)
	cfg := GatewayConfig{
		StoreDSN: dsn,
		Servers:  []ServerConfig{{Name: "everything", URL: upstream}},
		Extra:    fmt.Sprintf("fleet: {advertise: \"http://{{listen}}\", key: %s}\n", base64.StdEncoding.EncodeToString(key)),
		Guards:   guards,
	}
	common := cfg.Extra
	cfg.Extra = common + extraA
	a = startServe(t, cfg)
	cfg.Extra = common + extraB
	b = startServe(t, cfg)
	rr, lbURL = newRoundRobin(t, a.Base, b.Base)
	return a, b, rr, lbURL
}

// Two replicas behind a load balancer without affinity: a legacy session opened on one
// replica is served whichever replica a request reaches, and the conformance suite passes
// through the pair as it does directly.
func TestFleetSessionsWithoutAffinity(t *testing.T) {
	requireE2E(t)
	requireFile(t, everythingBin)
	suite := conformanceSuites[0]
	requireFile(t, suite.entry())
	t.Parallel()
	_, _, rr, lb := startFleet(t, "")

	c := mustInit(t, lb)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := 0; i < 10; i++ {
		m, err := c.CallTool(ctx, "test_simple_text", nil)
		if err != nil || m.Error != nil {
			t.Fatalf("call %d in a session, alternating replicas: %v %v", i, err, m.errorOrNil())
		}
	}
	if rr.served[0].Load() < 5 || rr.served[1].Load() < 5 {
		t.Fatalf("the load balancer sent %d and %d requests to the replicas; want both used", rr.served[0].Load(), rr.served[1].Load())
	}

	base := runConformance(t, suite, startEverythingHTTP(t))
	got := runConformance(t, suite, lb)
	t.Logf("conformance %s: direct %d checks pass (%s); through two replicas without affinity %d (%s)",
		suite.version, base.total(), statusLine(base), got.total(), statusLine(got))
	if lost := diffPassed(base.passed, got.passed); len(lost) > 0 {
		t.Errorf("%d checks pass directly but fail through the fleet:\n  %s", len(lost), strings.Join(lost, "\n  "))
	}
}

// Killing a replica under load: clients whose sessions it held start new ones on the
// other replica and go on, and every call a client saw answered is in the shared audit
// trail, whose chains (one per replica process) verify together.
func TestFleetReplicaKilledUnderLoad(t *testing.T) {
	requireE2E(t)
	requireFile(t, everythingBin)
	t.Parallel()
	a, b, _, lb := startFleet(t, "  audit:\n    arguments: full\n")

	const workers = 8
	var (
		mu       sync.Mutex
		answered []string
		reinits  atomic.Int64
		killed   atomic.Bool
		after    atomic.Int64 // calls answered after the kill
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *HTTPClient
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if c == nil {
					c = newHTTPClient(lb)
					if _, err := c.Initialize(ctx); err != nil {
						c = nil
						time.Sleep(50 * time.Millisecond)
						continue
					}
				}
				tag := fmt.Sprintf("fleet-w%d-c%d", w, i)
				m, err := c.CallTool(ctx, "test_simple_text", map[string]any{"padding": tag})
				if err != nil || m.Error != nil {
					// The session's replica is gone (404) or the call was cut off.
					c = nil
					reinits.Add(1)
					continue
				}
				mu.Lock()
				answered = append(answered, tag)
				mu.Unlock()
				if killed.Load() {
					after.Add(1)
				}
			}
		}()
	}
	time.Sleep(2 * time.Second)
	if err := a.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed.Store(true)
	// Go on until the surviving replica has answered a good number of calls.
	deadline := time.Now().Add(90 * time.Second)
	for after.Load() < 200 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if after.Load() < 200 {
		t.Fatalf("after the kill only %d calls were answered; clients did not move to the other replica", after.Load())
	}
	t.Logf("%d calls answered, %d after replica A was killed; %d sessions restarted", len(answered), after.Load(), reinits.Load())

	out, err := exec.CommandContext(ctx, portcullisBin, "audit", "search", "--store", "--config", b.Config, "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("audit search: %v\n%s", err, out)
	}
	recorded := map[string]bool{}
	for _, line := range bytes.Split(out, []byte("\n")) {
		var e struct {
			Kind      string          `json:"kind"`
			Decision  string          `json:"decision"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if json.Unmarshal(line, &e) != nil || e.Kind != "response" || e.Decision != "allowed" {
			continue
		}
		var args struct {
			Padding string `json:"padding"`
		}
		if json.Unmarshal(e.Arguments, &args) == nil && args.Padding != "" {
			recorded[args.Padding] = true
		}
	}
	var missing []string
	for _, tag := range answered {
		if !recorded[tag] {
			missing = append(missing, tag)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d answered calls are not in the audit trail, e.g. %v", len(missing), len(answered), missing[:min(5, len(missing))])
	}
	vout, err := exec.CommandContext(ctx, portcullisBin, "audit", "verify", "--store", "--config", b.Config).CombinedOutput()
	if err != nil {
		t.Fatalf("audit verify over both replicas' chains: %v\n%s", err, vout)
	}
	t.Logf("audit verify: %s", strings.TrimSpace(string(vout)))
}

// The dashboard of one replica shows, in its live feed, the calls another replica of the
// fleet serves (both record into the shared PostgreSQL store).
func TestFleetDashboardLiveFeed(t *testing.T) {
	requireE2E(t)
	admin := func() (string, string) {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		return addr, fmt.Sprintf("admin:\n  listen: %q\n  roles: {admin: [secops], viewer: [auditors]}\n", addr)
	}
	_, extraA := admin()
	adminB, extraB := admin()
	a, _, _, _ := startFleetWith(t, "", extraA, extraB)
	out, err := cli(t, "keys", "create", "--config", a.Config, "--name", "vera", "--groups", "auditors")
	key := regexp.MustCompile(`pc_[A-Za-z0-9_-]+`).FindString(out)
	if err != nil || key == "" {
		t.Fatalf("keys create: %v\n%s", err, out)
	}

	// Log in to replica B's dashboard (the session cookie is Secure, so it is carried by
	// hand over this plain loopback connection).
	base := "http://" + adminB
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the login page:\n%s", page)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(url.Values{"csrf": {string(m[1])}, "key": {key}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) == 0 {
		t.Fatalf("login to replica B's dashboard: %s", resp.Status)
	}
	req, _ = http.NewRequest(http.MethodGet, base+"/live/events", nil)
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	feed, err := hc.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Body.Close()
	if feed.StatusCode != http.StatusOK {
		t.Fatalf("live feed of replica B: %s", feed.Status)
	}
	r := bufio.NewReader(feed.Body)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(l, ": connected") {
			break
		}
	}

	// A call served by replica A only.
	mustToolText(t, mustInit(t, a.URL), "test_simple_text", nil)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("replica B's feed never showed the call replica A served: %v", err)
		}
		data, ok := strings.CutPrefix(l, "data: ")
		if !ok {
			continue
		}
		var it struct{ Tool, Kind, Decision, Server string }
		if err := json.Unmarshal([]byte(data), &it); err != nil {
			t.Fatal(err)
		}
		if it.Tool == "test_simple_text" && it.Kind == "response" {
			if it.Decision != "allowed" || it.Server != "everything" {
				t.Errorf("the call in replica B's feed: %+v", it)
			}
			return
		}
	}
}
