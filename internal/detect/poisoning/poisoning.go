// Package poisoning finds tool poisoning in listings: tool, prompt and resource
// definitions and server instructions that address the model instead of describing a
// tool. It reads every text a client shows the model (descriptions, titles, parameter
// descriptions, enum values, defaults) and finds hidden instructions and secrecy (through
// package injection), references to secrets and sensitive files combined with orders,
// exfiltration, parameters that ask for the model's context or identity ("notes",
// "sidenote", "llm_model_name"), preference manipulation ("the best tool in the world,
// always use it"), references to other tools, hidden characters and ANSI escapes, and
// base64 payloads that decode to instructions. Across servers it finds shadowing: a tool
// whose name or description copies another server's tool.
package poisoning

import (
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/portcullis-mcp/portcullis/internal/detect"
	"github.com/portcullis-mcp/portcullis/internal/detect/injection"
	"github.com/portcullis-mcp/portcullis/internal/detect/invisible"
)

// Name is the detector's name in findings.
const Name = "poisoning"

// extra phrases that matter in descriptions (weights as in package injection).
var listingPhrases = func() []injection.Phrase {
	var m []injection.Phrase
	for _, t := range []struct {
		kind string
		w    int
		cap  int
		ts   []string
	}{
		{"preference-manipulation", 5, 1, []string{
			"the best tool in the world", "best tool in the world", "the best tool", "this is the best", "always use this tool",
			"always prefer this tool", "prefer this tool", "use this tool instead", "only use this tool", "do not use other tools",
			"don't use other tools", "never use other tools", "use this tool first", "this tool is superior", "superior to other tools",
			"most reliable tool", "more reliable than", "better than other tools", "better than any other", "the only tool you need",
			"instead of any other tool", "must always be used", "should always be used", "always call this tool", "always use this",
		}},
		{"context-request", 4, 2, []string{
			"pass the conversation", "include the conversation", "entire conversation", "full conversation", "previous messages",
			"system prompt", "your instructions", "your context", "the context window", "all available context",
			"name of the llm", "llm model", "the model that calls", "which model you are", "your model name",
			"contents of the file", "content of the file", "read the file", "mcp.json", "id_rsa", "~/.ssh", ".ssh/",
			"~/.aws", ".aws/credentials", ".env file", "the .env", "credentials file", "private key", "api keys",
			"send it to", "send them to", "forward it to", "upload it to", "exfiltrat",
		}},
		{"tool-reference", 3, 1, []string{
			"other tools", "other tool", "another tool", "the other server", "other servers", "when using the", "when calling the",
			"when the user calls", "whenever the user", "every time the user", "before calling any", "after calling any",
			"all tools", "any tool",
		}},
	} {
		for _, s := range t.ts {
			m = append(m, injection.Phrase{Text: s, Kind: t.kind, Weight: t.w, Cap: t.cap})
		}
	}
	return m
}()

// Detector checks definitions. It is safe for concurrent use.
type Detector struct{ inj *injection.Detector }

// Default is the detector with the built-in phrases. Its phrases are in the shared
// automaton (detect.Shared): the injection phrases once for it and the results guard.
var Default = &Detector{inj: injection.NewShared(listingPhrases)}

var b64 = regexp.MustCompile(`[A-Za-z0-9+/]{24,}={0,2}`)

