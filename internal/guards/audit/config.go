package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	trail "github.com/portcullis-mcp/portcullis/internal/audit"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/metrics"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// Config is the guard's section, guards: audit: {...}.
type Config struct {
	// File is the JSONL trail. RotateBytes starts a new file past that size (0: never).
	File        string `yaml:"file"`
	RotateBytes int64  `yaml:"rotate_bytes"`
	// Sync: fsync each batch of events before the calls in it go on (default true).
	// false acknowledges once the kernel has the events: they survive a crash of the
	// gateway but not of the machine.
	Sync *bool `yaml:"sync"`
	// KeyFile holds the per-install HMAC key (created when missing). Default: audit.key
	// next to File; else $XDG_CONFIG_HOME/portcullis/audit.key when it exists; else next
	// to the SQLite database the trail goes into; else $XDG_CONFIG_HOME/portcullis.
	KeyFile string `yaml:"key_file"`
	// Arguments and Results: hashed (default: HMAC-SHA256 under the key), full, or omit.
	Arguments string `yaml:"arguments"`
	Results   string `yaml:"results"`
	// Timeout bounds one write to one sink (default 5s).
	Timeout time.Duration `yaml:"timeout"`

	Syslog  *SyslogConfig  `yaml:"syslog"`
	Webhook *WebhookConfig `yaml:"webhook"`
	// OTLP sends every event as an OpenTelemetry log record to an OTLP/HTTP collector.
	OTLP *OTLPConfig `yaml:"otlp"`
	// Alerts are rules on findings (severity, detector, rate); an alert is an event of its
	// own (PC8001W), which the webhook (events: alerts) hands to a SOAR.
	Alerts []AlertRule `yaml:"alerts"`
	// Store writes the trail into the gateway's store (the default sink when no other is
	// set): searchable by the audit command and the dashboard, shared by a fleet.
	Store *StoreConfig `yaml:"store"`
}

// WritesToStore reports whether the trail goes into the gateway's store: when store is set,
// or when no other sink is (the store is the default sink).
func (c Config) WritesToStore() bool {
	return c.Store != nil || c.File == "" && c.Syslog == nil && c.Webhook == nil && c.OTLP == nil
}

// StoreConfig is guards.audit.store.
type StoreConfig struct {
	// Chain names this process's hash chain. Default: the host name; on SQLite a process
	// that finds that chain's journal in use (another gateway, or the many `portcullis
	// run` processes of a wrapped desktop client) takes host-2, host-3, ...; without a
	// journal (PostgreSQL) the process id is added, so replicas never share a chain.
	// audit verify walks every chain.
	Chain string `yaml:"chain"`
	// Journal (SQLite only; default true) acknowledges an event once it is appended to a
	// journal next to the database, and moves the journal into the database in large
	// transactions off the call's path; false writes every batch in its own transaction.
	Journal *bool `yaml:"journal"`
}

// UnmarshalYAML decodes strictly; `store: true` is `store: {}`.
func (c *StoreConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		if n.Value != "true" {
			return fmt.Errorf("line %d: store: write true or a mapping ({chain: NAME}); leave it out to not use the store", n.Line)
		}
		return nil
	}
	type plain StoreConfig
	return strict(n, (*plain)(c), "chain", "journal")
}

func (c *StoreConfig) chain() string {
	if c.Chain != "" {
		return c.Chain
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "default"
	}
	return h
}

// SyslogConfig is guards.audit.syslog.
type SyslogConfig struct {
	Address    string `yaml:"address"` // host:port
	TLS        bool   `yaml:"tls"`
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
	Facility   int    `yaml:"facility"` // default 13 (log audit)
	Format     string `yaml:"format"`   // json (default), cef, ocsf
	QueueDir   string `yaml:"queue_dir"`
}

// WebhookConfig is guards.audit.webhook.
type WebhookConfig struct {
	URL      string            `yaml:"url"`
	Secret   string            `yaml:"secret"` // signs bodies; use ${ENV} in the file
	Headers  map[string]string `yaml:"headers"`
	Format   string            `yaml:"format"` // json (default), cef, ocsf
	QueueDir string            `yaml:"queue_dir"`
	Timeout  time.Duration     `yaml:"timeout"`
	// Events chooses what the webhook gets: all (default) or alerts (only PC8001W).
	Events string `yaml:"events"`
}

