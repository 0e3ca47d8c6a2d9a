package scan

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"sort"
	"strings"

	"github.com/portcullis-mcp/portcullis/internal/detect"
)

// WriteText writes the report for a person.
func (r *Report) WriteText(w io.Writer) error {
	fs := r.Findings()
	c := r.Counts()
	var parts []string
	for s := detect.Critical; s >= detect.Info; s-- {
		if c[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c[s], s))
		}
	}
	summary := "no findings"
	if len(parts) > 0 {
		summary = fmt.Sprintf("%d findings (%s)", len(fs), strings.Join(parts, ", "))
		if len(fs) == 1 {
			summary = fmt.Sprintf("1 finding (%s)", parts[0])
		}
	}
	fmt.Fprintf(w, "portcullis scan: %d servers, %s\n", len(r.Results), summary)
	for _, f := range fs {
		fmt.Fprintf(w, "\n%-8s  %s  %s\n", strings.ToUpper(f.Severity.String()), f.Rule, f.Location)
		fmt.Fprintf(w, "          %s\n", f.Message)
		if f.Evidence != "" {
			fmt.Fprintf(w, "          evidence: %s\n", strings.ReplaceAll(f.Evidence, "\n", `\n`))
		}
	}
	fmt.Fprintln(w, "\nservers:")
	for _, res := range r.Results {
		where := res.File
		if res.Target.Entry.Line > 0 {
			where = fmt.Sprintf("%s:%d", res.File, res.Target.Entry.Line)
		}
		if where == "" {
			where = res.Target.Entry.URL
		}
		mark := "ok  "
		if m, ok := detect.Max(toDetect(res.Findings)); ok && m >= detect.High {
			mark = "FAIL"
		} else if ok && m >= detect.Medium {
			mark = "warn"
		}
		status := fmt.Sprintf("%d tools, %d prompts, %d resources", len(res.Tools), res.Prompts, res.Res)
		if res.Error != "" {
			mark, status = "ERR ", res.Error
		} else if res.Target.Entry.Disabled {
			status = "disabled (static checks only)"
		} else if !res.Dynamic {
			status = "static checks only"
		}
		fmt.Fprintf(w, "  %s %s (%s): %s\n", mark, res.Server, where, status)
	}
	return nil
}

func toDetect(fs []Finding) []detect.Finding {
	out := make([]detect.Finding, len(fs))
	for i, f := range fs {
		out[i] = detect.Finding{Severity: f.Severity}
	}
	return out
}

// WriteJSON writes the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	out := struct {
		Summary  map[string]int `json:"summary"`
		Findings []Finding      `json:"findings"`
		Servers  []*Result      `json:"servers"`
	}{Summary: map[string]int{}, Findings: r.Findings(), Servers: r.Results}
	for s, n := range r.Counts() {
		out.Summary[s.String()] = n
	}
	if out.Findings == nil {
		out.Findings = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func sarifLevel(s detect.Severity) string {
	switch {
	case s >= detect.High:
		return "error"
	case s == detect.Medium:
		return "warning"
	}
	return "note"
}

// securitySeverity is the CVSS-like score code-scanning tools sort by.
var securitySeverity = map[detect.Severity]string{detect.Critical: "9.5", detect.High: "8.0", detect.Medium: "5.5", detect.Low: "3.0", detect.Info: "0.0"}

// ruleName turns "secret-in-config" into "SecretInConfig".
func ruleName(rule string) string {
	var b strings.Builder
	for _, p := range strings.Split(rule, "-") {
		if p != "" {
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		}
	}
	return b.String()
}

func artifactURI(path string) string {
	if path == "" {
		return ""
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// WriteSARIF writes the report as SARIF 2.1.0, for code-scanning tools.
func (r *Report) WriteSARIF(w io.Writer, version string) error {
	type msg struct {
		Text string `json:"text"`
	}
	type rule struct {
		ID                   string         `json:"id"`
		Name                 string         `json:"name"`
		ShortDescription     msg            `json:"shortDescription"`
		FullDescription      msg            `json:"fullDescription"`
		Help                 msg            `json:"help"`
		DefaultConfiguration map[string]any `json:"defaultConfiguration"`
		Properties           map[string]any `json:"properties"`
	}
	fs := r.Findings()
	used := map[string]bool{}
	maxSev := map[string]detect.Severity{}
	for _, f := range fs {
		used[f.Rule] = true
		if f.Severity > maxSev[f.Rule] {
			maxSev[f.Rule] = f.Severity
		}
	}
	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return Rules[names[i]].ID < Rules[names[j]].ID })
	index := map[string]int{}
	rules := []rule{}
	for i, n := range names {
		index[n] = i
		ru := Rules[n]
		rules = append(rules, rule{ID: ru.ID, Name: ruleName(n), ShortDescription: msg{ru.Short}, FullDescription: msg{ru.Short + "."},
			Help:                 msg{ru.Help},
			DefaultConfiguration: map[string]any{"level": sarifLevel(maxSev[n])},
			Properties:           map[string]any{"tags": []string{"security", "mcp"}, "security-severity": securitySeverity[maxSev[n]]}})
	}
	results := []map[string]any{}
	for _, f := range fs {
		loc := map[string]any{}
		uri := artifactURI(f.Location.File)
		if uri == "" {
			uri = f.Location.URL
		}
		if uri != "" {
			phys := map[string]any{"artifactLocation": map[string]any{"uri": uri}}
			if f.Location.Line > 0 {
				phys["region"] = map[string]any{"startLine": f.Location.Line}
			}
			loc["physicalLocation"] = phys
		}
		var fq []string
		for _, p := range []string{f.Location.Server, f.Location.Item} {
			if p != "" {
				fq = append(fq, p)
			}
		}
		if len(fq) > 0 {
			name := strings.Join(fq, "/")
			if f.Location.Pointer != "" {
				name += "#" + f.Location.Pointer
			}
			loc["logicalLocations"] = []map[string]any{{"fullyQualifiedName": name, "kind": "member"}}
		}
		text := f.Message
		if f.Evidence != "" {
			text += " (" + f.Evidence + ")"
		}
		res := map[string]any{
			"ruleId": Rules[f.Rule].ID, "ruleIndex": index[f.Rule], "level": sarifLevel(f.Severity),
			"message":    msg{text},
			"properties": map[string]any{"severity": f.Severity.String(), "security-severity": securitySeverity[f.Severity], "rule": f.Rule},
		}
		if len(loc) > 0 {
			res["locations"] = []map[string]any{loc}
		}
		results = append(results, res)
	}
	doc := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []map[string]any{{
			"tool": map[string]any{"driver": map[string]any{
				"name": "portcullis", "informationUri": "https://github.com/portcullis-mcp/portcullis",
				"semanticVersion": semver(version), "rules": rules,
			}},
			"results": results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(doc)
}

func semver(v string) string {
	v = strings.TrimPrefix(v, "v")
	if v == "" || v == "dev" || !strings.Contains(v, ".") {
		return "0.0.0-dev"
	}
	return v
}
