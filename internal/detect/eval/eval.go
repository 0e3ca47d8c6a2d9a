// Package eval measures the detectors on labelled corpora: the shared ones in
// ../shared/eval (MSB, benign npm tools, BIPIA, gitleaks, Cisco mcp-scanner, appsecco) and
// generic JSONL files of tool definitions or cases. A case is flagged when a detector
// reports a finding of medium severity or above ("warning level"), which is also what the
// guards act on by default.
package eval

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/portcullis-mcp/portcullis/internal/detect"
	"github.com/portcullis-mcp/portcullis/internal/detect/poisoning"
	"github.com/portcullis-mcp/portcullis/internal/detect/toolinfo"
	"github.com/portcullis-mcp/portcullis/internal/guards/detectargs"
	"github.com/portcullis-mcp/portcullis/internal/guards/detectresults"
)

// Threshold is the severity that counts as flagged.
const Threshold = detect.Medium

// Group is the outcome for one corpus and surface.
type Group struct {
	Corpus     string   `json:"corpus"`
	Surface    string   `json:"surface"`
	Malicious  int      `json:"malicious"`
	Caught     int      `json:"caught"`
	Benign     int      `json:"benign"`
	Flagged    int      `json:"flagged"`
	Misses     []string `json:"misses,omitempty"`
	FalseFlags []string `json:"falseFlags,omitempty"`
	Note       string   `json:"note,omitempty"`
}

// Report is the outcome of a run.
type Report struct {
	Groups []*Group `json:"groups"`
}

func (r *Report) group(corpus, surface, note string) *Group {
	for _, g := range r.Groups {
		if g.Corpus == corpus && g.Surface == surface {
			return g
		}
	}
	g := &Group{Corpus: corpus, Surface: surface, Note: note}
	r.Groups = append(r.Groups, g)
	return g
}

func (g *Group) add(malicious, flagged bool, id string) {
	if malicious {
		g.Malicious++
		if flagged {
			g.Caught++
		} else {
			g.Misses = append(g.Misses, id)
		}
		return
	}
	g.Benign++
	if flagged {
		g.Flagged++
		g.FalseFlags = append(g.FalseFlags, id)
	}
}

// Runner holds the detectors under test.
type Runner struct {
	args    *detectargs.Guard
	results *detectresults.Guard
	rules   *detectresults.Guard // the same without the learned model
	poison  *poisoning.Detector
}

// NewRunner returns a runner with the default configuration of every detector (and the
// allowed root /workspace for path arguments).
func NewRunner() (*Runner, error) {
	a, err := detectargs.Compile(detectargs.Config{Block: detect.High, Roots: []string{"/workspace"}}, detectargs.Options{})
	if err != nil {
		return nil, err
	}
	r, err := detectresults.Compile(detectresults.Config{}, nil, nil)
	if err != nil {
		return nil, err
	}
	off := false
	rules, err := detectresults.Compile(detectresults.Config{InjectionModel: &off}, nil, nil)
	if err != nil {
		return nil, err
	}
	return &Runner{args: a, results: r, rules: rules, poison: poisoning.Default}, nil
}

func flagged(fs []detect.Finding) bool {
	s, ok := detect.Max(fs)
	return ok && s >= Threshold
}

