package clientconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/tailscale/hujson"
)

// jsonFormat is a JSON file (JSON with comments and trailing commas unless strict) holding
// server objects under one or more member paths. Most clients use it, with small
// differences in how a server is spelled.
type jsonFormat struct {
	containers     [][]string // member paths of the server maps
	strict         bool       // the client reads plain JSON only
	claudeProjects bool       // Claude Code: projects.<dir>.mcpServers too
	zed            bool       // Zed: command may be {path, args, env}
	urlIsSSE       bool       // a bare "url" is legacy SSE (Gemini CLI, Cline)
	httpKey        string     // the member a Streamable HTTP URL goes in when "url" means SSE (Gemini CLI: httpUrl)
	httpType       string     // the "type" of a Streamable HTTP server when "url" means SSE (Cline: streamableHttp)
}

type jsonDoc struct {
	f    jsonFormat
	path string
	data []byte
	v    hujson.Value
}

func (f jsonFormat) parse(c *Client, path string, data []byte) (document, error) {
	v, err := hujson.Parse(data)
	if err != nil {
		return nil, &Error{Path: path, Line: errLine(data, err), Msg: "not valid JSON: " + trimHujson(err)}
	}
	if f.strict && !v.IsStandard() {
		return nil, &Error{Path: path, Msg: c.Name + " reads plain JSON: remove the comments and trailing commas"}
	}
	if _, ok := v.Value.(*hujson.Object); !ok {
		return nil, &Error{Path: path, Msg: "not valid: the file must hold a JSON object"}
	}
	return &jsonDoc{f: f, path: path, data: data, v: v}, nil
}

func trimHujson(err error) string { return strings.TrimPrefix(err.Error(), "hujson: ") }

// errLine finds "line N" in a hujson error, else the offset.
func errLine(data []byte, err error) int {
	s := err.Error()
	digits := func(s string) int {
		f := strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' })
		if len(f) == 0 {
			return -1
		}
		n, _ := strconv.Atoi(f[0])
		return n
	}
	if i := strings.Index(s, "line "); i >= 0 {
		if n := digits(s[i+5:]); n > 0 {
			return n
		}
	}
	if i := strings.Index(s, "offset "); i >= 0 {
		if n := digits(s[i+7:]); n >= 0 && n <= len(data) {
			return bytes.Count(data[:n], []byte("\n")) + 1
		}
	}
	return 0
}

