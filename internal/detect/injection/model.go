package injection

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"math"
	"strings"
)

// The learned part: a linear model over hashed word features of one segment (a line or a
// sentence) of a result, trained by ./train from the BIPIA training split. It catches the
// instructions that read like ordinary requests ("Recommend a good book for the weekend",
// "Analyze the sales trend"), which no phrase list can name without flagging ordinary
// text: what gives them away is a sentence addressed to an assistant in the middle of an
// email, a table or a code page. The weights are embedded (model.bin); scoring allocates
// nothing and costs a few nanoseconds per byte.

// Bits is the size of the feature space: 2^Bits weights.
const Bits = 16

// MaxSegment bounds the bytes of one segment the model reads; longer runs are cut.
const MaxSegment = 400

// Model is a trained linear model. It is safe for concurrent use.
type Model struct {
	Bias      float32
	Threshold float32 // a segment scoring at or above it is flagged
	Scale     float32 // weight = int8 * Scale
	W         []int8  // 1<<Bits weights
}

//go:embed model.bin
var modelBin []byte

// Learned is the embedded model (nil when model.bin is absent or unreadable).
var Learned = func() *Model {
	m, err := DecodeModel(modelBin)
	if err != nil {
		return nil
	}
	return m
}()

const modelMagic = "PCIM1"

// Encode returns the model as model.bin holds it.
func (m *Model) Encode() []byte {
	out := []byte(modelMagic)
	out = binary.LittleEndian.AppendUint32(out, math.Float32bits(m.Bias))
	out = binary.LittleEndian.AppendUint32(out, math.Float32bits(m.Threshold))
	out = binary.LittleEndian.AppendUint32(out, math.Float32bits(m.Scale))
	for _, w := range m.W {
		out = append(out, byte(w))
	}
	return out
}

// DecodeModel reads model.bin.
func DecodeModel(b []byte) (*Model, error) {
	n := len(modelMagic) + 12
	if len(b) != n+1<<Bits || string(b[:len(modelMagic)]) != modelMagic {
		return nil, errors.New("injection: model.bin is not a model of this version")
	}
	f := func(i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b[len(modelMagic)+4*i:])) }
	m := &Model{Bias: f(0), Threshold: f(1), Scale: f(2), W: make([]int8, 1<<Bits)}
	for i := range m.W {
		m.W[i] = int8(b[n+i])
	}
	return m, nil
}

// Byte kinds for Segments.
const (
	segOther = iota
	segLetter
	segBreak // a line, a table cell
	segStop  // ends a sentence when white space follows
	segDigitQuote
)

var segKind = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = segLetter, segLetter
	}
	for c := 0x80; c < 0x100; c++ {
		t[c] = segLetter
	}
	t['\n'], t['\r'], t['|'] = segBreak, segBreak, segBreak
	t['.'], t['?'], t['!'], t[';'] = segStop, segStop, segStop, segStop
	for c := '0'; c <= '9'; c++ {
		t[c] = segDigitQuote
	}
	t['\''] = segDigitQuote
	return
}()

// Segments calls fn with the byte span of every segment of text: lines, table cells and
// sentences, cut at MaxSegment bytes. Segments of fewer than three words are skipped.
func Segments(text string, fn func(start, end int) bool) {
	start, words := 0, 0
	inWord := false
	for i := 0; i < len(text); i++ {
		k := segKind[text[i]]
		cut, next := -1, 0
		switch k {
		case segLetter:
			if !inWord {
				words++
				inWord = true
			}
			for i+1 < len(text) && i+1-start < MaxSegment && segKind[text[i+1]] == segLetter {
				i++
			}
			continue
		case segDigitQuote:
			// Digits and apostrophes continue a word and start none.
		case segBreak:
			cut, next = i, i+1
		case segStop:
			if i+1 == len(text) || text[i+1] == ' ' || text[i+1] == '\n' {
				cut, next = i+1, i+1
			} else {
				inWord = false
			}
		default:
			inWord = false
		}
		if cut < 0 && i-start >= MaxSegment {
			cut, next = i, i
		}
		if cut >= 0 {
			if words >= 3 && !fn(start, cut) {
				return
			}
			start, words, inWord = next, 0, false
		}
	}
	if words >= 3 {
		fn(start, len(text))
	}
}

const (
	hashMul  = 0x9E3779B1
	tagWord  = 0x01000193
	tagBi    = 0x2545F491
	tagFirst = 0x7FEB352D
	tagStem  = 0x68E31DA4
	tagLast  = 0x1B873593
	tagTri   = 0x5BD1E995
	tagShape = 0x27D4EB2F
	tagClass = 0x165667B1
)

