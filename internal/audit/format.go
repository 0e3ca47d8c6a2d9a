package audit

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Format turns a sealed event into the bytes a remote sink sends: one line, no newline.
type Format func(dst []byte, e *Event) []byte

// ProductVersion is the version CEF and OCSF records name (set by the command line).
var ProductVersion = "dev"

// FormatByName returns "json" (the canonical line), "cef" or "ocsf".
func FormatByName(name string) (Format, error) {
	switch strings.ToLower(name) {
	case "", "json":
		return FormatJSON, nil
	case "cef":
		return FormatCEF, nil
	case "ocsf":
		return FormatOCSF, nil
	}
	return nil, fmt.Errorf("unknown format %q (want json, cef or ocsf)", name)
}

// FormatJSON is the canonical encoding: what the JSONL file stores and Verify checks.
func FormatJSON(dst []byte, e *Event) []byte { return e.AppendCanonical(dst) }

// Severity maps an event to a 0..10 scale (CEF): 3 for information, 6 for a refusal, 8
// for an error, 10 for an alert.
func Severity(e *Event) int {
	switch e.Code[len(e.Code)-1] {
	case 'W':
		return 6
	case 'E':
		return 8
	case 'A':
		return 10
	}
	return 3
}

var cefHeader = strings.NewReplacer(`\`, `\\`, `|`, `\|`, "\n", " ", "\r", " ")
var cefValue = strings.NewReplacer(`\`, `\\`, `=`, `\=`, "\n", `\n`, "\r", `\r`)

// FormatCEF writes ArcSight Common Event Format (CEF:0). Signature ID is the event code;
// the chain (seq, prev, hash) travels in custom fields so that a SIEM copy can anchor the
// local trail.
func FormatCEF(dst []byte, e *Event) []byte {
	name := e.Kind
	if e.Method != "" {
		name = e.Kind + " " + e.Method
	}
	if e.Decision != "" {
		name += " " + e.Decision
	}
	dst = append(dst, "CEF:0|Portcullis|Portcullis|"...)
	dst = append(dst, cefHeader.Replace(ProductVersion)...)
	dst = append(dst, '|')
	dst = append(dst, cefHeader.Replace(e.Code)...)
	dst = append(dst, '|')
	dst = append(dst, cefHeader.Replace(name)...)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(Severity(e)), 10)
	dst = append(dst, '|')
	dst = append(dst, "rt="...)
	dst = strconv.AppendInt(dst, e.Time.UnixMilli(), 10)
	kv := func(k, v string) {
		if v != "" {
			dst = append(dst, ' ')
			dst = append(dst, k...)
			dst = append(dst, '=')
			dst = append(dst, cefValue.Replace(v)...)
		}
	}
	kv("externalId", e.ID)
	kv("act", e.Decision)
	kv("suser", e.Principal)
	kv("cs1Label", "server")
	kv("cs1", e.Server)
	kv("cs2Label", "tool")
	kv("cs2", e.Tool)
	kv("cs3Label", "method")
	kv("cs3", e.Method)
	kv("cs4Label", "guard")
	kv("cs4", e.Guard)
	kv("cs5Label", "session")
	kv("cs5", e.Session)
	kv("cs6Label", "incident")
	kv("cs6", e.Incident)
	kv("cn1Label", "seq")
	kv("cn1", strconv.FormatUint(e.Seq, 10))
	if e.LatencyMicros > 0 {
		kv("cn2Label", "latency_us")
		kv("cn2", strconv.FormatInt(e.LatencyMicros, 10))
	}
	if e.ErrorCode != 0 {
		kv("cn3Label", "error_code")
		kv("cn3", strconv.Itoa(e.ErrorCode))
	}
	kv("deviceDirection", map[string]string{"inbound": "0", "outbound": "1"}[e.Direction])
	kv("requestMethod", e.Method)
	kv("msg", e.Message)
	if len(e.Findings) > 0 {
		var parts []string
		for _, f := range e.Findings {
			parts = append(parts, f.Severity+" "+f.Detector+" "+f.Pointer)
		}
		kv("reason", strings.Join(parts, "; "))
	}
	kv("flexString1Label", "prev")
	kv("flexString1", e.Prev)
	kv("flexString2Label", "hash")
	kv("flexString2", e.Hash)
	return dst
}

// FormatOCSF writes an OCSF 1.3 API Activity event (class 6003).
func FormatOCSF(dst []byte, e *Event) []byte {
	status, statusID := "Success", 1
	if e.Decision == Denied || e.Decision == Failed {
		status, statusID = "Failure", 2
	}
	if e.Kind == KindRequest || e.Kind == KindSystem || (e.Kind == KindAdmin && e.Decision == "") {
		status, statusID = "Unknown", 0
	}
	sev := map[int]int{3: 1, 6: 3, 8: 4, 10: 5}[Severity(e)] // Informational, Medium, High, Critical
	unmapped := map[string]any{"code": e.Code, "kind": e.Kind, "seq": e.Seq, "prev": e.Prev, "hash": e.Hash}
	for k, v := range map[string]string{"guard": e.Guard, "incident": e.Incident, "decision": e.Decision,
		"direction": e.Direction, "arguments_hmac": e.ArgumentsHMAC, "result_hmac": e.ResultHMAC} {
		if v != "" {
			unmapped[k] = v
		}
	}
	if len(e.Findings) > 0 {
		unmapped["findings"] = e.Findings
	}
	if len(e.Arguments) > 0 {
		unmapped["arguments"] = e.Arguments
	}
	if len(e.Result) > 0 {
		unmapped["result"] = e.Result
	}
	rec := map[string]any{
		"class_uid":     6003,
		"class_name":    "API Activity",
		"category_uid":  6,
		"category_name": "Application Activity",
		"activity_id":   99,
		"activity_name": e.Method,
		"type_uid":      600399,
		"time":          e.Time.UnixMilli(),
		"severity_id":   sev,
		"status":        status,
		"status_id":     statusID,
		"metadata": map[string]any{
			"version":    "1.3.0",
			"uid":        e.ID,
			"log_name":   "portcullis-audit",
			"event_code": e.Code,
			"product":    map[string]any{"name": "Portcullis", "vendor_name": "Portcullis", "version": ProductVersion},
		},
		"api": map[string]any{
			"operation": e.Method,
			"request":   map[string]any{"uid": e.RequestID},
			"service":   map[string]any{"name": e.Server},
		},
		"actor":    map[string]any{"user": map[string]any{"uid": e.Principal, "name": e.Principal}, "session": map[string]any{"uid": e.Session}},
		"unmapped": unmapped,
	}
	if e.Tool != "" {
		rec["resources"] = []any{map[string]any{"name": e.Tool, "type": "mcp"}}
	}
	if e.Message != "" {
		rec["message"] = e.Message
	}
	if e.ErrorCode != 0 {
		rec["status_code"] = strconv.Itoa(e.ErrorCode)
		rec["status_detail"] = e.Message
	}
	if e.LatencyMicros > 0 {
		rec["duration"] = e.LatencyMicros / 1000
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Appendf(dst, `{"class_uid":6003,"metadata":{"uid":%q},"message":"unencodable event"}`, e.ID)
	}
	return append(dst, b...)
}