// OTLPConfig is guards.audit.otlp: OpenTelemetry logs over OTLP/HTTP (JSON).
type OTLPConfig struct {
	Endpoint    string            `yaml:"endpoint"` // the collector's base URL: http://127.0.0.1:4318
	Headers     map[string]string `yaml:"headers"`
	ServiceName string            `yaml:"service_name"`
	QueueDir    string            `yaml:"queue_dir"`
	Timeout     time.Duration     `yaml:"timeout"`
}

// UnmarshalYAML decodes strictly.
func (c *OTLPConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain OTLPConfig
	return strict(n, (*plain)(c), "endpoint", "headers", "service_name", "queue_dir", "timeout")
}

// strict decodes a mapping node into v, refusing unknown keys (the config package checks
// only the first level of a guard's section).
func strict(n *yaml.Node, v any, known ...string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: must be a mapping", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !slices.Contains(known, k.Value) {
			return fmt.Errorf("line %d: unknown field %q (known: %s)", k.Line, k.Value, strings.Join(known, ", "))
		}
	}
	return n.Decode(v)
}

// UnmarshalYAML decodes strictly.
func (c *SyslogConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain SyslogConfig
	return strict(n, (*plain)(c), "address", "tls", "ca_file", "cert_file", "key_file", "server_name", "facility", "format", "queue_dir")
}

// UnmarshalYAML decodes strictly.
func (c *WebhookConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain WebhookConfig
	return strict(n, (*plain)(c), "url", "secret", "headers", "format", "queue_dir", "timeout", "events")
}

// Policy says how arguments or results are written.
type Policy int

const (
	Hashed Policy = iota
	Full
	Omit
)

func parsePolicy(s string) (Policy, error) {
	switch s {
	case "", "hashed":
		return Hashed, nil
	case "full":
		return Full, nil
	case "omit":
		return Omit, nil
	}
	return 0, fmt.Errorf("%q: want hashed, full or omit", s)
}

// Validate checks the section without I/O.
func (c *Config) Validate() error {
	var errs []error
	if !c.hasSink() {
		errs = append(errs, errors.New("no sink: set file, store, syslog, webhook or otlp"))
	}
	if c.RotateBytes < 0 {
		errs = append(errs, errors.New("rotate_bytes must not be negative"))
	}
	if _, err := parsePolicy(c.Arguments); err != nil {
		errs = append(errs, fmt.Errorf("arguments: %w", err))
	}
	if _, err := parsePolicy(c.Results); err != nil {
		errs = append(errs, fmt.Errorf("results: %w", err))
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("timeout must not be negative"))
	}
	if s := c.Syslog; s != nil {
		if s.Address == "" {
			errs = append(errs, errors.New("syslog.address is required"))
		}
		if _, err := trail.FormatByName(s.Format); err != nil {
			errs = append(errs, fmt.Errorf("syslog.format: %w", err))
		}
		if s.QueueDir == "" && c.File == "" {
			errs = append(errs, errors.New("syslog.queue_dir is required when there is no audit file"))
		}
	}
	if w := c.Webhook; w != nil {
		if w.URL == "" {
			errs = append(errs, errors.New("webhook.url is required"))
		}
		if w.Secret == "" {
			errs = append(errs, errors.New("webhook.secret is required (it signs the bodies)"))
		}
		if _, err := trail.FormatByName(w.Format); err != nil {
			errs = append(errs, fmt.Errorf("webhook.format: %w", err))
		}
		if w.QueueDir == "" && c.File == "" {
			errs = append(errs, errors.New("webhook.queue_dir is required when there is no audit file"))
		}
		if w.Events != "" && w.Events != "all" && w.Events != "alerts" {
			errs = append(errs, fmt.Errorf("webhook.events %q: want all or alerts", w.Events))
		}
	}
	if o := c.OTLP; o != nil {
		if _, err := trail.NewOTLP(trail.OTLPOptions{Endpoint: o.Endpoint}); err != nil {
			errs = append(errs, fmt.Errorf("otlp.endpoint: %w", err))
		}
		if o.QueueDir == "" && c.File == "" {
			errs = append(errs, errors.New("otlp.queue_dir is required when there is no audit file"))
		}
	}
	if _, err := compileAlerts(c.Alerts); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Config) hasSink() bool {
	return c.File != "" || c.Syslog != nil || c.Webhook != nil || c.Store != nil || c.OTLP != nil
}