func mix(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85EBCA6B
	h ^= h >> 13
	h *= 0xC2B2AE35
	h ^= h >> 16
	return h
}

// Word classes the model sees besides the words themselves, so that it generalizes from
// the few requests it was trained on to requests of the same shape: verbs that ask for
// knowledge work ("summarize", "recommend"), words that open a question, and the pronouns
// of a person talking to an assistant.
const (
	classTaskVerb = 1 + iota
	classQuestion
	classSecond // you, your
	classFirst  // i, me, my
)

var wordClasses = map[int][]string{
	classTaskVerb: strings.Fields(`analyze analyse assess brainstorm break build calculate categorize
		check clarify classify compare compile compose compute convert create critique debug decode define
		describe design detail determine develop devise discuss draft draw elaborate encode encrypt estimate
		evaluate examine explain explore find fix forecast format generate give help identify illustrate
		implement improve interpret investigate list make map name optimize outline paraphrase plan predict
		prepare produce proofread propose provide rank rate recommend rephrase research review rewrite
		schedule script show simplify solve sort suggest summarize summarise teach tell translate write`),
	classQuestion: strings.Fields(`what what's which who whom whose where when why how can could would
		will should is are do does did may might shall`),
	classSecond: strings.Fields(`you your yours yourself you're you'll`),
	classFirst:  strings.Fields(`i me my mine myself i'm i've i'd`),
}

// classTable maps a word's hash to its class: open addressing over 512 slots.
var classTable = func() (t [512]struct {
	h     uint32
	class uint8
}) {
	for class, words := range wordClasses {
		for _, w := range words {
			var h uint32 = 2166136261
			for i := 0; i < len(w); i++ {
				h = (h ^ uint32(w[i])) * 16777619
			}
			k := h & 511
			for t[k].class != 0 {
				k = (k + 1) & 511
			}
			t[k].h, t[k].class = h, uint8(class)
		}
	}
	return
}()

func classOf(h uint32) uint8 {
	for k := h & 511; ; k = (k + 1) & 511 {
		switch e := classTable[k]; {
		case e.class == 0:
			return 0
		case e.h == h:
			return e.class
		}
	}
}

// Features calls fn with the feature indexes of one segment: lowercased words, word pairs
// and triples, word stems (first five letters), the first two words and the segment's
// last punctuation and length. The trainer and the detector use this one function.
func Features(seg string, fn func(idx uint32)) {
	var buf [256]uint32
	for _, f := range AppendFeatures(buf[:0], seg) {
		fn(f)
	}
}

// featurizer is the state of AppendFeatures between words.
type featurizer struct {
	dst         []uint32
	w           []int8 // when set, weights are summed instead of indexes appended
	sum         int32
	n           int
	prev, prev2 uint32
	h, stem     uint32
	nwords, wl  int
	first       uint8
	has         [5]bool
}

const fnvOffset = 2166136261
const fnvPrime = 16777619

func (f *featurizer) add(i uint32) {
	if f.w != nil {
		f.sum += int32(f.w[i&(1<<Bits-1)])
		f.n++
		return
	}
	f.dst = append(f.dst, i)
}

func (f *featurizer) flush() {
	if f.wl == 0 {
		return
	}
	const mask = 1<<Bits - 1
	h := f.h
	cl := classOf(h)
	if f.nwords == 0 {
		f.first = cl
	}
	f.has[cl] = true
	f.add(mix(h^tagWord) & mask)
	if f.wl > 5 {
		f.add(mix(f.stem^tagStem) & mask)
	}
	if f.nwords > 0 {
		f.add(mix(h*31^f.prev*tagBi) & mask)
	}
	if f.nwords > 1 {
		f.add(mix(h*31^f.prev*tagBi^f.prev2*tagTri) & mask)
	}
	if f.nwords < 2 {
		f.add(mix(h^tagFirst*uint32(f.nwords+1)) & mask)
	}
	f.prev2, f.prev = f.prev, h
	f.nwords++
	f.h, f.stem, f.wl = fnvOffset, fnvOffset, 0
}

// AppendFeatures appends the feature indexes of seg to dst (see Features).
func AppendFeatures(dst []uint32, seg string) []uint32 {
	f := featurizer{dst: dst}
	f.run(seg)
	return f.dst
}

