package registry

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
)

// msbTool is one line of testdata/msb/msb_tool_variants.jsonl.
type msbTool struct {
	Path        string `json:"path"`
	Server      string `json:"server"`
	Variant     string `json:"attack_variant"`
	Name        string `json:"tool_name"`
	Description string `json:"description"`
	Params      []struct {
		Name       string  `json:"name"`
		Annotation string  `json:"annotation"`
		Default    *string `json:"default"`
	} `json:"params"`
}

// definition renders a tool as a server would list it, under name.
func (m msbTool) definition(name string) string {
	props := map[string]any{}
	var required []string
	for _, p := range m.Params {
		typ := map[string]string{"str": "string", "int": "integer", "float": "number", "bool": "boolean"}[p.Annotation]
		if typ == "" {
			typ = "string"
		}
		props[p.Name] = map[string]any{"type": typ}
		if p.Default == nil {
			required = append(required, p.Name)
		}
	}
	schema := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		schema["required"] = required
	}
	b, _ := json.Marshal(map[string]any{"name": name, "description": m.Description, "inputSchema": schema})
	return string(b)
}

var versionSuffix = regexp.MustCompile(`_v\d+$`)

// TestMSBRugPulls replays every MSB original tool followed by its attack variant, under
// the original's name, as two successive listings of one server: every pair whose
// definitions differ must be caught (hidden, its calls refused, one alert), and every pair
// that differs only in the name (identical under the same name) must pass.
func TestMSBRugPulls(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "msb", "msb_tool_variants.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	originals := map[string][]msbTool{}
	groups := map[string][]msbTool{}
	var order []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m msbTool
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if m.Variant == "original" {
			originals[m.Server] = append(originals[m.Server], m)
			continue
		}
		if groups[m.Path] == nil {
			order = append(order, m.Path)
		}
		groups[m.Path] = append(groups[m.Path], m)
	}
	// Pair each variant with its original: the same name, the name without a _vN suffix,
	// or the same place in a file that has as many tools as the original server.
	type pair struct{ orig, variant msbTool }
	var pairs []pair
	for _, p := range order {
		vs := groups[p]
		origs := originals[vs[0].Server]
		for i, v := range vs {
			var o *msbTool
			for j := range origs {
				if origs[j].Name == v.Name || origs[j].Name == versionSuffix.ReplaceAllString(v.Name, "") {
					o = &origs[j]
				}
			}
			if o == nil && len(vs) == len(origs) {
				o = &origs[i]
			}
			if o != nil {
				pairs = append(pairs, pair{*o, v})
			}
		}
	}
	if len(pairs) < 100 {
		t.Fatalf("only %d pairs found in the MSB data", len(pairs))
	}
	r := newRig(t, "tofu")
	changed, caught, same, passed := 0, 0, 0, 0
	for i, p := range pairs {
		server := fmt.Sprintf("msb%d", i)
		before := p.orig.definition(p.orig.Name)
		after := p.variant.definition(p.orig.Name)
		differs := p.orig.Description != p.variant.Description || !reflect.DeepEqual(p.orig.Params, p.variant.Params)
		r.up.set(server, "tools/list", "["+before+"]")
		if got := r.names(server, "tools/list"); len(got) != 1 {
			t.Fatalf("pair %d: original not listed: %v", i, got)
		}
		alerts := strings.Count(strings.Join(r.ev.codes(), " "), trail.CodeRugPull)
		r.up.set(server, "tools/list", "["+after+"]")
		r.notify(server, "notifications/tools/list_changed")
		callErr := r.call(server, p.orig.Name)
		listed := r.names(server, "tools/list")
		newAlerts := strings.Count(strings.Join(r.ev.codes(), " "), trail.CodeRugPull) - alerts
		if differs {
			changed++
			if refusedBy(callErr, "changed since it was approved") && len(listed) == 0 && newAlerts == 1 {
				caught++
			} else {
				t.Errorf("pair %d (%s %s, %s) not caught: call %v, listed %v, %d alerts", i, p.orig.Server, p.orig.Name, p.variant.Variant, callErr, listed, newAlerts)
			}
		} else {
			same++
			if callErr == nil && len(listed) == 1 && newAlerts == 0 {
				passed++
			} else {
				t.Errorf("pair %d (%s %s, %s) is the same definition but was refused: %v", i, p.orig.Server, p.orig.Name, p.variant.Variant, callErr)
			}
		}
	}
	t.Logf("MSB rug pulls: %d pairs; %d changed definitions, %d caught; %d identical under the original name, %d passed", len(pairs), changed, caught, same, passed)
	if changed == 0 || caught != changed {
		t.Fatalf("caught %d of %d changed pairs", caught, changed)
	}
}