// keyFile is where the HMAC key lives: key_file; else next to the JSONL trail; else the
// user's configuration directory when a key is there already; else next to the SQLite
// database the trail goes into (a writable place, where a container whose home is read-
// only keeps its state); else the user's configuration directory.
func (c *Config) keyFile(st store.Store) string {
	if c.KeyFile != "" {
		return c.KeyFile
	}
	if c.File != "" {
		return filepath.Join(filepath.Dir(c.File), "audit.key")
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	user := filepath.Join(dir, "portcullis", "audit.key")
	if _, err := os.Stat(user); err == nil {
		return user
	}
	if p, ok := st.(interface{ Path() string }); ok && p.Path() != ":memory:" && c.WritesToStore() {
		return filepath.Join(filepath.Dir(p.Path()), "audit.key")
	}
	return user
}

func (c *Config) queueDir(name, set string) string {
	if set != "" {
		return set
	}
	return filepath.Join(filepath.Dir(c.File), "queue", name)
}

// spec is what identifies an open sink: the same spec on a reload keeps the same sink
// (and its place in the chain, backlog and queue).
func spec(kind string, v any) string {
	b, _ := json.Marshal(v)
	return kind + ":" + string(b)
}

// shared is the one broker of the process: the inbound and outbound chains, and the
// chains of every reload, record into the same trail.
var shared struct {
	mu     sync.Mutex
	broker *trail.Broker
	sinks  map[string]trail.Sink
	staged *staging // opened and probed for a transaction not yet settled
	once   sync.Once
}

func init() {
	guard.Register(Name, true, func(cfg guard.Config, env guard.Env) (guard.Middleware, error) {
		var c Config
		if cfg != nil {
			if err := cfg.Decode(&c); err != nil {
				return nil, err
			}
		}
		if c.WritesToStore() && c.Store == nil {
			c.Store = &StoreConfig{} // the default sink: the gateway's store
		}
		if err := c.Validate(); err != nil {
			return nil, err
		}
		logger := env.Logger
		if logger == nil {
			logger = slog.New(slog.DiscardHandler)
		}
		logger = logger.With("guard", Name)
		if checkOnly.Load() {
			alerts, _ := compileAlerts(c.Alerts)
			return New(discard{}, Options{Alerts: alerts, Logger: logger}), nil
		}
		b, err := open(c, env, logger)
		if err != nil {
			return nil, err
		}
		keyPath := c.keyFile(env.Store)
		key, err := trail.LoadKey(keyPath)
		if err != nil {
			return nil, fmt.Errorf("%w (the HMAC key for hashed arguments is %s: set guards.audit.key_file to a file this process may create or read)", err, keyPath)
		}
		args, _ := parsePolicy(c.Arguments)
		res, _ := parsePolicy(c.Results)
		alerts, _ := compileAlerts(c.Alerts)
		return New(b, Options{Key: key, Arguments: args, Results: res, Alerts: alerts, Logger: logger}), nil
	})
}

// Current returns the process's broker, or nil when no audit guard was set up.
func Current() *trail.Broker {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	return shared.broker
}

// Open returns the process's broker writing to the sinks c configures: sinks already
// open with the same settings are kept, new ones are opened and probed, and ones no
// longer configured are closed. It fails when no sink works: serve refuses to start, and a
// reload keeps the running configuration.
func Open(c Config, st store.AuditLog, logger *slog.Logger) (*trail.Broker, error) {
	return open(c, guard.Env{Store: asStore(st)}, logger)
}

func asStore(st store.AuditLog) store.Store {
	if s, ok := st.(store.Store); ok {
		return s
	}
	return nil
}

// open is Open within env's transaction: the new sinks are opened and probed now, but the
// broker switches to them (and closes the ones no longer configured) only when the
// transaction commits; an abort closes what was opened. The chains of one reload (inbound,
// outbound, the router's refusals) share one staging.
func open(c Config, env guard.Env, logger *slog.Logger) (*trail.Broker, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.sinks == nil {
		shared.sinks = map[string]trail.Sink{}
	}
	if env.Txn != nil && shared.staged != nil && shared.staged.txn == env.Txn {
		return shared.staged.broker, nil
	}
	var st store.AuditLog
	if env.Store != nil {
		st = env.Store
	}
	sg, err := stage(c, st, logger)
	if err != nil {
		return nil, err
	}
	sg.txn = env.Txn
	if env.Txn != nil {
		shared.staged = sg
	}
	env.Defer(func() {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		sg.commit()
		if shared.staged == sg {
			shared.staged = nil
		}
	}, func() {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		sg.abort()
		if shared.staged == sg {
			shared.staged = nil
		}
	})
	return sg.broker, nil
}

// staging is a set of sinks opened and probed, waiting for its transaction.
type staging struct {
	txn       *guard.Txn
	broker    *trail.Broker
	newBroker bool
	sinks     []trail.Sink
	byKey     map[string]trail.Sink
	opened    []trail.Sink
}

// stage opens and probes the sinks c configures (shared.mu held).
func stage(c Config, st store.AuditLog, logger *slog.Logger) (*staging, error) {
	type want struct {
		key  string
		open func() (trail.Sink, error)
	}
	var wants []want
	if c.File != "" {
		fo := trail.FileOptions{Path: c.File, RotateBytes: c.RotateBytes, NoSync: c.Sync != nil && !*c.Sync}
		wants = append(wants, want{spec("file", fo), func() (trail.Sink, error) { return trail.OpenFile(fo) }})
	}
	noSync := c.Sync != nil && !*c.Sync
	if s := c.Syslog; s != nil {
		qd := c.queueDir("syslog", s.QueueDir)
		wants = append(wants, want{spec("syslog", []any{s, qd, noSync}), func() (trail.Sink, error) {
			f, _ := trail.FormatByName(s.Format)
			d, err := trail.NewSyslog(trail.SyslogOptions{Address: s.Address, TLS: s.TLS, CAFile: s.CAFile, CertFile: s.CertFile,
				KeyFile: s.KeyFile, ServerName: s.ServerName, Facility: s.Facility, Format: f})
			if err != nil {
				return nil, err
			}
			return trail.NewQueued(d, trail.QueueOptions{Dir: qd, NoSync: noSync, Logger: logger})
		}})
	}
	if w := c.Webhook; w != nil {
		qd := c.queueDir("webhook", w.QueueDir)
		wants = append(wants, want{spec("webhook", []any{w, qd, noSync}), func() (trail.Sink, error) {
			f, _ := trail.FormatByName(w.Format)
			h := http.Header{}
			for k, v := range w.Headers {
				h.Set(k, v)
			}
			ct := ""
			if strings.EqualFold(w.Format, "cef") {
				ct = "text/plain; charset=utf-8"
			}
			d, err := trail.NewWebhook(trail.WebhookOptions{URL: w.URL, Secret: []byte(w.Secret), Header: h, Format: f, ContentType: ct, Timeout: w.Timeout})
			if err != nil {
				return nil, err
			}
			var filter func(*trail.Event) bool
			if w.Events == "alerts" {
				filter = func(e *trail.Event) bool { return e.Kind == trail.KindAlert }
			}
			return trail.NewQueued(d, trail.QueueOptions{Dir: qd, NoSync: noSync, Logger: logger, Timeout: w.Timeout, Filter: filter})
		}})
	}
	if o := c.OTLP; o != nil {
		qd := c.queueDir("otlp", o.QueueDir)
		wants = append(wants, want{spec("otlp", []any{o, qd, noSync}), func() (trail.Sink, error) {
			h := http.Header{}
			for k, v := range o.Headers {
				h.Set(k, v)
			}
			d, err := trail.NewOTLP(trail.OTLPOptions{Endpoint: o.Endpoint, Header: h, ServiceName: o.ServiceName, Timeout: o.Timeout})
			if err != nil {
				return nil, err
			}
			return trail.NewQueued(d, trail.QueueOptions{Dir: qd, NoSync: noSync, Logger: logger, Timeout: o.Timeout})
		}})
	}
	if c.Store != nil {
		chain := c.Store.chain()
		dbPath := ""
		if p, ok := st.(interface{ Path() string }); ok && p.Path() != ":memory:" && (c.Store.Journal == nil || *c.Store.Journal) {
			dbPath = p.Path()
		}
		wants = append(wants, want{spec("store", []string{chain, dbPath}), func() (trail.Sink, error) {
			if st == nil {
				return nil, errors.New("store: the gateway has no store to write the audit trail into")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if dbPath == "" {
				if c.Store.Chain == "" {
					// No journal to claim a chain with (PostgreSQL, or journal: false): the
					// process id keeps two processes on one host (replicas, or `run`s) off
					// one chain.
					chain += "-" + strconv.Itoa(os.Getpid())
				}
				return trail.OpenStore(ctx, st, chain)
			}
			// With the default chain (the host name), several processes on one host (a
			// `portcullis run` per server) each take the first chain no other one writes:
			// host, host-2, host-3, ...
			name := chain
			for i := 2; ; i++ {
				s, err := trail.OpenStoreJournal(ctx, st, name, trail.JournalOptions{Path: trail.JournalPath(dbPath, name), Logger: logger})
				if err == nil || !errors.Is(err, trail.ErrJournalInUse) || c.Store.Chain != "" || i > 64 {
					return s, err
				}
				name = fmt.Sprintf("%s-%d", chain, i)
			}
		}})
	}
	sg := &staging{byKey: map[string]trail.Sink{}}
	var errs []error
	working := 0
	for _, w := range wants {
		s, ok := shared.sinks[w.key]
		if !ok {
			var err error
			if s, err = w.open(); err != nil {
				errs = append(errs, err)
				continue
			}
			sg.opened = append(sg.opened, s)
		}
		sg.byKey[w.key] = s
		sg.sinks = append(sg.sinks, s)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.Probe(ctx)
		if q, isQ := s.(*trail.QueuedSink); isQ && err == nil && !ok {
			if rerr := q.ProbeRemote(ctx); rerr != nil {
				logger.Warn("audit receiver unreachable at start; events wait in its queue until it is up", "sink", s.Name(), "err", rerr)
			}
		}
		cancel()
		if err != nil {
			logger.Error("audit sink does not work", "sink", s.Name(), "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
			continue
		}
		working++
	}
	if working == 0 {
		sg.closeOpened()
		return nil, fmt.Errorf("audit is on but no sink works: %w", errors.Join(errs...))
	}
	if shared.broker == nil {
		b, err := trail.NewBroker(sg.sinks, trail.Options{Timeout: c.Timeout, Logger: logger})
		if err != nil {
			sg.closeOpened()
			return nil, err
		}
		// The trail's first event goes into the store now rather than with the journal's
		// next move: the chain is then in the store (where the audit commands find it)
		// from the start. A store that does not take it keeps it in the journal.
		for _, s := range sg.sinks {
			if ss, ok := s.(*trail.StoreSink); ok {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				ss.Flush(ctx)
				cancel()
			}
		}
		shared.broker = b
		sg.newBroker = true
		shared.once.Do(func() { metrics.Default.OnScrape(scrape) })
	}
	sg.broker = shared.broker
	return sg, nil
}

func (sg *staging) closeOpened() {
	for _, s := range sg.opened {
		s.Close()
	}
}

// commit switches the broker to the staged sinks and closes those no longer configured
// (shared.mu held).
func (sg *staging) commit() {
	if !sg.newBroker {
		sg.broker.SetSinks(sg.sinks)
	}
	for k, s := range shared.sinks {
		if _, keep := sg.byKey[k]; !keep {
			s.Close()
		}
	}
	shared.sinks = sg.byKey
}

// abort closes what was opened for the staging; the running sinks stay (shared.mu held).
func (sg *staging) abort() {
	if sg.newBroker {
		sg.broker.Close() // closes the sinks too
		shared.broker = nil
		return
	}
	sg.closeOpened()
}

// Close closes the process's broker (tests, and serve at exit).
func Close() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.broker == nil {
		return nil
	}
	err := shared.broker.Close()
	shared.broker = nil
	shared.sinks = nil
	return err
}

func scrape(w io.Writer) {
	shared.mu.Lock()
	b := shared.broker
	var queued []*trail.QueuedSink
	for _, s := range shared.sinks {
		if q, ok := s.(*trail.QueuedSink); ok {
			queued = append(queued, q)
		}
	}
	shared.mu.Unlock()
	if b == nil {
		return
	}
	io.WriteString(w, "# HELP portcullis_audit_sink_failures_total Failed writes to an audit sink.\n# TYPE portcullis_audit_sink_failures_total counter\n")
	stats := b.Stats()
	for _, s := range stats {
		metrics.Gauge(w, "portcullis_audit_sink_failures_total", float64(s.Failures), "sink", s.Name)
	}
	io.WriteString(w, "# HELP portcullis_audit_sink_backlog Events waiting in memory for a failing audit sink.\n# TYPE portcullis_audit_sink_backlog gauge\n")
	for _, s := range stats {
		metrics.Gauge(w, "portcullis_audit_sink_backlog", float64(s.Backlog), "sink", s.Name)
	}
	if len(queued) > 0 {
		io.WriteString(w, "# HELP portcullis_audit_queue_bytes Bytes of events in an on-disk queue, not yet delivered.\n# TYPE portcullis_audit_queue_bytes gauge\n")
		for _, q := range queued {
			metrics.Gauge(w, "portcullis_audit_queue_bytes", float64(q.Pending()), "sink", q.Name())
		}
	}
}

// checkOnly makes the guard's setup validate its section without opening a sink
// (`portcullis config check` next to a running gateway must not write to its trail or
// deliver from its queues).
var checkOnly atomic.Bool

// SetCheckOnly turns check-only setup on or off.
func SetCheckOnly(v bool) { checkOnly.Store(v) }

type discard struct{}

func (discard) Record(context.Context, *trail.Event) error { return nil }
