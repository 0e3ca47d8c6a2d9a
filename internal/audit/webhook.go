package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// WebhookOptions parameterize a webhook deliverer (for a SOAR).
type WebhookOptions struct {
	URL string
	// Secret signs each body: X-Portcullis-Signature is "sha256=" and the hex HMAC-SHA256
	// under Secret of the X-Portcullis-Timestamp value, a dot, and the body.
	Secret []byte
	Header http.Header // extra headers (for example an Authorization for the receiver)
	Format Format      // default FormatJSON
	// ContentType of the body (default application/json; text/plain for CEF).
	ContentType string
	Client      *http.Client
	Now         func() time.Time
	Timeout     time.Duration
}

// Webhook posts one event per request.
type Webhook struct {
	o           WebhookOptions
	contentType string
}

// Header names of webhook requests.
const (
	HeaderEventID   = "X-Portcullis-Event-Id"
	HeaderTimestamp = "X-Portcullis-Timestamp"
	HeaderSignature = "X-Portcullis-Signature"
)

// NewWebhook returns a webhook deliverer.
func NewWebhook(o WebhookOptions) (*Webhook, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook url %q: want an http or https URL", o.URL)
	}
	if len(o.Secret) == 0 {
		return nil, fmt.Errorf("webhook: a secret is required to sign bodies")
	}
	if o.Format == nil {
		o.Format = FormatJSON
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ContentType == "" {
		o.ContentType = "application/json"
	}
	return &Webhook{o: o, contentType: o.ContentType}, nil
}

// Sign returns the signature header value for a body sent at timestamp ts.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Name implements Deliverer.
func (w *Webhook) Name() string { return "webhook" }

// Encode implements Deliverer.
func (w *Webhook) Encode(dst []byte, e *Event) []byte { return w.o.Format(dst, e) }

// Deliver implements Deliverer: a 2xx answer is a delivery; anything else is retried.
func (w *Webhook) Deliver(ctx context.Context, id string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.o.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range w.o.Header {
		req.Header[k] = v
	}
	ts := strconv.FormatInt(w.o.Now().Unix(), 10)
	req.Header.Set("Content-Type", w.contentType)
	req.Header.Set(HeaderEventID, id)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(w.o.Secret, ts, body))
	resp, err := w.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook: %s answered %s", w.o.URL, resp.Status)
	}
	return nil
}

// Probe implements Deliverer: the receiver's address accepts connections.
func (w *Webhook) Probe(ctx context.Context) error {
	u, _ := url.Parse(w.o.URL)
	host := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			host = net.JoinHostPort(u.Hostname(), "443")
		} else {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", host)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	return c.Close()
}

// Close implements Deliverer.
func (w *Webhook) Close() error {
	w.o.Client.CloseIdleConnections()
	return nil
}
