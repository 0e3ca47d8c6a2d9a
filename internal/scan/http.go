package scan

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/clientconfig"
	"github.com/portcullis-mcp/portcullis/internal/detect"
)

// evilOrigin is the Origin of a page on another site, as a DNS-rebinding attack sends it.
const evilOrigin = "http://rebind.portcullis-scan.invalid"

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"portcullis-scan","version":"1"}}}`

// CheckHTTP probes an HTTP server: authentication, Origin validation, session ids and
// TLS.
func CheckHTTP(ctx context.Context, t Target, opts Options) []Finding {
	var out []Finding
	e := t.Entry
	u, err := url.Parse(e.URL)
	if err != nil {
		return nil
	}
	add := func(rule string, sev detect.Severity, msg, evidence string) {
		out = append(out, Finding{Rule: rule, Severity: sev, Message: msg, Evidence: evidence, Location: t.loc()})
	}
	loopback := isLoopbackHost(u.Hostname())
	if u.Scheme == "https" {
		if f := checkTLS(ctx, u); f != "" {
			add("invalid-tls", detect.High, f, u.Host)
		}
	}
	headers := expandEnv(e.Headers)
	if e.Transport == clientconfig.SSE {
		out = append(out, checkSSE(ctx, t, u, headers, opts)...)
		return out
	}
	// Without the configured credentials.
	ok, sid, status, err := tryInit(ctx, opts.HTTPClient, e.URL, nil, "")
	if err != nil {
		return out // unreachable: the listing reports it
	}
	if ok {
		sev := detect.High
		msg := "the server accepts MCP sessions from anyone who can reach it: no authentication"
		if loopback {
			sev = detect.Medium
			msg = "the server accepts MCP sessions without authentication: any local process (or web page, through DNS rebinding) can use it"
		}
		add("no-auth", sev, msg, fmt.Sprintf("initialize without credentials: HTTP %d", status))
		if weak := weakSession(sid); weak != "" {
			add("weak-session-id", detect.Medium, "the session id is guessable: "+weak, detect.Mask(sid))
		}
	}
	// A foreign Origin, with the credentials (the check must hold for authenticated users).
	ok, sid, status, err = tryInit(ctx, opts.HTTPClient, e.URL, headers, evilOrigin)
	if err == nil && ok {
		sev := detect.Medium
		if loopback {
			sev = detect.High
		}
		add("dns-rebinding", sev, "the server accepts requests from any Origin: a web page can reach it through DNS rebinding",
			fmt.Sprintf("Origin: %s answered HTTP %d", evilOrigin, status))
		if weak := weakSession(sid); weak != "" && !containsRule(out, "weak-session-id") {
			add("weak-session-id", detect.Medium, "the session id is guessable: "+weak, detect.Mask(sid))
		}
	}
	for k := range u.Query() {
		if strings.Contains(strings.ToLower(k), "session") {
			add("session-id-in-url", detect.Medium, "the server's URL carries a session id", k)
		}
	}
	return out
}

func containsRule(fs []Finding, rule string) bool {
	for _, f := range fs {
		if f.Rule == rule {
			return true
		}
	}
	return false
}

// tryInit posts initialize and reports whether the server answered it with a result.
func tryInit(ctx context.Context, c *http.Client, endpoint string, headers map[string]string, origin string) (ok bool, session string, status int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(initBody))
	if err != nil {
		return false, "", 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, "", 0, err
	}
	defer resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	defer func() {
		if sid != "" { // end the session the probe opened
			dr, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodDelete, endpoint, nil)
			if dr != nil {
				dr.Header.Set("Mcp-Session-Id", sid)
				for k, v := range headers {
					dr.Header.Set(k, v)
				}
				if r, err := c.Do(dr); err == nil {
					r.Body.Close()
				}
			}
		}
	}()
	if resp.StatusCode/100 != 2 {
		return false, "", resp.StatusCode, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return bytes.Contains(body, []byte(`"result"`)) && bytes.Contains(body, []byte(`"protocolVersion"`)), sid, resp.StatusCode, nil
}

// weakSession says why a session id is guessable ("" when it is not).
func weakSession(id string) string {
	if id == "" {
		return ""
	}
	if len(id) < 16 {
		return fmt.Sprintf("only %d characters", len(id))
	}
	digits := true
	for _, c := range id {
		if c < '0' || c > '9' {
			digits = false
		}
	}
	if digits && len(id) < 39 {
		return "a number of fewer than 128 bits"
	}
	counts := map[rune]int{}
	for _, c := range id {
		counts[c]++
	}
	var h float64
	for _, n := range counts {
		p := float64(n) / float64(len(id))
		h -= p * math.Log2(p)
	}
	if h*float64(len(id)) < 64 {
		return "too little randomness"
	}
	return ""
}

func checkSSE(ctx context.Context, t Target, u *url.URL, headers map[string]string, opts Options) []Finding {
	var out []Finding
	add := func(rule string, sev detect.Severity, msg, evidence string) {
		out = append(out, Finding{Rule: rule, Severity: sev, Message: msg, Evidence: evidence, Location: t.loc()})
	}
	loopback := isLoopbackHost(u.Hostname())
	endpoint, status, err := sseEndpoint(ctx, opts.HTTPClient, u.String(), nil, "")
	if err == nil && endpoint != "" {
		sev := detect.High
		if loopback {
			sev = detect.Medium
		}
		add("no-auth", sev, "the SSE endpoint opens sessions without authentication", fmt.Sprintf("GET without credentials: HTTP %d", status))
	}
	ep2, status, err := sseEndpoint(ctx, opts.HTTPClient, u.String(), headers, evilOrigin)
	if err == nil && ep2 != "" {
		sev := detect.Medium
		if loopback {
			sev = detect.High
		}
		add("dns-rebinding", sev, "the server accepts requests from any Origin: a web page can reach it through DNS rebinding",
			fmt.Sprintf("Origin: %s answered HTTP %d", evilOrigin, status))
	}
	if endpoint == "" {
		endpoint = ep2
	}
	if endpoint != "" {
		if eu, err := url.Parse(endpoint); err == nil {
			for k, vs := range eu.Query() {
				lk := strings.ToLower(k)
				if strings.Contains(lk, "session") || lk == "sid" {
					add("session-id-in-url", detect.Medium, "the server puts the session id in the message URL ("+k+"), where logs and proxies keep it", detect.Mask(strings.Join(vs, ",")))
					if weak := weakSession(strings.Join(vs, "")); weak != "" {
						add("weak-session-id", detect.Medium, "the session id is guessable: "+weak, detect.Mask(strings.Join(vs, "")))
					}
				}
			}
		}
	}
	return out
}

// sseEndpoint opens a legacy SSE stream and returns the data of its endpoint event.
func sseEndpoint(ctx context.Context, c *http.Client, endpoint string, headers map[string]string, origin string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return "", resp.StatusCode, nil
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<10))
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:") && event == "endpoint":
			return strings.TrimSpace(strings.TrimPrefix(line, "data:")), resp.StatusCode, nil
		}
	}
	return "", resp.StatusCode, errors.New("no endpoint event")
}

// checkTLS returns why the server's TLS is not valid ("" when it is).
func checkTLS(ctx context.Context, u *url.URL) string {
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS10}}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such host") {
			return "" // unreachable, not a TLS problem: the listing reports it
		}
		return "TLS handshake failed: " + err.Error()
	}
	defer conn.Close()
	if v := conn.(*tls.Conn).ConnectionState().Version; v < tls.VersionTLS12 {
		return fmt.Sprintf("the server negotiates TLS %s; 1.2 or later is needed", tls.VersionName(v))
	}
	return ""
}
