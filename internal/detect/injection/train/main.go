// Command train learns the injection detector's linear model (internal/detect/injection,
// model.bin) from the training split of BIPIA (see internal/detect/eval, LoadBIPIA):
// segments of the training attacks are positives, segments of the training contexts (and,
// with -tools, the descriptions of real tools) are negatives. The threshold is chosen by
// five-fold cross-validation on the training split: the lowest score at which at most
// -fp of the held-in contexts would be flagged. Nothing of the held-out split is read.
//
//	go run ./internal/detect/injection/train -bipia ../shared/eval/bipia -out internal/detect/injection/model.bin
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/portcullis-mcp/portcullis/internal/detect/eval"
	"github.com/portcullis-mcp/portcullis/internal/detect/injection"
)

type example struct {
	feats []uint32
	pos   bool
	group int // the document it came from (contexts and attacks numbered apart)
	w     float64
}

func features(seg string) []uint32 {
	var fs []uint32
	injection.Features(seg, func(i uint32) { fs = append(fs, i) })
	return fs
}

// prose returns the parts of an attack outside ``` fences: the instruction, not the code.
func prose(a string) string {
	parts := strings.Split(a, "```")
	var b strings.Builder
	for i := 0; i < len(parts); i += 2 {
		b.WriteString(parts[i])
		b.WriteByte('\n')
	}
	return b.String()
}

func segments(text string) []string {
	var out []string
	injection.Segments(text, func(s, e int) bool { out = append(out, text[s:e]); return true })
	return out
}

type params struct {
	epochs int
	lr, l2 float64
	seed   uint64
}

// fit fits logistic regression with AdaGrad on the examples and returns float weights.
func fit(xs []example, p params) ([]float64, float64) {
	w := make([]float64, 1<<injection.Bits)
	g2 := make([]float64, len(w))
	var bias, gb float64
	npos := 0
	var wneg float64
	for _, x := range xs {
		if x.pos {
			npos++
		} else {
			wneg += x.w
		}
	}
	wpos := wneg / float64(max(npos, 1)) // balance the classes
	order := make([]int, len(xs))
	for i := range order {
		order[i] = i
	}
	r := rand.New(rand.NewPCG(p.seed, 1))
	for ep := 0; ep < p.epochs; ep++ {
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, k := range order {
			x := xs[k]
			norm := 1 / math.Sqrt(float64(max(len(x.feats), 1)))
			z := bias
			for _, f := range x.feats {
				z += w[f] * norm
			}
			pr := 1 / (1 + math.Exp(-z))
			y, cw := 0.0, 1.0
			if x.pos {
				y, cw = 1, wpos
			}
			g := cw * x.w * (pr - y)
			for _, f := range x.feats {
				gi := g*norm + p.l2*w[f]
				g2[f] += gi * gi
				w[f] -= p.lr * gi / (math.Sqrt(g2[f]) + 1e-8)
			}
			gb += g * g
			bias -= p.lr * g / (math.Sqrt(gb) + 1e-8)
		}
	}
	return w, bias
}

// quantize turns float weights into the embedded form.
func quantize(w []float64, bias float64, threshold float64) *injection.Model {
	var mx float64
	for _, v := range w {
		mx = max(mx, math.Abs(v))
	}
	scale := mx / 127
	if scale == 0 {
		scale = 1
	}
	m := &injection.Model{Bias: float32(bias), Threshold: float32(threshold), Scale: float32(scale), W: make([]int8, len(w))}
	for i, v := range w {
		m.W[i] = int8(math.Round(v / scale))
	}
	return m
}

// readNegatives reads documents: the .md, .mdx and .txt files under a directory, or the
// descriptions of the tools in a JSONL file.
func readNegatives(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return readTools(path)
	}
	var out []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(p) {
		case ".md", ".mdx", ".txt":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out = append(out, string(b))
		}
		return nil
	})
	return out, err
}

func readTools(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		var t struct{ Description string }
		if json.Unmarshal(sc.Bytes(), &t) == nil && t.Description != "" {
			out = append(out, t.Description)
		}
	}
	return out, sc.Err()
}