// Run evaluates every path: a directory holding the shared corpora, or a JSONL file.
func (rn *Runner) Run(paths []string) (*Report, error) {
	rep := &Report{}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if st.IsDir() {
			if err := rn.runDir(rep, p); err != nil {
				return nil, err
			}
			continue
		}
		if err := rn.runFile(rep, p, filepath.Base(p)); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

func (rn *Runner) runDir(rep *Report, dir string) error {
	known := map[string]func(*Report, string) error{
		"msb":                         rn.msb,
		"benign-npm-tools":            rn.benignTools,
		"bipia":                       rn.bipia,
		"gitleaks":                    rn.gitleaks,
		"cisco-mcp-scanner":           rn.cisco,
		"appsecco-vulnerable-mcp-lab": rn.appsecco,
	}
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	found := false
	for _, n := range names {
		sub := filepath.Join(dir, n)
		if _, err := os.Stat(sub); err == nil {
			found = true
			if err := known[n](rep, sub); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
		}
	}
	if filepath.Base(dir) != "" {
		if f, ok := known[filepath.Base(dir)]; ok && !found {
			return f(rep, dir)
		}
	}
	if !found {
		return fmt.Errorf("%s: no known corpus in the directory", dir)
	}
	return nil
}

// readJSONL calls fn for every JSON object in a file.
func readJSONL(path string, fn func(line int, raw []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	n := 0
	for sc.Scan() {
		n++
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		if err := fn(n, b); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

// toolJSON builds an MCP tool definition.
func toolJSON(name, title, description string, schema json.RawMessage, annotations json.RawMessage) []byte {
	m := map[string]any{"name": name, "description": description}
	if title != "" {
		m["title"] = title
	}
	if len(schema) > 0 && string(schema) != "null" {
		m["inputSchema"] = schema
	} else {
		m["inputSchema"] = map[string]any{"type": "object"}
	}
	if len(annotations) > 0 && string(annotations) != "null" {
		m["annotations"] = annotations
	}
	b, _ := json.Marshal(m)
	return b
}

// listed is one tool in a listing under test.
type listed struct {
	server string
	raw    []byte
	id     string
}

// checkListing runs the listing checks on tools as one merged listing and returns the
// findings per tool.
func (rn *Runner) checkListing(tools []listed) [][]detect.Finding {
	out := make([][]detect.Finding, len(tools))
	var ts []poisoning.Tool
	for i, t := range tools {
		fs, pt := rn.poison.CheckTool(t.raw)
		pt.Server = t.server
		ts = append(ts, pt)
		out[i] = fs
	}
	for i, f := range poisoning.Shadowing(ts) {
		out[i] = append(out[i], f)
	}
	return out
}

// Flagged reports whether findings reach the warning level (what the figures count).
func Flagged(fs []detect.Finding) bool { return flagged(fs) }

// CheckServerListing runs the listing checks on the tools (raw MCP definitions) of one
// server's tools/list, as the published figures do, and returns the findings per tool.
func (rn *Runner) CheckServerListing(server string, tools [][]byte) [][]detect.Finding {
	list := make([]listed, len(tools))
	for i, t := range tools {
		list[i] = listed{server: server, raw: t}
	}
	return rn.checkListing(list)
}

type msbTool struct {
	Server      string `json:"server"`
	Variant     string `json:"attack_variant"`
	Label       string `json:"label"`
	Name        string `json:"tool_name"`
	Description string `json:"description"`
	Params      []struct {
		Name        string  `json:"name"`
		Description *string `json:"description"`
	} `json:"params"`
}

func (t msbTool) raw() []byte {
	props := map[string]any{}
	for _, p := range t.Params {
		prop := map[string]any{"type": "string"}
		if p.Description != nil {
			prop["description"] = *p.Description
		}
		props[p.Name] = prop
	}
	schema, _ := json.Marshal(map[string]any{"type": "object", "properties": props})
	return toolJSON(t.Name, "", t.Description, schema, nil)
}

func (rn *Runner) msb(rep *Report, dir string) error {
	var tools []msbTool
	if err := readJSONL(filepath.Join(dir, "msb_tool_variants.jsonl"), func(_ int, b []byte) error {
		var t msbTool
		if err := json.Unmarshal(b, &t); err != nil {
			return err
		}
		tools = append(tools, t)
		return nil
	}); err != nil {
		return err
	}
	originals := map[string][]listed{}
	// A variant whose description and parameters are an original's (only the name differs,
	// or nothing does) is a copy: alone, it is the benign original.
	copyKey := func(t msbTool) string { b, _ := json.Marshal([]any{t.Description, t.Params}); return string(b) }
	origKeys := map[string]bool{}
	for _, t := range tools {
		if t.Variant == "original" {
			originals[t.Server] = append(originals[t.Server], listed{server: "original", raw: t.raw(), id: t.Name})
			origKeys[copyKey(t)] = true
		}
	}
	copies := 0
	for _, t := range tools {
		if t.Variant != "original" && origKeys[copyKey(t)] {
			copies++
		}
	}
	ctxGroup := rep.group("msb", "listing (variant beside the originals)", "each attack variant listed by a second server next to the original server's tools, as MSB runs them")
	aloneGroup := rep.group("msb", "listing (variant alone)", "each attack variant in a listing of its own: name-overlap and tool-transfer variants copy the original and are only visible next to it")
	alteredGroup := rep.group("msb", "listing (variant alone, altered text only)", fmt.Sprintf("the variants alone, less the %d whose description and parameters are exactly an original's (the name differs or nothing does): no check of a single listing can tell those from the benign original", copies))
	for _, t := range tools {
		id := t.Variant + "/" + t.Name
		if t.Variant == "original" {
			fs := rn.checkListing(originals[t.Server])
			for i, l := range originals[t.Server] {
				if l.id == t.Name {
					ctxGroup.add(false, flagged(fs[i]), id)
					aloneGroup.add(false, flagged(fs[i]), id)
					alteredGroup.add(false, flagged(fs[i]), id)
					break
				}
			}
			continue
		}
		list := append(append([]listed(nil), originals[t.Server]...), listed{server: "attack", raw: t.raw(), id: t.Name})
		fs := rn.checkListing(list)
		ctxGroup.add(true, flagged(fs[len(fs)-1]), id)
		alone := rn.checkListing([]listed{{server: "attack", raw: t.raw(), id: t.Name}})
		aloneGroup.add(true, flagged(alone[0]), id)
		if !origKeys[copyKey(t)] {
			alteredGroup.add(true, flagged(alone[0]), id)
		}
	}
	// Injection payloads, in descriptions or in results.
	return readJSONL(filepath.Join(dir, "msb_injection_payloads.jsonl"), func(_ int, b []byte) error {
		var p struct {
			ID, Text, Label string
			AttackType      string `json:"attack_type"`
			InjectedInto    string `json:"injected_into"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		id := p.ID + " " + p.AttackType
		if p.InjectedInto == "tool_description" {
			raw := toolJSON("search", "", "Search the web for a query."+p.Text, nil, nil)
			fs, _ := rn.poison.CheckTool(raw)
			rep.group("msb", "description (injection payloads)", "").add(true, flagged(fs), id)
			return nil
		}
		rep.group("msb", "result (injection payloads)", "").add(true, rn.resultFlagged("Search results: 3 articles found.\n"+p.Text), id)
		return nil
	})
}

func (rn *Runner) resultFlagged(text string) bool { return resultFlagged(rn.results, text) }

func resultFlagged(g *detectresults.Guard, text string) bool {
	res, _ := json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": text}}})
	_, fs, _ := g.Inspect(res)
	return flagged(fs)
}

type npmTool struct {
	Server      string          `json:"server"`
	Label       string          `json:"label"`
	Name        string          `json:"tool_name"`
	Title       *string         `json:"title"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"inputSchema"`
	Annotations json.RawMessage `json:"annotations"`
	// The generic tool-definition form: an MCP tool as listed.
	MCPName string `json:"name"`
}

func (t npmTool) raw() []byte {
	title := ""
	if t.Title != nil {
		title = *t.Title
	}
	name := t.Name
	if name == "" {
		name = t.MCPName
	}
	return toolJSON(name, title, t.Description, t.InputSchema, t.Annotations)
}

// toolDefs evaluates tool definitions one per line, each server's tools as one listing.
func (rn *Runner) toolDefs(rep *Report, corpus, path string) error {
	var tools []npmTool
	if err := readJSONL(path, func(_ int, b []byte) error {
		var t npmTool
		if err := json.Unmarshal(b, &t); err != nil {
			return err
		}
		tools = append(tools, t)
		return nil
	}); err != nil {
		return err
	}
	byServer := map[string][]int{}
	var order []string
	for i, t := range tools {
		if _, ok := byServer[t.Server]; !ok {
			order = append(order, t.Server)
		}
		byServer[t.Server] = append(byServer[t.Server], i)
	}
	g := rep.group(corpus, "listing", "")
	for _, s := range order {
		var list []listed
		for _, i := range byServer[s] {
			list = append(list, listed{server: s, raw: tools[i].raw()})
		}
		fs := rn.checkListing(list)
		for k, i := range byServer[s] {
			t := tools[i]
			id := s + "/" + t.Name + t.MCPName
			if flagged(fs[k]) {
				id += ": " + describe(fs[k])
			}
			g.add(t.Label == "malicious", flagged(fs[k]), id)
		}
	}
	return nil
}

func describe(fs []detect.Finding) string {
	var parts []string
	for _, f := range fs {
		if f.Severity >= Threshold {
			parts = append(parts, f.Rule+" "+f.Evidence)
		}
	}
	return detect.Evidence(strings.Join(parts, "; "))
}

func (rn *Runner) benignTools(rep *Report, dir string) error {
	return rn.toolDefs(rep, "benign-npm-tools", filepath.Join(dir, "benign_tools.jsonl"))
}

func (rn *Runner) cisco(rep *Report, dir string) error {
	g := rep.group("cisco-mcp-scanner", "listing", "malicious servers, many malicious only in code with harmless descriptions: a listing check cannot see those")
	return readJSONL(filepath.Join(dir, "behavioral_eval_tools.jsonl"), func(_ int, b []byte) error {
		var t map[string]any
		if err := json.Unmarshal(b, &t); err != nil {
			return err
		}
		name, _ := t["tool_name"].(string)
		if name == "" {
			name, _ = t["name"].(string)
		}
		desc, _ := t["description"].(string)
		if desc == "" {
			desc, _ = t["docstring"].(string)
		}
		schema, _ := json.Marshal(t["inputSchema"])
		fs, _ := rn.poison.CheckTool(toolJSON(name, "", desc, schema, nil))
		cat, _ := t["threat_category"].(string)
		g.add(true, flagged(fs), cat+"/"+name)
		return nil
	})
}

func (rn *Runner) appsecco(rep *Report, dir string) error {
	g := rep.group("appsecco", "result", "subtle injections; the borderline sales note is counted as benign")
	return readJSONL(filepath.Join(dir, "tool_result_documents.jsonl"), func(_ int, b []byte) error {
		var d struct{ Path, Label, Text string }
		if err := json.Unmarshal(b, &d); err != nil {
			return err
		}
		g.add(strings.HasPrefix(d.Label, "malicious"), rn.resultFlagged(d.Text), filepath.Base(d.Path)+" ("+d.Label+")")
		return nil
	})
}

func (rn *Runner) gitleaks(rep *Report, dir string) error {
	g := rep.group("gitleaks", "result (secrets)", "")
	return readJSONL(filepath.Join(dir, "gitleaks_rule_samples.jsonl"), func(n int, b []byte) error {
		var s struct {
			RuleID string `json:"rule_id"`
			Label  string `json:"label"`
			Text   string `json:"text"`
		}
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		res, _ := json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": s.Text}}})
		_, fs, _ := rn.results.Inspect(res)
		var secretFs []detect.Finding
		for _, f := range fs {
			if f.Detector == "secrets" {
				secretFs = append(secretFs, f)
			}
		}
		g.add(s.Label == "tp", flagged(secretFs), fmt.Sprintf("line %d %s", n, s.RuleID))
		return nil
	})
}

func (rn *Runner) bipia(rep *Report, dir string) error {
	ctxs, attacks, err := LoadBIPIA(dir)
	if err != nil {
		return err
	}
	clean := rep.group("bipia", "result (clean contexts, held out)", "email_test contexts and the odd-numbered table and code contexts: never seen by the trainer")
	cleanRules := rep.group("bipia", "result (clean contexts, held out, rules only)", "the same without the learned model (detect-results injection_model: false)")
	cleanTrain := rep.group("bipia", "result (clean contexts, training split)", "email_train contexts and the even-numbered table and code contexts: the learned model was trained on these, so this row is not a measure of it")
	var textCtx, codeCtx []string
	for _, c := range ctxs {
		g := clean
		if c.Train {
			g = cleanTrain
		} else if c.Family == "code" {
			codeCtx = append(codeCtx, c.Text)
		} else {
			textCtx = append(textCtx, c.Text)
		}
		g.add(false, rn.resultFlagged(c.Text), c.ID())
		if !c.Train {
			cleanRules.add(false, resultFlagged(rn.rules, c.Text), c.ID())
		}
	}
	held := rep.group("bipia", "result (attacks in contexts, held out)", "each held-out attack (BIPIA's test attacks: of their 25 categories only Language Translation is also a training category) inserted at the start, middle and end of three held-out contexts of its kind (text attacks: email and table; code attacks: code)")
	heldRules := rep.group("bipia", "result (attacks in contexts, held out, rules only)", "the same without the learned model")
	n := 0
	for _, a := range attacks {
		if a.Train {
			continue
		}
		cs := textCtx
		if a.Code {
			cs = codeCtx
		}
		if len(cs) == 0 {
			continue
		}
		for pos := 0; pos < 3; pos++ {
			text := Plant(cs[(n*3+pos)%len(cs)], a.Text, pos)
			id := fmt.Sprintf("%s #%d pos %d: %s", a.Category, a.Index, pos, detect.Evidence(a.Text))
			held.add(true, rn.resultFlagged(text), id)
			heldRules.add(true, resultFlagged(rn.rules, text), id)
		}
		n++
	}
	return nil
}

// Case is the generic case form.
type Case struct {
	ID      string `json:"id"`
	Surface string `json:"surface"` // description | param_description | enum | argument | result
	Text    string `json:"text"`
	Label   string `json:"label"` // malicious | benign
	Param   string `json:"param"` // for arguments: path, url, command, query, text
}

// runFile evaluates a JSONL file of tool definitions or of cases.
func (rn *Runner) runFile(rep *Report, path, corpus string) error {
	var first map[string]json.RawMessage
	if err := readJSONL(path, func(_ int, b []byte) error {
		if first == nil {
			return json.Unmarshal(b, &first)
		}
		return nil
	}); err != nil {
		return err
	}
	if _, ok := first["surface"]; !ok {
		return rn.toolDefs(rep, corpus, path)
	}
	ctx := context.Background()
	return readJSONL(path, func(n int, b []byte) error {
		var c Case
		if err := json.Unmarshal(b, &c); err != nil {
			return err
		}
		if c.Label != "malicious" && c.Label != "benign" {
			return fmt.Errorf("label %q: want malicious or benign", c.Label)
		}
		id := c.ID
		if id == "" {
			id = fmt.Sprintf("line %d", n)
		}
		var fs []detect.Finding
		switch c.Surface {
		case "description":
			fs, _ = rn.poison.CheckTool(toolJSON("tool", "", c.Text, nil, nil))
		case "param_description":
			schema, _ := json.Marshal(map[string]any{"type": "object", "properties": map[string]any{"value": map[string]any{"type": "string", "description": c.Text}}})
			fs, _ = rn.poison.CheckTool(toolJSON("tool", "", "A tool.", schema, nil))
		case "enum":
			schema, _ := json.Marshal(map[string]any{"type": "object", "properties": map[string]any{"value": map[string]any{"type": "string", "enum": []string{c.Text}}}})
			fs, _ = rn.poison.CheckTool(toolJSON("tool", "", "A tool.", schema, nil))
		case "argument":
			param := c.Param
			if param == "" {
				param = "text"
			}
			args, _ := json.Marshal(map[string]string{param: c.Text})
			fs = rn.args.Check(ctx, "eval", "tool", true, args)
			_ = toolinfo.Text
		case "result":
			if rn.resultFlagged(c.Text) {
				fs = []detect.Finding{{Severity: detect.High}}
			}
		default:
			return fmt.Errorf("surface %q: want description, param_description, enum, argument or result", c.Surface)
		}
		rep.group(corpus, c.Surface, "").add(c.Label == "malicious", flagged(fs), id)
		return nil
	})
}

func pct(a, b int) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}

// WriteText prints the report as a table, with misses and false flags when verbose.
func (r *Report) WriteText(w io.Writer, verbose bool) {
	fmt.Fprintf(w, "%-20s %-42s %14s %14s\n", "corpus", "surface", "detected", "false flags")
	for _, g := range r.Groups {
		det, ff := "–", "–"
		if g.Malicious > 0 {
			det = fmt.Sprintf("%d/%d %s", g.Caught, g.Malicious, pct(g.Caught, g.Malicious))
		}
		if g.Benign > 0 {
			ff = fmt.Sprintf("%d/%d %s", g.Flagged, g.Benign, pct(g.Flagged, g.Benign))
		}
		fmt.Fprintf(w, "%-20s %-42s %14s %14s\n", g.Corpus, g.Surface, det, ff)
	}
	if !verbose {
		return
	}
	for _, g := range r.Groups {
		for _, m := range g.Misses {
			fmt.Fprintf(w, "miss  %s %s: %s\n", g.Corpus, g.Surface, m)
		}
		for _, m := range g.FalseFlags {
			fmt.Fprintf(w, "false %s %s: %s\n", g.Corpus, g.Surface, m)
		}
	}
}

// JSON returns, per surface and label, total and flagged (summed over corpora).
func (r *Report) JSON() map[string]map[string]map[string]int {
	out := map[string]map[string]map[string]int{}
	for _, g := range r.Groups {
		s := out[g.Surface]
		if s == nil {
			s = map[string]map[string]int{"malicious": {"total": 0, "flagged": 0}, "benign": {"total": 0, "flagged": 0}}
			out[g.Surface] = s
		}
		s["malicious"]["total"] += g.Malicious
		s["malicious"]["flagged"] += g.Caught
		s["benign"]["total"] += g.Benign
		s["benign"]["flagged"] += g.Flagged
	}
	return out
}

// WriteMarkdown prints the report for docs/detection.md.
func (r *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintln(w, "| corpus | surface | attacks detected | benign flagged |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, g := range r.Groups {
		det, ff := "–", "–"
		if g.Malicious > 0 {
			det = fmt.Sprintf("%d/%d (%s)", g.Caught, g.Malicious, pct(g.Caught, g.Malicious))
		}
		if g.Benign > 0 {
			ff = fmt.Sprintf("%d/%d (%s)", g.Flagged, g.Benign, pct(g.Flagged, g.Benign))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", g.Corpus, g.Surface, det, ff)
	}
	fmt.Fprintln(w)
	for _, g := range r.Groups {
		if g.Note != "" {
			fmt.Fprintf(w, "- **%s, %s**: %s.\n", g.Corpus, g.Surface, g.Note)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "### Misses and false flags")
	fmt.Fprintln(w)
	for _, g := range r.Groups {
		if len(g.Misses)+len(g.FalseFlags) == 0 || strings.HasSuffix(g.Surface, "rules only)") {
			continue // a rules-only row repeats its row's list and more
		}
		fmt.Fprintf(w, "<details><summary>%s, %s: %d missed, %d falsely flagged</summary>\n\n", g.Corpus, g.Surface, len(g.Misses), len(g.FalseFlags))
		for _, m := range g.Misses {
			fmt.Fprintf(w, "- miss: %s\n", strings.ReplaceAll(m, "|", "\\|"))
		}
		for _, m := range g.FalseFlags {
			fmt.Fprintf(w, "- false flag: %s\n", strings.ReplaceAll(m, "|", "\\|"))
		}
		fmt.Fprintln(w, "\n</details>")
		fmt.Fprintln(w)
	}
}
