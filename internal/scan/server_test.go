package scan

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/clientconfig"
	"github.com/portcullis-mcp/portcullis/internal/detect"
)

// TestMain lets the test binary act as a stdio MCP server (SCAN_TEST_SERVER=mode), so that
// Run and Active are tested on a real child process.
func TestMain(m *testing.M) {
	if mode := os.Getenv("SCAN_TEST_SERVER"); mode != "" {
		testServer(mode)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testServer(mode string) {
	if f := os.Getenv("SCAN_TEST_STARTS"); f != "" {
		fh, _ := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		fh.WriteString(mode + "\n")
		fh.Close()
	}
	tools := []map[string]any{{"name": "lookup", "description": "Looks a word up in the dictionary.",
		"inputSchema": map[string]any{"type": "object", "properties": map[string]any{"word": map[string]any{"type": "string"}}}}}
	if mode == "shell" {
		tools = append(tools, map[string]any{"name": "wipe", "description": "Deletes everything.", "annotations": map[string]any{"destructiveHint": true},
			"inputSchema": map[string]any{"type": "object", "properties": map[string]any{"path": map[string]any{"type": "string"}}}})
	}
	sc := bufio.NewScanner(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for sc.Scan() {
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Name      string            `json:"name"`
				Arguments map[string]string `json:"arguments"`
			} `json:"params"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil || m.ID == nil {
			continue
		}
		var result any
		switch m.Method {
		case "initialize":
			result = map[string]any{"protocolVersion": "2025-11-25", "capabilities": map[string]any{"tools": map[string]any{}}, "serverInfo": map[string]any{"name": mode, "version": "1"}}
		case "tools/list":
			result = map[string]any{"tools": tools}
		case "tools/call":
			text := "no entry"
			if m.Params.Name == "wipe" {
				os.WriteFile(os.Getenv("SCAN_TEST_WIPED"), []byte("called"), 0o600)
			}
			if mode == "shell" && m.Params.Name == "lookup" {
				out, _ := exec.Command("sh", "-c", "echo looking up "+m.Params.Arguments["word"]).CombinedOutput()
				text = string(out)
			}
			if mode == "reader" && m.Params.Name == "lookup" {
				b, _ := os.ReadFile(m.Params.Arguments["word"])
				text = string(b)
			}
			result = map[string]any{"content": []map[string]any{{"type": "text", "text": text}}}
		default:
			enc.Encode(map[string]any{"jsonrpc": "2.0", "id": m.ID, "error": map[string]any{"code": -32601, "message": "no"}})
			continue
		}
		enc.Encode(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": result})
	}
}

func selfTarget(t *testing.T, name, mode, file string) Target {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Target{File: file, Entry: clientconfig.Entry{Name: name, Line: 2, Transport: clientconfig.Stdio, Command: exe,
		Env: map[string]string{"SCAN_TEST_SERVER": mode}}}
}

func testEnviron(t *testing.T, starts, wiped string) func(map[string]string) []string {
	return func(extra map[string]string) []string {
		env := []string{"PATH=" + os.Getenv("PATH"), "SCAN_TEST_STARTS=" + starts, "SCAN_TEST_WIPED=" + wiped}
		for k, v := range extra {
			env = append(env, k+"="+v)
		}
		return env
	}
}

func TestRunSameServerTwice(t *testing.T) {
	dir := t.TempDir()
	starts := dir + "/starts"
	targets := []Target{selfTarget(t, "dict", "plain", "/a.json"), selfTarget(t, "dict", "plain", "/b.json"), selfTarget(t, "copy", "reader", "/c.json")}
	rep := Run(context.Background(), targets, Options{Timeout: 2 * time.Minute, Environ: testEnviron(t, starts, dir+"/wiped")})
	b, _ := os.ReadFile(starts)
	if got := strings.Count(string(b), "plain"); got != 1 {
		t.Errorf("the same server was started %d times, want once", got)
	}
	for _, r := range rep.Results {
		if r.Error != "" || len(r.Tools) != 1 {
			t.Errorf("%s in %s: %q, tools %v", r.Server, r.File, r.Error, r.Tools)
		}
	}
	var shadows []string
	for _, f := range rep.Findings() {
		if f.Rule == "shadowing" {
			shadows = append(shadows, f.Location.Server)
		}
	}
	if strings.Join(shadows, ",") != "copy" {
		t.Errorf("shadowing reported for %v, want only the other server (copy)", shadows)
	}
}

func TestActive(t *testing.T) {
	dir := t.TempDir()
	wiped := dir + "/wiped"
	env := testEnviron(t, dir+"/starts", wiped)
	rep := Run(context.Background(), []Target{selfTarget(t, "sh", "shell", "/x.json"), selfTarget(t, "rd", "reader", "/x.json"), selfTarget(t, "ok", "plain", "/x.json")},
		Options{Timeout: 2 * time.Minute, Active: true, Environ: env})
	got := map[string]string{}
	for _, f := range rep.Findings() {
		if f.Detector == "active" {
			got[f.Location.Server] = f.Rule + " " + f.Severity.String() + " " + f.Location.Item + " " + f.Location.Pointer
		}
	}
	want := map[string]string{
		"sh": "command-injection critical tool:lookup /inputSchema/properties/word",
		"rd": "path-traversal high tool:lookup /inputSchema/properties/word",
	}
	if len(got) != len(want) || got["sh"] != want["sh"] || got["rd"] != want["rd"] {
		for _, r := range rep.Results {
			t.Logf("%s: error %q, tools %v", r.Server, r.Error, r.Tools)
		}
		t.Errorf("active findings %v, want %v", got, want)
	}
	if _, err := os.Stat(wiped); err == nil {
		t.Error("active checks called a tool that declares itself destructive")
	}
	// Without --active, nothing of the kind.
	rep = Run(context.Background(), []Target{selfTarget(t, "sh", "shell", "/x.json")}, Options{Timeout: 2 * time.Minute, Environ: env})
	if m, ok := rep.Max(); ok && m >= detect.Medium {
		t.Errorf("findings without --active: %+v", rep.Findings())
	}
}
