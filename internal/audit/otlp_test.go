package audit_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/audit"
)

// otlpLogs is the part of an OTLP/JSON ExportLogsServiceRequest the tests read.
type otlpLogs struct {
	ResourceLogs []struct {
		Resource struct {
			Attributes []otlpKV `json:"attributes"`
		} `json:"resource"`
		ScopeLogs []struct {
			LogRecords []struct {
				TimeUnixNano   string `json:"timeUnixNano"`
				SeverityNumber int    `json:"severityNumber"`
				Body           struct {
					StringValue string `json:"stringValue"`
				} `json:"body"`
				Attributes []otlpKV `json:"attributes"`
				TraceID    string   `json:"traceId"`
				SpanID     string   `json:"spanId"`
			} `json:"logRecords"`
		} `json:"scopeLogs"`
	} `json:"resourceLogs"`
}

type otlpKV struct {
	Key   string `json:"key"`
	Value struct {
		StringValue string `json:"stringValue"`
		IntValue    string `json:"intValue"`
	} `json:"value"`
}

func TestOTLPLogs(t *testing.T) {
	var mu sync.Mutex
	var got []otlpLogs
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/logs" || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Api-Key") != "k" {
			http.Error(w, "bad request", 400)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var l otlpLogs
		if err := json.Unmarshal(body, &l); err != nil {
			t.Errorf("body: %v\n%s", err, body)
		}
		mu.Lock()
		got = append(got, l)
		mu.Unlock()
	}))
	defer srv.Close()
	d, err := audit.NewOTLP(audit.OTLPOptions{Endpoint: srv.URL, Header: http.Header{"X-Api-Key": {"k"}}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := audit.NewQueued(d, audit.QueueOptions{Dir: t.TempDir(), MinBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	br, err := audit.NewBroker([]audit.Sink{q}, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	e := event(1)
	e.Kind, e.Code, e.Decision = audit.KindResponse, audit.CodeDeniedAuthz, audit.Denied
	e.TraceID, e.SpanID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	if err := br.Record(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 { // PC1900I and the event
		t.Fatalf("%d exports, want 2", len(got))
	}
	rec := got[1].ResourceLogs[0].ScopeLogs[0].LogRecords[0]
	if rec.TraceID != e.TraceID || rec.SpanID != e.SpanID || rec.SeverityNumber != 13 {
		t.Errorf("record %+v", rec)
	}
	attrs := map[string]string{}
	for _, kv := range rec.Attributes {
		attrs[kv.Key] = kv.Value.StringValue + kv.Value.IntValue
	}
	if attrs["portcullis.event.code"] != "PC2001W" || attrs["portcullis.decision"] != "denied" || attrs["portcullis.event.seq"] != "2" {
		t.Errorf("attributes %v", attrs)
	}
	// The body is the sealed line: it verifies on its own.
	if _, ok := audit.LineHash([]byte(rec.Body.StringValue)); !ok {
		t.Errorf("the body is not the sealed event: %s", rec.Body.StringValue)
	}
	if _, err := audit.NewOTLP(audit.OTLPOptions{Endpoint: "collector:4318"}); err == nil {
		t.Error("an endpoint without a scheme was accepted")
	}
}

// A filtered queue gets only the events it wants (a SOAR webhook that takes alerts).
func TestQueueFilter(t *testing.T) {
	var mu sync.Mutex
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ids = append(ids, r.Header.Get(audit.HeaderEventID))
		mu.Unlock()
	}))
	defer srv.Close()
	d, _ := audit.NewWebhook(audit.WebhookOptions{URL: srv.URL, Secret: []byte("s")})
	q, err := audit.NewQueued(d, audit.QueueOptions{Dir: t.TempDir(), Filter: func(e *audit.Event) bool { return e.Kind == audit.KindAlert }})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	br, err := audit.NewBroker([]audit.Sink{q}, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	br.Record(context.Background(), event(1))
	alert := event(2)
	alert.Kind, alert.Code = audit.KindAlert, audit.CodeAlert
	alert.ID = audit.NewID()
	br.Record(context.Background(), alert)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q.Flush(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 1 || ids[0] != alert.ID {
		t.Errorf("delivered %v, want only the alert %s", ids, alert.ID)
	}
}
