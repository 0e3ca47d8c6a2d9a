// Package injection finds prompt injection addressed to the model in text the model will
// read: tool results, resource contents, prompts, and (through package poisoning) tool
// descriptions. Text is normalized first (invisible characters, look-alikes, ASCII
// smuggled in tag characters), then one pass of a keyword automaton finds phrases of
// several kinds: overriding instructions, secrecy towards the user, fake system or
// IMPORTANT blocks, orders about the model's own answer, impersonation of the user,
// false errors, redirection to tools, exfiltration and code to be planted. Each phrase has
// a weight; the sum (each phrase counted once) decides the severity, so one ambiguous
// phrase ("your answer") is not enough but a sentence made of them is.
package injection

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/portcullis-mcp/portcullis/internal/detect"
)

// Name is the detector's name in findings.
const Name = "injection"

// Kinds of phrases.
const (
	Override      = "override"
	Secrecy       = "secrecy"
	Spoof         = "spoofed-block"
	Output        = "output-manipulation"
	Impersonation = "user-impersonation"
	FalseError    = "false-error"
	ToolRedirect  = "tool-redirect"
	Exfiltration  = "exfiltration"
	PlantedCode   = "planted-code"
	Pressure      = "pressure"
)

// phrase is one compiled phrase (6 bytes: the built-in list has some 10,800). The texts
// of the built-in phrases are not kept: the automaton holds them (detect.Keywords.Pattern),
// and Patterns expands the templates again.
type phrase struct {
	weight int16
	kindID uint16
	word   uint8 // wordFirst, wordLast: its first (last) byte continues a word
}

const (
	wordFirst = 1 << iota
	wordLast
)

// extraPhrase is an extra phrase (New), with its text.
type extraPhrase struct {
	phrase
	text string
	n    int32 // the bytes it matches (detect.PatternLen)
}

func wordFlags[T string | []byte](text T) uint8 {
	var w uint8
	if wordByte(text[0]) {
		w |= wordFirst
	}
	if wordByte(text[len(text)-1]) {
		w |= wordLast
	}
	return w
}

// expand calls fn with every combination of the alternatives in template t, appended to
// buf: "{a|b} c" gives "a c" and "b c". An empty alternative drops the slot (expandAll
// then drops its space). fn must not keep its argument: the buffer is reused, so that
// expanding the 10,800 phrases allocates no string per step.
func expand(buf []byte, t string, fn func(raw []byte)) {
	i := strings.IndexByte(t, '{')
	if i < 0 {
		fn(append(buf, t...))
		return
	}
	j := strings.IndexByte(t[i:], '}') + i
	buf = append(buf, t[:i]...)
	for alts := t[i+1 : j]; ; {
		k := strings.IndexByte(alts, '|')
		if k < 0 {
			expand(append(buf, alts...), t[j+1:], fn)
			return
		}
		expand(append(buf, alts[:k]...), t[j+1:], fn)
		alts = alts[k+1:]
	}
}

