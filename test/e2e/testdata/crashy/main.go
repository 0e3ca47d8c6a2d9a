// Command crashy is a tiny MCP server on stdio for the end-to-end fault tests. It answers
// initialize and tools/list, and has these tools:
//
//	echo   returns its "message" argument as text
//	pid    returns its process id as text (to tell a restarted server from the first one)
//	crash  exits with status 1 at once, without answering
//	sleep  sleeps 10 minutes before answering
//	slow   sleeps 2 seconds, then answers "slow done"
//
// When CRASHY_DIR is set it leaves marker files there, so a test can see what reached it:
// "call-<tool>" when a tools/call arrives, "cancelled" (holding the params) on
// notifications/cancelled, "stdin-closed" when its input ends, "sigterm" on SIGTERM.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

type message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  any             `json:"result,omitempty"`
	Error   any             `json:"error,omitempty"`
}

var (
	outMu sync.Mutex
	out   = bufio.NewWriter(os.Stdout)
)

func send(m message) {
	m.JSONRPC = "2.0"
	b, _ := json.Marshal(m)
	outMu.Lock()
	defer outMu.Unlock()
	out.Write(b)
	out.WriteByte('\n')
	out.Flush()
}

func mark(name, content string) {
	dir := os.Getenv("CRASHY_DIR")
	if dir == "" {
		return
	}
	// Write then rename, so a reader never sees a half-written marker.
	tmp := filepath.Join(dir, "."+name+".tmp"+strconv.Itoa(os.Getpid()))
	if os.WriteFile(tmp, []byte(content), 0o644) == nil {
		os.Rename(tmp, filepath.Join(dir, name))
	}
}

func text(s string) map[string]any {
	return map[string]any{"content": []map[string]any{{"type": "text", "text": s}}}
}

var tools = []map[string]any{
	{"name": "echo", "description": "Echoes message.", "inputSchema": map[string]any{"type": "object", "properties": map[string]any{"message": map[string]any{"type": "string"}}}},
	{"name": "pid", "description": "Returns the server's process id.", "inputSchema": map[string]any{"type": "object"}},
	{"name": "crash", "description": "Exits at once with status 1.", "inputSchema": map[string]any{"type": "object"}},
	{"name": "sleep", "description": "Sleeps 10 minutes.", "inputSchema": map[string]any{"type": "object"}},
	{"name": "slow", "description": "Sleeps 2 seconds.", "inputSchema": map[string]any{"type": "object"}},
}

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		mark("sigterm", "")
		os.Exit(0)
	}()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for in.Scan() {
		var m message
		if err := json.Unmarshal(in.Bytes(), &m); err != nil {
			fmt.Fprintf(os.Stderr, "crashy: bad message: %v\n", err)
			continue
		}
		handle(m)
	}
	mark("stdin-closed", "")
	fmt.Fprintln(os.Stderr, "crashy: stdin closed; exiting")
}

func handle(m message) {
	switch m.Method {
	case "initialize":
		var p struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		json.Unmarshal(m.Params, &p)
		if p.ProtocolVersion == "" {
			p.ProtocolVersion = "2025-06-18"
		}
		send(message{ID: m.ID, Result: map[string]any{
			"protocolVersion": p.ProtocolVersion,
			"capabilities":    map[string]any{"tools": map[string]any{}},
			"serverInfo":      map[string]any{"name": "crashy", "version": "1.0.0"},
		}})
	case "ping":
		send(message{ID: m.ID, Result: map[string]any{}})
	case "tools/list":
		send(message{ID: m.ID, Result: map[string]any{"tools": tools}})
	case "tools/call":
		var p struct {
			Name      string         `json:"name"`
			Arguments map[string]any `json:"arguments"`
		}
		json.Unmarshal(m.Params, &p)
		mark("call-"+p.Name, string(m.ID))
		go call(m.ID, p.Name, p.Arguments)
	case "notifications/cancelled":
		mark("cancelled", string(m.Params))
	default:
		if m.ID != nil && m.Method != "" {
			send(message{ID: m.ID, Error: map[string]any{"code": -32601, "message": "method not found: " + m.Method}})
		}
	}
}

func call(id json.RawMessage, name string, args map[string]any) {
	switch name {
	case "echo":
		msg, _ := args["message"].(string)
		send(message{ID: id, Result: text(msg)})
	case "pid":
		send(message{ID: id, Result: text(strconv.Itoa(os.Getpid()))})
	case "crash":
		fmt.Fprintln(os.Stderr, "crashy: crashing as asked")
		os.Exit(1)
	case "sleep":
		time.Sleep(10 * time.Minute)
		send(message{ID: id, Result: text("slept")})
	case "slow":
		time.Sleep(2 * time.Second)
		send(message{ID: id, Result: text("slow done")})
	default:
		send(message{ID: id, Result: map[string]any{"isError": true, "content": []map[string]any{{"type": "text", "text": "unknown tool " + name}}}})
	}
}
