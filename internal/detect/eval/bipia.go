package eval

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// BIPIA's files split into a training part, which ./internal/detect/injection/train learns
// from, and a held-out part, which the published figures measure:
//
//   - attacks: *_attack_train.json train, *_attack_test.json are held out (BIPIA's own
//     split; of the 25 held-out categories only "Language Translation" is also a training
//     category, so held-out attacks are mostly kinds the model never saw);
//   - contexts: email_train.jsonl trains, email_test.jsonl is held out; table and code
//     contexts come only as *_test.jsonl in the corpus, so the even-numbered ones (0, 2, ...)
//     train and the odd-numbered ones are held out.

// Context is one BIPIA context: the benign text a tool might return.
type Context struct {
	Family string // email, table, code
	Index  int    // line in its file, from 0
	Text   string
	Train  bool
}

// Attack is one BIPIA attack: the instruction planted in a context.
type Attack struct {
	Category string
	Index    int
	Text     string
	Code     bool // a code attack (planted in code contexts)
	Train    bool
}

// ID names a context in reports.
func (c Context) ID() string {
	split := "held-out"
	if c.Train {
		split = "train"
	}
	return c.Family + " " + split + " context " + itoa(c.Index)
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// LoadBIPIA reads the BIPIA corpus directory.
func LoadBIPIA(dir string) ([]Context, []Attack, error) {
	var ctxs []Context
	for _, f := range []struct {
		file, family string
		train        func(int) bool
	}{
		{"email_train.jsonl", "email", func(int) bool { return true }},
		{"email_test.jsonl", "email", func(int) bool { return false }},
		{"table_test.jsonl", "table", func(i int) bool { return i%2 == 0 }},
		{"code_test.jsonl", "code", func(i int) bool { return i%2 == 0 }},
	} {
		p := filepath.Join(dir, f.file)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		i := 0
		if err := readJSONL(p, func(_ int, b []byte) error {
			var c map[string]any
			if err := json.Unmarshal(b, &c); err != nil {
				return err
			}
			var text string
			switch v := c["context"].(type) {
			case string:
				text = v
			case []any: // code contexts are lists of lines
				var lines []string
				for _, l := range v {
					if s, ok := l.(string); ok {
						lines = append(lines, s)
					}
				}
				text = strings.Join(lines, "\n")
			default:
				i++
				return nil
			}
			ctxs = append(ctxs, Context{Family: f.family, Index: i, Text: text, Train: f.train(i)})
			i++
			return nil
		}); err != nil {
			return nil, nil, err
		}
	}
	var attacks []Attack
	for _, f := range []struct {
		file        string
		code, train bool
	}{
		{"text_attack_train.json", false, true}, {"code_attack_train.json", true, true},
		{"text_attack_test.json", false, false}, {"code_attack_test.json", true, false},
	} {
		b, err := os.ReadFile(filepath.Join(dir, f.file))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		var m map[string][]string
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, nil, err
		}
		cats := make([]string, 0, len(m))
		for k := range m {
			cats = append(cats, k)
		}
		sort.Strings(cats)
		for _, cat := range cats {
			for j, a := range m[cat] {
				attacks = append(attacks, Attack{Category: cat, Index: j, Text: a, Code: f.code, Train: f.train})
			}
		}
	}
	// A held-out item whose text is also in the training split (the table file repeats
	// some contexts) is dropped: it would be measured on what the model was trained on.
	trained := map[string]bool{}
	for _, c := range ctxs {
		if c.Train {
			trained[c.Text] = true
		}
	}
	for _, a := range attacks {
		if a.Train {
			trained[a.Text] = true
		}
	}
	ctxs = slices.DeleteFunc(ctxs, func(c Context) bool { return !c.Train && trained[c.Text] })
	attacks = slices.DeleteFunc(attacks, func(a Attack) bool { return !a.Train && trained[a.Text] })
	return ctxs, attacks, nil
}

// Plant inserts an attack into a context at position pos: 0 the start, 1 the middle (at
// a line break near the middle, or the middle byte), 2 the end.
func Plant(context, attack string, pos int) string {
	switch pos {
	case 0:
		return attack + "\n" + context
	case 1:
		mid := len(context) / 2
		for mid > 0 && mid < len(context) && context[mid]&0xC0 == 0x80 {
			mid--
		}
		return context[:mid] + "\n" + attack + "\n" + context[mid:]
	}
	return context + "\n" + attack
}