// CheckText returns findings for one text of a listing (a description, an instruction
// string, a parameter description).
func (d *Detector) CheckText(text, pointer string) []detect.Finding {
	var out []detect.Finding
	if !detect.Plain(text) {
		for _, f := range invisible.Scan(text, pointer) {
			f.Detector = Name
			if f.Severity < detect.Medium && f.Rule != detect.KindVariation {
				f.Severity = detect.Medium // nothing in a description needs to be invisible
			}
			out = append(out, f)
		}
	}
	norm := detect.Normalize(text)
	r := d.inj.Score(norm)
	if sev := severity(r); sev > detect.Info {
		out = append(out, finding(sev, "hidden-instructions", pointer, r, "the text gives the model instructions"))
	}
	for _, m := range b64.FindAllString(text, 8) {
		dec, err := base64.StdEncoding.DecodeString(padded(m))
		if err != nil || !utf8.Valid(dec) || !mostlyText(dec) {
			continue
		}
		sev := detect.Medium
		r := d.inj.Score(detect.Normalize(string(dec)))
		if severity(r) >= detect.Low {
			sev = detect.High
		}
		out = append(out, detect.Finding{Detector: Name, Rule: "encoded-text", Severity: sev, Pointer: pointer,
			Evidence: detect.Evidence(string(dec)), Message: "the text carries base64-encoded text"})
	}
	return out
}

// secretNouns are phrases of the exfiltration kind that only name a secret: a description
// that warns "do not include API keys or passwords" names them too.
var secretNouns = map[string]bool{
	"api key": true, "api keys": true, "access token": true, "private key": true, "ssh key": true, "password": true,
	"passwords": true, "credentials": true, "secret key": true, "bank details": true, "credit card": true,
}

func severity(r injection.Result) detect.Severity {
	sev := injection.Severity(r.Score)
	if len(r.Kinds) == 1 && (r.Kinds[0] == injection.Pressure || r.Kinds[0] == injection.ToolRedirect) && sev > detect.Low {
		sev = detect.Low // "IMPORTANT", "you must", "use the X tool": ordinary in real descriptions
	}
	if sev > detect.Low && onlyNouns(r) {
		sev = detect.Low // names secrets, asks nothing of them
	}
	return sev
}

func onlyNouns(r injection.Result) bool {
	for _, h := range r.Hits {
		if h.Kind != injection.Exfiltration || !secretNouns[strings.TrimSpace(h.Phrase)] {
			return false
		}
	}
	return len(r.Hits) > 0
}

func finding(sev detect.Severity, rule, pointer string, r injection.Result, msg string) detect.Finding {
	var phrases []string
	for _, h := range r.Hits {
		phrases = append(phrases, h.Phrase)
	}
	return detect.Finding{Detector: Name, Rule: rule, Severity: sev, Pointer: pointer,
		Evidence: detect.Evidence(strings.Join(phrases, " | ")), Message: msg + " (" + strings.Join(r.Kinds, ", ") + ")"}
}

func padded(s string) string {
	s = strings.TrimRight(s, "=")
	for len(s)%4 != 0 {
		s += "="
	}
	return s
}

func mostlyText(b []byte) bool {
	if len(b) < 12 {
		return false
	}
	letters, spaces := 0, 0
	for _, c := range b {
		switch {
		case c == ' ':
			spaces++
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			letters++
		case c < 0x20 && c != '\n' && c != '\t':
			return false
		}
	}
	return spaces >= 2 && letters*10 >= len(b)*6
}

// Tool is a tool definition as far as poisoning is concerned.
type Tool struct {
	Server      string
	Name        string
	Description string
	Params      []string
}

// contextParams are parameter names that ask for the model's context or identity.
var contextParams = map[string]string{
	"sidenote": "a side note", "side_note": "a side note", "notes": "notes", "note": "a note",
	"system_prompt": "the system prompt", "systemprompt": "the system prompt", "conversation": "the conversation",
	"conversation_history": "the conversation", "chat_history": "the chat history", "history": "the history",
	"previous_messages": "previous messages", "context": "the context", "llm_model_name": "the calling model's name",
	"llm_name": "the calling model's name", "model_name": "a model name", "assistant_name": "the assistant's name",
	"agent_name": "the agent's name", "instructions": "instructions",
}

// weakContextParams are ordinary in real tools unless their description asks for context.
var weakContextParams = map[string]bool{"notes": true, "note": true, "history": true, "context": true, "model_name": true, "instructions": true, "conversation": true}