func main() {
	var o options
	flag.StringVar(&o.bipia, "bipia", "../shared/eval/bipia", "the BIPIA corpus directory")
	flag.Func("negatives", "extra negatives (repeatable): a directory of .md/.mdx/.txt documents, or a JSONL file of tool definitions (their descriptions)", func(s string) error {
		o.negatives = append(o.negatives, s)
		return nil
	})
	out := flag.String("out", "internal/detect/injection/model.bin", "where to write the model")
	flag.Float64Var(&o.fp, "fp", 0.02, "the share of training contexts the threshold may flag (cross-validated)")
	flag.BoolVar(&o.verbose, "v", false, "print the highest-scoring contexts and the lowest-scoring attacks (cross-validated)")
	flag.Float64Var(&o.negWeight, "negweight", 0.25, "the weight of each extra negative segment (BIPIA's count 1)")
	flag.IntVar(&o.epochs, "epochs", 30, "passes over the data")
	flag.Parse()
	o.w = os.Stdout
	m, err := train(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "train:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, m.Encode(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "train:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%d weights, %d non-zero)\n", *out, len(m.W), nonzero(m.W))
}

// options are the trainer's inputs.
type options struct {
	bipia     string
	negatives []string
	fp        float64
	negWeight float64
	epochs    int
	verbose   bool
	w         io.Writer
}

// train learns the model; deterministic for the same inputs.
func train(o options) (*injection.Model, error) {
	bipia, negatives, fp, negWeight, epochs, verbose := &o.bipia, o.negatives, &o.fp, &o.negWeight, &o.epochs, &o.verbose

	ctxs, attacks, err := eval.LoadBIPIA(*bipia)
	if err != nil {
		return nil, err
	}
	if len(ctxs) == 0 || len(attacks) == 0 {
		return nil, fmt.Errorf("%s: no BIPIA contexts or attacks", *bipia)
	}
	// Documents of the training split: contexts (negative) and attacks (positive).
	type doc struct {
		text string
		pos  bool
	}
	var docs []doc
	for _, c := range ctxs {
		if c.Train {
			docs = append(docs, doc{c.Text, false})
		}
	}
	nctx := len(docs)
	for _, a := range attacks {
		if a.Train {
			docs = append(docs, doc{prose(a.Text), true})
		}
	}
	var extra []example
	for _, path := range negatives {
		ds, err := readNegatives(path)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			for _, s := range segments(d) {
				extra = append(extra, example{feats: features(s), group: -1, w: *negWeight})
			}
		}
	}
	examplesOf := func(keep func(i int) bool) []example {
		xs := append([]example(nil), extra...)
		for i, d := range docs {
			if !keep(i) {
				continue
			}
			for _, s := range segments(d.text) {
				xs = append(xs, example{feats: features(s), pos: d.pos, group: i, w: 1})
			}
		}
		return xs
	}
	p := params{epochs: *epochs, lr: 0.3, l2: 1e-6, seed: 5}
	// Cross-validation: out-of-fold scores of every training document (its best segment).
	const folds = 5
	oof := make([]float64, len(docs))
	for k := 0; k < folds; k++ {
		w, b := fit(examplesOf(func(i int) bool { return i%folds != k }), p)
		m := quantize(w, b, 0)
		for i, d := range docs {
			if i%folds != k {
				continue
			}
			s, _, _, ok := m.Best(d.text)
			if !ok {
				s = float32(math.Inf(-1))
			}
			oof[i] = float64(s)
		}
	}
	if *verbose {
		idx := make([]int, nctx)
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool { return oof[idx[a]] > oof[idx[b]] })
		for _, i := range idx[:min(8, len(idx))] {
			fmt.Fprintf(o.w, "  context %.2f\n", oof[i])
		}
		for i := nctx; i < len(docs); i++ {
			if oof[i] < 3 {
				fmt.Fprintf(o.w, "  attack %.2f %.70q\n", oof[i], docs[i].text)
			}
		}
	}
	neg := append([]float64(nil), oof[:nctx]...)
	sort.Sort(sort.Reverse(sort.Float64Slice(neg)))
	allowed := int(math.Floor(*fp * float64(len(neg))))
	threshold := neg[allowed] + 1e-3 // just above the first context that may not be flagged
	caught := 0
	for _, s := range oof[nctx:] {
		if s >= threshold {
			caught++
		}
	}
	fmt.Fprintf(o.w, "cross-validated on the training split: threshold %.3f, contexts flagged %d/%d, attacks caught %d/%d\n",
		threshold, allowed, nctx, caught, len(docs)-nctx)
	w, b := fit(examplesOf(func(int) bool { return true }), p)
	return quantize(w, b, threshold), nil
}

func nonzero(w []int8) int {
	n := 0
	for _, v := range w {
		if v != 0 {
			n++
		}
	}
	return n
}