func (f *featurizer) run(seg string) {
	const mask = 1<<Bits - 1
	f.h, f.stem = fnvOffset, fnvOffset
	digits, upper, letters := 0, 0, 0
	var last byte
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case c >= 'A' && c <= 'Z':
			upper++
			c += 'a' - 'A'
			fallthrough
		case c >= 'a' && c <= 'z' || c >= 0x80 || c == '\'':
			if c != '\'' {
				letters++
			}
			f.h = (f.h ^ uint32(c)) * fnvPrime
			if f.wl < 5 {
				f.stem = (f.stem ^ uint32(c)) * fnvPrime
			}
			f.wl++
		case c >= '0' && c <= '9':
			digits++
			f.h = (f.h ^ uint32('0')) * fnvPrime
			f.wl++
		default:
			f.flush()
			if c != ' ' && c != '\t' {
				last = c
				// Punctuation is a word of its own, so "?" and ":" take part in pairs.
				f.h = (f.h ^ uint32(c)) * fnvPrime
				f.wl = 1
				f.flush()
			}
		}
	}
	f.flush()
	f.add(mix(uint32(last)^tagLast) & mask)
	// The shape of a request: how it opens, whom it speaks to, how it ends.
	var you, me uint32
	if f.has[classSecond] {
		you = 1
	}
	if f.has[classFirst] {
		me = 1
	}
	first := uint32(f.first)
	f.add(mix(first^tagClass) & mask)
	f.add(mix(first<<8^you<<4^me^tagClass*3) & mask)
	f.add(mix(first<<8^uint32(last)^tagClass*5) & mask)
	f.add(mix(first<<8^uint32(min(f.nwords, 30)/6)^tagClass*7) & mask)
	shape := uint32(min(f.nwords, 40) / 4)
	if letters > 0 {
		shape |= uint32(min(10*digits/(letters+digits), 9)) << 4
		shape |= uint32(min(10*upper/letters, 9)) << 8
	}
	f.add(mix(shape^tagShape) & mask)
}

// Score returns the model's score of one segment (its log-odds of being an instruction).
func (m *Model) Score(seg string) float32 {
	f := featurizer{w: m.W}
	f.run(seg)
	if f.n == 0 {
		return m.Bias
	}
	return m.Bias + float32(f.sum)*m.Scale/float32(math.Sqrt(float64(f.n)))
}

// Best returns the highest-scoring segment of text that opens a line (or a table cell)
// with a capital letter, and its score; ok is false when text has no such segment of three
// words. A request planted in a document stands on a line of its own and reads as a
// sentence; a later sentence of a line ("Each key is a string; pass your API key in the
// header") is the document talking to its reader, and lines of code or table cells that
// open in lower case are data.
func (m *Model) Best(text string) (score float32, start, end int, ok bool) {
	// Where the next line break and cell border are, found with IndexByte and kept until
	// passed, so that every byte is searched once.
	nl, cr, bar := -1, -1, -1
	for pos := 0; pos < len(text); {
		i := pos
		for i < len(text) && lineMarker[text[i]] {
			i++
		}
		if nl < i {
			nl = indexFrom(text, i, '\n')
		}
		if cr < i {
			cr = indexFrom(text, i, '\r')
		}
		if bar < i {
			bar = indexFrom(text, i, '|')
		}
		e := min(nl, cr, bar)
		if i < e && (text[i] >= 'A' && text[i] <= 'Z' || text[i] >= 0x80) {
			// The first sentence of the line: three words at least.
			sentence, words, inWord := -1, 0, false
			for k := i; k < e && sentence < 0; k++ {
				switch segKind[text[k]] {
				case segLetter:
					if !inWord {
						words++
					}
					inWord = true
				case segDigitQuote:
				case segStop:
					if k+1 == len(text) || text[k+1] == ' ' {
						sentence = k + 1
					}
					inWord = false
				default:
					inWord = false
				}
				if k-i >= MaxSegment {
					sentence = k
				}
			}
			if sentence < 0 {
				sentence = e
			}
			if words >= 3 {
				if v := m.Score(text[i:sentence]); !ok || v > score {
					score, start, end, ok = v, i, sentence, true
				}
			}
		}
		pos = e + 1
	}
	return
}

// indexFrom returns the index of c in text at or after i, or len(text).
func indexFrom(text string, i int, c byte) int {
	if k := strings.IndexByte(text[i:], c); k >= 0 {
		return i + k
	}
	return len(text)
}

var lineMarker = func() (t [256]bool) {
	for _, c := range " \t-*>#\"'`" {
		t[c] = true
	}
	return
}()