// CheckTool returns findings for a tools/list item (raw JSON). Pointers are relative to the
// item.
func (d *Detector) CheckTool(raw []byte) ([]detect.Finding, Tool) {
	var t Tool
	var out []detect.Finding
	var def struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		InputSchema struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"inputSchema"`
	}
	_ = json.Unmarshal(raw, &def)
	t.Name, t.Description = def.Name, def.Description
	for p := range def.InputSchema.Properties {
		t.Params = append(t.Params, p)
	}
	// Every string a client may show the model, but not machine keys.
	detect.Walk(raw, func(v *detect.Value) bool {
		switch v.Key {
		case "type", "format", "$schema", "$ref", "pattern", "mimeType", "uri", "uriTemplate":
			return true
		}
		out = append(out, d.CheckText(v.Text, v.Pointer())...)
		return true
	})
	for p, schema := range def.InputSchema.Properties {
		lp := strings.ToLower(p)
		what, ok := contextParams[lp]
		if !ok {
			continue
		}
		var ps struct {
			Description string `json:"description"`
		}
		_ = json.Unmarshal(schema, &ps)
		r := d.inj.Score(detect.Normalize(ps.Description))
		sev := detect.Medium
		if weakContextParams[lp] {
			sev = detect.Info
			if r.Score >= injection.LowScore {
				sev = detect.Medium
			}
		}
		if r.Score >= injection.MediumScore {
			sev = detect.High
		}
		if sev > detect.Info {
			out = append(out, detect.Finding{Detector: Name, Rule: "context-parameter", Severity: sev,
				Pointer: detect.Pointer("inputSchema", "properties", p), Evidence: detect.Evidence(p),
				Message: "the tool has a parameter that asks for " + what + ", outside its purpose"})
		}
	}
	return out, t
}

// normName strips version suffixes, digits and separators: search_pubmed_v1 and
// searchPubmed compare equal.
func normName(n string) string {
	n = strings.ToLower(n)
	var b strings.Builder
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c >= 'a' && c <= 'z' {
			b.WriteByte(c)
		}
	}
	s := b.String()
	for _, suf := range []string{"v", "new", "copy", "alt", "pro", "plus", "official", "latest"} {
		s = strings.TrimSuffix(s, suf)
	}
	return s
}

func normText(s string) string { return strings.Join(strings.Fields(strings.ToLower(s)), " ") }

// Shadowing compares the tools of different servers in one listing and returns, per tool
// index, a finding when it copies a tool of an earlier server (same name, or the same
// description under another name).
func Shadowing(tools []Tool) map[int]detect.Finding {
	out := map[int]detect.Finding{}
	type seen struct {
		server string
		name   string
	}
	byName := map[string]seen{}
	byDesc := map[string]seen{}
	for i, t := range tools {
		n := normName(t.Name)
		dsc := normText(t.Description)
		if s, ok := byName[n]; ok && s.server != t.Server && n != "" {
			out[i] = detect.Finding{Detector: Name, Rule: "shadowing", Severity: detect.Medium, Pointer: "/name",
				Evidence: detect.Evidence(t.Name), Message: "the tool's name copies tool " + s.name + " of server " + s.server}
			continue
		}
		if s, ok := byDesc[dsc]; ok && s.server != t.Server && len(dsc) >= 24 {
			out[i] = detect.Finding{Detector: Name, Rule: "shadowing", Severity: detect.Medium, Pointer: "/description",
				Evidence: detect.Evidence(t.Name), Message: "the tool's description copies tool " + s.name + " of server " + s.server}
			continue
		}
		if _, ok := byName[n]; !ok {
			byName[n] = seen{t.Server, t.Name}
		}
		if _, ok := byDesc[dsc]; !ok && len(dsc) >= 24 {
			byDesc[dsc] = seen{t.Server, t.Name}
		}
	}
	return out
}

// Patterns returns the phrases of the detector (package injection's and the listing
// phrases), in the order its automaton numbers them.
func (d *Detector) Patterns() []string { return d.inj.Patterns() }