// appendWords appends the words of raw (ASCII: the templates are) lowercased, separated
// by one space.
func appendWords(dst, raw []byte) []byte {
	space := true
	for _, c := range raw {
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' {
			space = true
			continue
		}
		if space && len(dst) > 0 {
			dst = append(dst, ' ')
		}
		space = false
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

var templates = []struct {
	kind   string
	weight int
	ts     []string
}{
	{Override, 7, []string{
		"{ignore|disregard|forget|override|bypass|discard|abandon} {all|any|the|your||all of the|all your} {previous|prior|above|earlier|preceding|former|original|initial|system|existing|other} {instructions|instruction|prompts|prompt|rules|directions|guidelines|context|messages|constraints|commands|orders|tasks|task}",
		"{ignore|disregard|forget} {everything|anything|all} {above|before|previously|you were told|you have been told}",
		"{new|updated|revised|real|actual|true} {instructions|instruction|system prompt|directives}:",
		"{your|the} {new|real|actual|true} {instructions|task|goal|objective|purpose} {is|are}",
		"from now on{,|} you {are|will|must|should}",
		"you are now {a|an|in|the}",
		"{enter|activate|enable} {developer|dan|god|jailbreak|debug} mode",
	}},
	{Secrecy, 7, []string{
		"{do not|don't|dont|never|must not|should not} {tell|inform|alert|notify|mention this to|mention it to|reveal this to|reveal it to|show|let} the user",
		"{do not|don't|never|must not} {mention|reveal|disclose|acknowledge|explain} {this|that|these|the following|any of this|that you|these instructions|this instruction|this step|this message|it}",
		"without {telling|informing|notifying|alerting|asking|letting} the user",
		"without the user {knowing|noticing|seeing}",
		"{keep|hide} {this|it|these instructions|this step} {secret|hidden|from the user|confidential}",
		"the user {must|should|will} not {know|see|notice|be told|find out}",
		"{not|never} {visible|shown|displayed} to the user",
		"{silently|quietly|secretly|covertly} {send|forward|include|add|read|upload|call|run|execute|append|copy|post|email}",
	}},
	{Spoof, 4, []string{
		"<system>", "</system>", "[system]", "<|system|>", "<|im_start|>", "<<sys>>", "[inst]", "### system", "system prompt:",
		"<important>", "</important>", "<information>", "</information>", "<instructions>", "<instruction>", "<admin>", "[admin]",
		"assistant guidelines", "instructions for the assistant", "instructions for the ai", "message to the assistant",
		"message from user to you", "note to the ai", "note to the assistant", "note for the ai", "note for the assistant",
		"{attention|dear|hey|hello|hi} {ai|assistant|chatbot|llm|model|claude|chatgpt|gpt}",
		"{ai|llm|language model|assistant} {reading|processing|summarizing} this",
		"if you are an {ai|llm|assistant|language model}",
		"this is an important message from",
	}},
	{Output, 4, []string{
		"{in|to|into|within|throughout|from|at the end of|at the beginning of|at the start of} your {response|responses|reply|replies|answer|answers|output|message|code|solution|implementation|algorithm|codebase|program|script|elucidation|summary|explanation|code implementation|solution architecture|code foundation|program logic|code's|solution logic}",
		"{add|include|insert|append|integrate|incorporate|embed|ensure|modify|enhance|augment|translate|encode|encrypt|reverse|render|express|write|provide|format|rewrite|shift|apply|replace|substitute|represent|end|begin|start|conclude|sign|upgrade|elevate|validate|refine|optimize|merge|blend|leverage|supplement|utilize|hone|develop|invert|display|show} your {response|reply|answer|output|message|code|solution|implementation|algorithm|codebase|program|elucidation}",
		"{tell|ask|instruct|remind|convince|persuade|urge} the user to",
		"{recommend|suggest|promote} {brand|the product|our product|product|buying|that the user|users}",
	}},
	{Output, 5, []string{
		"{reply|respond|answer|write|speak|talk} {only |}{in|using|with} {reverse|base64|base32|base16|base58|emoji|emojis|a caesar|caesar|pig latin|french|spanish|german|italian|portuguese|chinese|japanese|russian|all caps|uppercase|leetspeak|rot13|binary|hex|morse|json only}",
	}},
	{Output, 2, []string{
		"your {response|reply|answer|output|message|message's|answer's|response's|solution|code|algorithm|implementation|codebase|program}",
	}},
	{Impersonation, 6, []string{
		"{i am|this is|i'm} the user",
		"{new|updated|urgent} user {query|request|instruction|message}",
		"user {query|request}:",
		"the previous task has been completed",
		"{more urgent|urgent|new} task",
		"before you can solve the task",
		"after you do that, you can",
		"the user {has requested|wants you to|asked you to|needs you to|instructs you to|has asked}",
		"{signed|sincerely|regards},? the user",
	}},
	{FalseError, 5, []string{
		"in order to {get|obtain|see|access|retrieve} the {result|results|data|answer|output}, you must",
		"{you must|please} strictly {adhere|follow|comply}",
		"strictly adhere to the following",
		"{error|failure|warning}: {in order to|to continue|to proceed|you must|please|the assistant must}",
		"the tool {failed|cannot|could not|will not} {unless|until} you",
		"to {fix|resolve|continue|proceed}, {you must|the assistant must|please} {call|use|run|execute|send|read|provide}",
	}},
	{ToolRedirect, 3, []string{
		"{use|call|invoke|run|execute|trigger} the {following|} {tool|function|command}",
		"{use|call|invoke|run} {tool|function} ",
		"please use {the|} {write_file|read_file|send_email|execute_command|run_command|fetch|http_request|bash|shell}",
		"before {using|calling|invoking|you use|you call|executing|running} this tool",
		"{you must|you should|always|first} {call|use|invoke|run} the",
		"instead of {using|calling} ",
		"{run|execute} the following command",
	}},
	{Exfiltration, 4, []string{
		"{send|forward|post|upload|email|transmit|exfiltrate|leak|share|submit|report} {it|them|this|the data|the contents|the content|the file|all|everything|the conversation|the chat history|the history|the results|your context|the context|the credentials|the key|the keys|the password|the token|their bank details|your bank details|bank details} to",
		"{contents|content} of {~/.ssh|~/.aws|.env|id_rsa|the ssh|the private key|/etc/passwd|/etc/shadow|mcp.json|the config}",
		"{read|cat|open|include|attach|append} {the|} {~/.ssh|id_rsa|.env|~/.aws/credentials|/etc/passwd|private key|ssh key|api key|api keys|credentials file|mcp.json}",
		"{conversation|chat} history",
		"{api key|api keys|access token|private key|ssh key|password|passwords|credentials|secret key|bank details|credit card}",
		"curl -d", "curl --data", "requests.post(", "webhook.site", "ngrok.io", "requestbin", "pipedream.net", "burpcollaborator",
	}},
	{PlantedCode, 5, []string{
		"{following|below|subsequent|given} code {snippet|block|excerpt|section|segment|fragment}",
	}},
	{PlantedCode, 4, []string{
		"code {snippet|block|excerpt|section} {in|into|within|to} your",
		"{snippet|block|excerpt|section} {in|into|to|within} your {response|code|implementation|solution|algorithm|codebase|program}",
		"authorized_keys", "ssh-rsa aaaa", "/dev/tcp/", "nc -e", "| sh", "| bash", "os.system(", "subprocess.", "rm -rf /",
		"shutil.rmtree(", "os.fork()", "eval(", "pickle.loads(",
	}},
	{Pressure, 1, []string{
		"important:", "important!", "urgent:", "critical:", "warning:", "attention:", "immediately", "you must", "you have to",
		"you are required", "it is mandatory", "it is essential that you", "make sure to", "make sure you", "do not forget to",
		"don't forget to", "without exception", "at all costs", "this is required", "very important", "extremely important",
		"mandatory", "must be done", "before proceeding", "first step",
	}},
}

// Detector scores text. It is safe for concurrent use.
//
// The built-in phrases are in the process's shared automaton (detect.Shared), with the
// extra phrases of detectors made by NewShared: one copy of their tables whatever the
// number of detectors. A detector made by New with extra phrases has an automaton of its
// own.
type Detector struct {
	once    sync.Once
	kwOnce  sync.Once
	extra   []Phrase
	part    *detect.Part     // the extra phrases' ids in the shared automaton (NewShared)
	kw      *detect.Keywords // the automaton of a detector made by New with extra phrases, built by the first Score
	phrases []phrase         // the built-in phrases, shared by every detector: ids 0..len-1
	more    []extraPhrase    // the extra phrases that are not built in: ids len(phrases)..
	kinds   []string         // by kindID
	caps    []int            // by kindID: how many phrases of the kind count
	model   *Model           // the learned model, for text the phrases leave below medium; nil: none
}

// WithModel returns a copy of the detector that also asks m about text the phrases leave
// below medium.
func (d *Detector) WithModel(m *Model) *Detector {
	// The phrases are compiled on first use from extra, so the copy compiles its own.
	return &Detector{extra: d.extra, part: d.part, model: m}
}

// Phrase is an extra phrase for New.
type Phrase struct {
	Text   string
	Kind   string
	Weight int // at most 32767
	Cap    int // how many phrases of this kind count (0: 2)
}

// New returns the detector with the built-in phrases and extra ones. They are compiled on
// first use, so that processes that never scan (the sandbox launcher, most commands) do
// not pay for it at start; the automaton is built by the first Score or Scan, so that a
// caller that runs its own (package detectresults: one pass for secrets and phrases) only
// pays for the phrase table.
func New(extra []Phrase) *Detector { return &Detector{extra: extra} }

// NewShared is New with the extra phrases in the shared automaton (see detect.Share): it
// must be called during package initialization, for a package-level detector.
func NewShared(extra []Phrase) *Detector {
	d := &Detector{extra: extra}
	d.part = detect.Share(func() []string {
		d.build()
		out := make([]string, len(d.more))
		for i, p := range d.more {
			out[i] = p.text
		}
		return out
	})
	return d
}

func (d *Detector) build() { d.once.Do(d.compile) }

// builtinPart holds the built-in phrases in the shared automaton.
var builtinPart = detect.Share(builtinTexts)

// ownAutomaton reports whether the detector scans with an automaton of its own (New with
// extra phrases) instead of the shared one.
func (d *Detector) ownAutomaton() bool { return len(d.extra) > 0 && d.part == nil }

// automaton returns the phrases' own keyword automaton, built once.
func (d *Detector) automaton() *detect.Keywords {
	d.kwOnce.Do(func() { d.kw = detect.NewKeywords(d.Patterns()) })
	return d.kw
}

// expandAll calls fn with each built-in phrase (lowercase, words separated by one space,
// distinct) and its template group, in the order of their ids. fn must not keep text.
func expandAll(fn func(text []byte, kind string, weight int)) {
	seen := make(map[string]struct{}, 11000)
	var buf, norm []byte
	for _, g := range templates {
		for _, t := range g.ts {
			expand(buf[:0], t, func(raw []byte) {
				buf = raw[:0] // keep the grown buffer
				norm = appendWords(norm[:0], raw)
				if _, ok := seen[string(norm)]; ok || len(norm) == 0 {
					return
				}
				seen[string(norm)] = struct{}{}
				fn(norm, g.kind, g.weight)
			})
		}
	}
}

// builtinTexts returns the texts of the built-in phrases, in the order of their ids.
func builtinTexts() []string {
	out := make([]string, 0, 11000)
	expandAll(func(s []byte, _ string, _ int) { out = append(out, string(s)) })
	return out
}

// builtin is the table of the built-in phrases, shared by every detector; kinds are
// numbered in order of appearance.
var builtin = sync.OnceValues(func() ([]phrase, []string) {
	var ps []phrase
	var kinds []string
	ids := map[string]int{}
	expandAll(func(s []byte, kind string, weight int) {
		if _, ok := ids[kind]; !ok {
			ids[kind] = len(kinds)
			kinds = append(kinds, kind)
		}
		ps = append(ps, phrase{weight: int16(weight), kindID: uint16(ids[kind]), word: wordFlags(s)})
	})
	return slices.Clip(ps), slices.Clip(kinds)
})

func (d *Detector) compile() {
	ps, kinds := builtin()
	d.phrases, d.kinds = ps, kinds
	if len(d.extra) > 0 {
		d.kinds = slices.Clone(kinds)
		seen := make(map[string]bool, len(d.extra))
		for _, e := range d.extra {
			seen[strings.ToLower(e.Text)] = false
		}
		expandAll(func(s []byte, _ string, _ int) {
			if _, ok := seen[string(s)]; ok {
				seen[string(s)] = true // built in already
			}
		})
		ids := map[string]int{}
		for i, k := range d.kinds {
			ids[k] = i
		}
		for _, e := range d.extra {
			text := strings.ToLower(e.Text)
			if seen[text] || strings.TrimSpace(text) == "" {
				continue
			}
			seen[text] = true
			id, ok := ids[e.Kind]
			if !ok {
				id = len(d.kinds)
				ids[e.Kind] = id
				d.kinds = append(d.kinds, e.Kind)
			}
			d.more = append(d.more, extraPhrase{text: text, n: int32(detect.PatternLen(text)),
				phrase: phrase{weight: int16(max(math.MinInt16, min(math.MaxInt16, e.Weight))), kindID: uint16(id), word: wordFlags(text)}})
		}
		d.more = slices.Clip(d.more)
	}
	caps := map[string]int{}
	for _, e := range d.extra {
		if e.Cap > 0 {
			caps[e.Kind] = e.Cap
		}
	}
	for _, k := range d.kinds {
		c := caps[k]
		if c == 0 {
			c = 2
		}
		d.caps = append(d.caps, c)
	}
}

// Default is the detector with the built-in phrases and the learned model.
var Default = New(nil).WithModel(Learned)

// Learned is the rule of findings of the learned model.
const LearnedRule = "learned"

// Thresholds of the score.
const (
	LowScore    = 2
	MediumScore = 5
	HighScore   = 8
)

// Hit is one phrase found.
type Hit struct {
	Phrase string
	Kind   string
	Weight int
	End    int // offset in the normalized text just past the phrase
}

// Result is the score of a text and the phrases behind it.
type Result struct {
	Score int
	Hits  []Hit
	Kinds []string
}

// wordByte reports bytes that continue a word (so that "add" does not match "address").
func wordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// Patterns returns the phrases, in the order Hit numbers them.
func (d *Detector) Patterns() []string {
	d.build()
	out := builtinTexts()
	for _, p := range d.more {
		out = append(out, p.text)
	}
	return out
}

// phrase returns phrase id (numbered as in Patterns) and the bytes it matches.
func (d *Detector) phrase(id int) (phrase, int) {
	if id < len(d.phrases) {
		if d.ownAutomaton() {
			return d.phrases[id], d.automaton().Len(id)
		}
		return d.phrases[id], detect.Shared().Len(builtinPart.Base() + id)
	}
	m := &d.more[id-len(d.phrases)]
	return m.phrase, int(m.n)
}

// text returns the text of phrase id.
func (d *Detector) text(id int) string {
	if id < len(d.phrases) {
		if d.ownAutomaton() {
			return d.automaton().Pattern(id)
		}
		return detect.Shared().Pattern(builtinPart.Base() + id)
	}
	return d.more[id-len(d.phrases)].text
}

// State scores one normalized text; feed it phrase hits with Hit, then call Result.
type State struct {
	d       *Detector
	norm    string
	r       Result
	counted []uint64 // bitset of phrase ids
	perKind []int    // by kindID
}

// Start returns the state for scoring normalized text.
func (d *Detector) Start(norm string) *State {
	d.build()
	return &State{d: d, norm: norm}
}

// Score scores normalized text (see detect.Normalize).
func (d *Detector) Score(norm string) Result {
	d.build()
	st := d.Start(norm)
	if d.ownAutomaton() {
		d.automaton().Scan(norm, func(id, end int) bool { st.Hit(id, end); return true })
	} else {
		detect.Shared().Scan(norm, func(id, end int) bool { st.HitShared(id, end); return true })
	}
	return st.Result()
}

// HitShared handles id of the shared automaton (detect.Shared, after it was built): the
// ids of the detector's phrases as Hit does, and nothing for the ids of other detectors'
// patterns. (The extra phrases of a detector made by New are not in the shared automaton.)
func (st *State) HitShared(id, end int) {
	if i, ok := builtinPart.Local(id); ok {
		st.Hit(i, end)
	} else if p := st.d.part; p != nil {
		if i, ok := p.Local(id); ok {
			st.Hit(len(st.d.phrases)+i, end)
		}
	}
}

// Hit handles phrase id (numbered as in Patterns) ending at end.
func (st *State) Hit(id, end int) {
	d, norm, r := st.d, st.norm, &st.r
	if st.perKind == nil {
		st.perKind = make([]int, len(d.kinds))
		st.counted = make([]uint64, (len(d.phrases)+len(d.more)+63)/64)
	}
	counted, perKind := st.counted, st.perKind
	func() bool {
		p, n := d.phrase(id)
		// Whole words: the phrase must not start or end inside a word.
		start := end - n
		if p.word&wordFirst != 0 && start > 0 && start <= len(norm) && wordByte(norm[start-1]) {
			return true
		}
		if p.word&wordLast != 0 && end < len(norm) && wordByte(norm[end]) {
			return true
		}
		if counted[id/64]&(1<<(id%64)) != 0 {
			return true
		}
		counted[id/64] |= 1 << (id % 64)
		if perKind[p.kindID] >= d.caps[p.kindID] { // a kind counts at most twice (by default)
			return true
		}
		perKind[p.kindID]++
		r.Score += int(p.weight)
		r.Hits = append(r.Hits, Hit{Phrase: d.text(id), Kind: d.kinds[p.kindID], Weight: int(p.weight), End: end})
		return true
	}()
}

// Result returns the score.
func (st *State) Result() Result {
	r := st.r
	r.Kinds = nil
	for id, n := range st.perKind {
		if n > 0 {
			r.Kinds = append(r.Kinds, st.d.kinds[id])
		}
	}
	sort.Strings(r.Kinds)
	return r
}

// Severity maps a score to a severity (Info below LowScore).
func Severity(score int) detect.Severity {
	switch {
	case score >= HighScore:
		return detect.High
	case score >= MediumScore:
		return detect.Medium
	case score >= LowScore:
		return detect.Low
	}
	return detect.Info
}

// Scan returns a finding when text reads as instructions to the model.
func (d *Detector) Scan(text, pointer string) []detect.Finding {
	d.build()
	return d.Findings(text, d.Score(detect.Normalize(text)), pointer)
}

// Findings turns the score of text into findings.
func (d *Detector) Findings(text string, r Result, pointer string) []detect.Finding {
	d.build()
	sev := Severity(r.Score)
	// Weak pressure words alone never make a finding above low.
	if sev > detect.Low && onlyKind(r, Pressure) && r.Score < HighScore {
		sev = detect.Low
	}
	if sev < detect.Medium && d.model != nil {
		if score, start, end, ok := d.model.Best(text); ok && score >= d.model.Threshold {
			return []detect.Finding{{Detector: Name, Rule: LearnedRule, Severity: detect.Medium, Pointer: pointer,
				Evidence: detect.Evidence(strings.TrimSpace(text[start:end])),
				Message:  fmt.Sprintf("a sentence reads as a request to the assistant (learned model, score %.1f)", score),
				Start:    start, End: end}}
		}
	}
	if sev == detect.Info {
		return nil
	}
	var phrases []string
	for _, h := range r.Hits {
		phrases = append(phrases, strings.TrimSpace(h.Phrase))
	}
	return []detect.Finding{{Detector: Name, Rule: strings.Join(r.Kinds, "+"), Severity: sev, Pointer: pointer,
		Evidence: detect.Evidence(strings.Join(phrases, " | ")),
		Message:  "the text addresses the model with instructions (" + strings.Join(r.Kinds, ", ") + ")",
		Start:    0, End: len(text)}}
}

func onlyKind(r Result, kinds ...string) bool {
	for _, k := range r.Kinds {
		ok := false
		for _, want := range kinds {
			if k == want {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