func escapePtr(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func ptrOf(elems ...string) string {
	var b strings.Builder
	for _, e := range elems {
		b.WriteByte('/')
		b.WriteString(escapePtr(e))
	}
	return b.String()
}

func members(v *hujson.Value) *hujson.Object {
	if v == nil {
		return nil
	}
	o, _ := v.Value.(*hujson.Object)
	return o
}

func (d *jsonDoc) lineAt(off int) int {
	if off < 0 || off > len(d.data) {
		return 0
	}
	return bytes.Count(d.data[:off], []byte("\n")) + 1
}

type scopedContainer struct {
	scope string
	path  []string
}

func (d *jsonDoc) containers() []scopedContainer {
	var out []scopedContainer
	for _, c := range d.f.containers {
		out = append(out, scopedContainer{"user", c})
	}
	if d.f.claudeProjects {
		if projects := members(d.v.Find("/projects")); projects != nil {
			for _, m := range projects.Members {
				dir := m.Name.Value.(hujson.Literal).String()
				out = append(out, scopedContainer{"local:" + dir, []string{"projects", dir, "mcpServers"}})
			}
		}
	}
	return out
}

func (d *jsonDoc) entries() ([]Entry, error) {
	var out []Entry
	for _, c := range d.containers() {
		ptr := ptrOf(c.path...)
		cv := d.v.Find(ptr)
		if cv == nil {
			continue
		}
		obj := members(cv)
		if obj == nil {
			return nil, &Error{Path: d.path, Line: d.lineAt(cv.StartOffset), Msg: fmt.Sprintf("%s must be an object of servers", strings.Join(c.path, "."))}
		}
		for _, m := range obj.Members {
			name := m.Name.Value.(hujson.Literal).String()
			e, err := d.entry(name, m.Value)
			if err != nil {
				return nil, &Error{Path: d.path, Line: d.lineAt(m.Name.StartOffset), Msg: fmt.Sprintf("server %q: %v", name, err)}
			}
			e.Scope = c.scope
			e.Pointer = ptrOf(append(append([]string{}, c.path...), name)...)
			e.Line = d.lineAt(m.Name.StartOffset)
			out = append(out, e)
		}
	}
	return out, nil
}

// std returns a value as plain JSON.
func std(v hujson.Value) []byte {
	c := v.Clone()
	c.Standardize()
	return c.Pack()
}

func (d *jsonDoc) entry(name string, v hujson.Value) (Entry, error) {
	e := Entry{Name: name}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(std(v), &m); err != nil || m == nil {
		return e, fmt.Errorf("the server must be an object")
	}
	str := func(k string) (string, error) {
		raw, ok := m[k]
		if !ok || string(raw) == "null" {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%s must be a string", k)
		}
		return s, nil
	}
	var err error
	var errs []string
	get := func(k string) string {
		s, err := str(k)
		if err != nil {
			errs = append(errs, err.Error())
		}
		return s
	}
	cmd := m["command"]
	if d.f.zed && len(cmd) > 0 && cmd[0] == '{' {
		var zc struct {
			Path string         `json:"path"`
			Args []string       `json:"args"`
			Env  map[string]any `json:"env"`
		}
		if err := json.Unmarshal(cmd, &zc); err != nil {
			return e, fmt.Errorf("command: %v", err)
		}
		e.Command, e.Args, e.Env = zc.Path, zc.Args, stringMap(zc.Env)
	} else {
		e.Command = get("command")
		if raw, ok := m["args"]; ok && string(raw) != "null" {
			if err = json.Unmarshal(raw, &e.Args); err != nil {
				errs = append(errs, "args must be a list of strings")
			}
		}
		if raw, ok := m["env"]; ok && string(raw) != "null" {
			var env map[string]any
			if err = json.Unmarshal(raw, &env); err != nil {
				errs = append(errs, "env must be an object")
			}
			e.Env = stringMap(env)
		}
	}
	e.Cwd = get("cwd")
	e.EnvFile = get("envFile")
	typ := strings.ToLower(get("type"))
	url, serverURL, httpURL := get("url"), get("serverUrl"), get("httpUrl")
	if raw, ok := m["headers"]; ok && string(raw) != "null" {
		var h map[string]any
		if err = json.Unmarshal(raw, &h); err != nil {
			errs = append(errs, "headers must be an object")
		}
		e.Headers = stringMap(h)
	}
	if len(errs) > 0 {
		return e, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	switch {
	case e.Command != "":
		e.Transport = Stdio
	case httpURL != "":
		e.Transport, e.URL = HTTP, httpURL
	case serverURL != "":
		e.Transport, e.URL = HTTP, serverURL
	case url != "":
		e.URL = url
		e.Transport = HTTP
		if d.f.urlIsSSE {
			e.Transport = SSE
		}
	}
	switch typ {
	case "sse":
		e.Transport = SSE
	case "http", "streamable-http", "streamablehttp", "streamable_http":
		e.Transport = HTTP
	}
	if e.Transport == "" {
		return e, fmt.Errorf("neither a command nor a URL")
	}
	if raw, ok := m["disabled"]; ok && string(raw) == "true" {
		e.Disabled = true
	}
	if raw, ok := m["enabled"]; ok && string(raw) == "false" {
		e.Disabled = true
	}
	for _, k := range []string{"autoApprove", "alwaysAllow", "trust", "includeTools", "excludeTools"} {
		if raw, ok := m[k]; ok {
			if e.Flags == nil {
				e.Flags = map[string]string{}
			}
			var buf bytes.Buffer
			if json.Compact(&buf, raw) == nil {
				raw = buf.Bytes()
			}
			e.Flags[k] = string(raw)
		}
	}
	return e, nil
}

func stringMap(m map[string]any) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case string:
			out[k] = v
		default:
			b, _ := json.Marshal(v)
			out[k] = string(b)
		}
	}
	return out
}

