package audit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// OTLPOptions parameterize an OpenTelemetry logs deliverer: each event is one log record,
// POSTed to an OTLP/HTTP collector as JSON (<endpoint>/v1/logs).
type OTLPOptions struct {
	// Endpoint is the collector's base URL (http://127.0.0.1:4318).
	Endpoint    string
	Header      http.Header // for example an API key
	ServiceName string      // service.name (default portcullis)
	Client      *http.Client
	Timeout     time.Duration
}

// OTLP sends events as OpenTelemetry log records. A record's body is the event's
// canonical line (so that a copy in the log backend can be checked against the trail);
// its attributes are the event's fields, and its trace and span ids are the call's (the
// client's traceparent on a request event, the gateway's span on the outcome), so that
// logs and traces of one call are joined.
type OTLP struct {
	o   OTLPOptions
	url string
}

// NewOTLP returns an OTLP logs deliverer.
func NewOTLP(o OTLPOptions) (*OTLP, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("otlp endpoint %q: want an http or https URL (the collector's OTLP/HTTP port, e.g. http://127.0.0.1:4318)", o.Endpoint)
	}
	if o.ServiceName == "" {
		o.ServiceName = "portcullis"
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout}
	}
	return &OTLP{o: o, url: u.JoinPath("v1", "logs").String()}, nil
}

// Name implements Deliverer.
func (o *OTLP) Name() string { return "otlp" }

// Encode implements Deliverer: an ExportLogsServiceRequest in the OTLP JSON encoding,
// holding the one record.
func (o *OTLP) Encode(dst []byte, e *Event) []byte {
	sevNum, sevText := 9, "INFO"
	switch e.Code[len(e.Code)-1] {
	case 'W':
		sevNum, sevText = 13, "WARN"
	case 'E':
		sevNum, sevText = 17, "ERROR"
	}
	dst = append(dst, `{"resourceLogs":[{"resource":{"attributes":[`...)
	dst = otlpAttr(dst, true, "service.name", o.o.ServiceName)
	dst = otlpAttr(dst, false, "service.version", ProductVersion)
	dst = append(dst, `]},"scopeLogs":[{"scope":{"name":"portcullis.audit"},"logRecords":[{"timeUnixNano":"`...)
	dst = strconv.AppendInt(dst, e.Time.UnixNano(), 10)
	dst = append(dst, `","observedTimeUnixNano":"`...)
	dst = strconv.AppendInt(dst, e.Time.UnixNano(), 10)
	dst = append(dst, `","severityNumber":`...)
	dst = strconv.AppendInt(dst, int64(sevNum), 10)
	dst = append(dst, `,"severityText":"`...)
	dst = append(dst, sevText...)
	dst = append(dst, `","body":{"stringValue":`...)
	dst = jsonrpc.AppendQuote(dst, string(e.AppendCanonical(nil)))
	dst = append(dst, `},"attributes":[`...)
	dst = otlpAttr(dst, true, "event.name", "portcullis.audit."+e.Kind)
	for _, kv := range [...][2]string{
		{"portcullis.event.code", e.Code}, {"portcullis.event.id", e.ID}, {"portcullis.event.hash", e.Hash},
		{"portcullis.event.prev", e.Prev}, {"portcullis.decision", e.Decision}, {"portcullis.guard", e.Guard},
		{"portcullis.incident", e.Incident}, {"portcullis.server", e.Server}, {"portcullis.direction", e.Direction},
		{"portcullis.alert", e.Alert}, {"enduser.id", e.Principal}, {"mcp.session.id", e.Session},
		{"mcp.method.name", e.Method}, {"jsonrpc.request.id", e.RequestID}, {"gen_ai.tool.name", toolOf(e)},
	} {
		dst = otlpAttr(dst, false, kv[0], kv[1])
	}
	dst = append(dst, `,{"key":"portcullis.event.seq","value":{"intValue":"`...)
	dst = strconv.AppendUint(dst, e.Seq, 10)
	dst = append(dst, `"}}`...)
	if e.ErrorCode != 0 {
		dst = append(dst, `,{"key":"error.type","value":{"stringValue":"`...)
		dst = strconv.AppendInt(dst, int64(e.ErrorCode), 10)
		dst = append(dst, `"}}`...)
	}
	dst = append(dst, ']')
	if len(e.TraceID) == 32 && len(e.SpanID) == 16 {
		dst = append(dst, `,"traceId":"`...)
		dst = append(dst, e.TraceID...)
		dst = append(dst, `","spanId":"`...)
		dst = append(dst, e.SpanID...)
		dst = append(dst, '"')
	}
	return append(dst, `}]}]}]}`...)
}

func toolOf(e *Event) string {
	if e.Method == "tools/call" {
		return e.Tool
	}
	return ""
}

func otlpAttr(dst []byte, first bool, key, v string) []byte {
	if v == "" {
		return dst
	}
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, `{"key":`...)
	dst = jsonrpc.AppendQuote(dst, key)
	dst = append(dst, `,"value":{"stringValue":`...)
	dst = jsonrpc.AppendQuote(dst, v)
	return append(dst, `}}`...)
}

// Deliver implements Deliverer: a 2xx answer is a delivery (a partial success is logged by
// the collector); anything else is retried.
func (o *OTLP) Deliver(ctx context.Context, id string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range o.o.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("otlp: %w", err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("otlp: %s answered %s: %s", o.url, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// Probe implements Deliverer: the collector's address accepts connections.
func (o *OTLP) Probe(ctx context.Context) error {
	if err := probeURL(ctx, o.url); err != nil {
		return fmt.Errorf("otlp: %w", err)
	}
	return nil
}

// Close implements Deliverer.
func (o *OTLP) Close() error {
	o.o.Client.CloseIdleConnections()
	return nil
}

// probeURL connects to the host of an http or https URL.
func probeURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	return c.Close()
}