// jsonArray renders a list of strings on one line.
func jsonArray(ss []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteString(", ")
		}
		q, _ := json.Marshal(s)
		b.Write(q)
	}
	b.WriteByte(']')
	return b.String()
}

func jsonString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(buf.String(), "\n")
}

// fresh parses the document again: hujson's Clone drops trailing commas, so edits start
// from a new parse of the same bytes.
func (d *jsonDoc) fresh() hujson.Value {
	v, _ := hujson.Parse(d.data) // parsed once already
	return v
}

func (d *jsonDoc) rewrite(changes []Change) ([]byte, error) {
	v := d.fresh()
	for _, ch := range changes {
		ev := v.Find(ch.Pointer)
		obj := members(ev)
		if obj == nil {
			return nil, &Error{Path: d.path, Msg: fmt.Sprintf("server at %s is not an object", ch.Pointer)}
		}
		var lay layout
		if len(obj.Members) > 0 {
			lay = layout{lead: bytes.Clone(obj.Members[0].Name.BeforeExtra), sep: bytes.Clone(obj.Members[0].Value.BeforeExtra), closing: bytes.Clone(obj.AfterExtra)}
			if last := obj.Members[len(obj.Members)-1].Value.AfterExtra; bytes.Contains(last, []byte("\n")) {
				lay.closing = bytes.Clone(last)
			}
		}
		if ch.URL != "" {
			if err := v.Patch([]byte("[" + strings.Join(d.httpOps(&v, ch), ",") + "]")); err != nil {
				return nil, &Error{Path: d.path, Msg: fmt.Sprintf("rewriting %s: %v", ch.Pointer, err)}
			}
			lay.apply(members(v.Find(ch.Pointer)))
			if hv := v.Find(ch.Pointer + "/headers"); hv != nil {
				lay.nested().apply(members(hv))
			}
			continue
		}
		cmdPtr, argsPtr := ch.Pointer+"/command", ch.Pointer+"/args"
		if cv := v.Find(cmdPtr); d.f.zed && cv != nil && members(cv) != nil {
			cmdPtr, argsPtr = cmdPtr+"/path", cmdPtr+"/args"
		}
		var ops []string
		for _, k := range []string{"url", "serverUrl", "httpUrl", "headers"} {
			if v.Find(ch.Pointer+"/"+k) != nil {
				ops = append(ops, fmt.Sprintf(`{"op":"remove","path":%s}`, jsonString(ch.Pointer+"/"+k)))
			}
		}
		if tv := v.Find(ch.Pointer + "/type"); tv != nil {
			ops = append(ops, fmt.Sprintf(`{"op":"replace","path":%s,"value":"stdio"}`, jsonString(ch.Pointer+"/type")))
		}
		ops = append(ops, fmt.Sprintf(`{"op":"add","path":%s,"value":%s}`, jsonString(cmdPtr), jsonString(ch.Command)))
		ops = append(ops, fmt.Sprintf(`{"op":"add","path":%s,"value":%s}`, jsonString(argsPtr), jsonArray(ch.Args)))
		if err := v.Patch([]byte("[" + strings.Join(ops, ",") + "]")); err != nil {
			return nil, &Error{Path: d.path, Msg: fmt.Sprintf("rewriting %s: %v", ch.Pointer, err)}
		}
		// Members added to an object take the layout of the members it had.
		lay.apply(members(v.Find(ch.Pointer)))
		if cv := v.Find(ch.Pointer + "/command"); cv != nil && members(cv) != nil {
			lay.apply(members(cv))
		}
	}
	return v.Pack(), nil
}

// httpOps are the patch operations that point the server at ch.URL with ch.Headers: the
// URL goes in the member the entry had (or the one the client reads Streamable HTTP
// from), a legacy SSE type becomes the client's Streamable HTTP type, and the headers
// replace the entry's (the server's own credentials moved to the gateway).
func (d *jsonDoc) httpOps(v *hujson.Value, ch Change) []string {
	p := func(k string) string { return jsonString(ch.Pointer + "/" + k) }
	key := "url"
	switch {
	case d.f.httpKey != "":
		key = d.f.httpKey
	case v.Find(ch.Pointer+"/serverUrl") != nil:
		key = "serverUrl"
	}
	var ops []string
	for _, k := range []string{"command", "args", "env", "cwd", "url", "serverUrl", "httpUrl", "headers"} {
		if k != key && v.Find(ch.Pointer+"/"+k) != nil {
			ops = append(ops, fmt.Sprintf(`{"op":"remove","path":%s}`, p(k)))
		}
	}
	ops = append(ops, fmt.Sprintf(`{"op":"add","path":%s,"value":%s}`, p(key), jsonString(ch.URL)))
	typ := ""
	if tv := v.Find(ch.Pointer + "/type"); tv != nil {
		var cur string
		json.Unmarshal(std(*tv), &cur)
		switch strings.ToLower(cur) {
		case "sse", "stdio":
			typ = "http"
		}
	}
	if d.f.httpType != "" {
		typ = d.f.httpType
	}
	if typ != "" {
		ops = append(ops, fmt.Sprintf(`{"op":"add","path":%s,"value":%s}`, p("type"), jsonString(typ)))
	}
	if len(ch.Headers) > 0 {
		var b strings.Builder
		b.WriteByte('{')
		for i, k := range sortedKeys(ch.Headers) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(jsonString(k) + ": " + jsonString(ch.Headers[k]))
		}
		b.WriteByte('}')
		ops = append(ops, fmt.Sprintf(`{"op":"add","path":%s,"value":%s}`, p("headers"), b.String()))
	}
	return ops
}

func (d *jsonDoc) restore(orig document, pointers []string) ([]byte, error) {
	o, ok := orig.(*jsonDoc)
	if !ok {
		return nil, &Error{Path: d.path, Msg: "cannot restore from another format"}
	}
	v, ov := d.fresh(), o.fresh()
	for _, p := range pointers {
		cur, was := v.Find(p), ov.Find(p)
		if cur == nil || was == nil {
			continue
		}
		cur.Value = was.Value
	}
	return v.Pack(), nil
}

// layout is how an object's members were laid out before a rewrite.
type layout struct{ lead, sep, closing []byte }

// nested is the layout of an object one level deeper (its members indented once more).
func (l layout) nested() layout {
	nl := []byte("\n")
	i := bytes.LastIndex(l.lead, nl)
	if i < 0 {
		return l
	}
	indent := l.lead[i+1:]
	step := []byte("  ")
	if len(indent) > 0 && indent[0] == '\t' {
		step = []byte("\t")
	}
	return layout{lead: append(bytes.Clone(l.lead), step...), sep: l.sep, closing: append([]byte("\n"), indent...)}
}

// apply gives members without a line of their own the layout the object had.
func (l layout) apply(obj *hujson.Object) {
	nl := []byte("\n")
	if obj == nil || !bytes.Contains(l.lead, nl) {
		return
	}
	for i := range obj.Members {
		m := &obj.Members[i]
		if !bytes.Contains(m.Name.BeforeExtra, nl) && len(bytes.TrimSpace(m.Name.BeforeExtra)) == 0 {
			m.Name.BeforeExtra = bytes.Clone(l.lead)
			m.Value.BeforeExtra = bytes.Clone(l.sep)
		}
	}
	if n := len(obj.Members); n > 0 && !bytes.Contains(obj.AfterExtra, nl) && !bytes.Contains(obj.Members[n-1].Value.AfterExtra, nl) {
		obj.AfterExtra = bytes.Clone(l.closing)
	}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
