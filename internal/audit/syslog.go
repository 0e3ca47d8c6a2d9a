package audit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SyslogOptions parameterize a syslog deliverer: RFC 5424 messages over TCP or TLS
// (RFC 5425), framed by octet counting (RFC 6587 3.4.1).
type SyslogOptions struct {
	Address string // host:port
	TLS     bool
	// CAFile verifies the receiver's certificate (default: the system roots); CertFile and
	// KeyFile present a client certificate. ServerName overrides the name checked.
	CAFile, CertFile, KeyFile, ServerName string
	Facility                              int    // default 13 (log audit)
	Hostname                              string // default os.Hostname
	AppName                               string // default "portcullis"
	Format                                Format // the MSG part; default FormatJSON
	DialTimeout                           time.Duration
}

// Syslog sends events to a syslog receiver.
type Syslog struct {
	o     SyslogOptions
	tls   *tls.Config
	procs string
	mu    sync.Mutex
	conn  net.Conn
}

// NewSyslog returns a syslog deliverer; it connects on first use.
func NewSyslog(o SyslogOptions) (*Syslog, error) {
	if _, _, err := net.SplitHostPort(o.Address); err != nil {
		return nil, fmt.Errorf("syslog address %q: %w", o.Address, err)
	}
	if o.Facility == 0 {
		o.Facility = 13
	}
	if o.Facility < 0 || o.Facility > 23 {
		return nil, fmt.Errorf("syslog facility %d: want 0..23", o.Facility)
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	if o.Hostname == "" {
		o.Hostname = "-"
	}
	if o.AppName == "" {
		o.AppName = "portcullis"
	}
	if o.Format == nil {
		o.Format = FormatJSON
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	s := &Syslog{o: o, procs: strconv.Itoa(os.Getpid())}
	if o.TLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(o.Address)
		}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("syslog ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("syslog ca_file %s: no certificates", o.CAFile)
			}
			cfg.RootCAs = pool
		}
		if o.CertFile != "" || o.KeyFile != "" {
			cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("syslog client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		s.tls = cfg
	}
	return s, nil
}

// Name implements Deliverer.
func (s *Syslog) Name() string { return "syslog" }

var sdEscape = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`)

// Encode implements Deliverer: an RFC 5424 message. MSGID is the event code; the
// structured data element portcullis@32473 carries the id and the chain.
func (s *Syslog) Encode(dst []byte, e *Event) []byte {
	sev := 6 // informational
	switch e.Code[len(e.Code)-1] {
	case 'W':
		sev = 4
	case 'E':
		sev = 3
	case 'A':
		sev = 1 // alert
	}
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(s.o.Facility*8+sev), 10)
	dst = append(dst, ">1 "...)
	dst = e.Time.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	dst = append(dst, ' ')
	dst = append(dst, header(s.o.Hostname, 255)...)
	dst = append(dst, ' ')
	dst = append(dst, header(s.o.AppName, 48)...)
	dst = append(dst, ' ')
	dst = append(dst, s.procs...)
	dst = append(dst, ' ')
	dst = append(dst, header(e.Code, 32)...)
	dst = append(dst, ` [portcullis@32473 id="`...)
	dst = append(dst, sdEscape.Replace(e.ID)...)
	dst = append(dst, `" seq="`...)
	dst = strconv.AppendUint(dst, e.Seq, 10)
	dst = append(dst, `" prev="`...)
	dst = append(dst, e.Prev...)
	dst = append(dst, `" hash="`...)
	dst = append(dst, e.Hash...)
	if e.Decision != "" {
		dst = append(dst, `" decision="`...)
		dst = append(dst, sdEscape.Replace(e.Decision)...)
	}
	dst = append(dst, `"] `...)
	return s.o.Format(dst, e)
}

// header makes a PRINTUSASCII header field.
func header(v string, n int) string {
	if v == "" {
		return "-"
	}
	b := []byte(v)
	for i, c := range b {
		if c <= 32 || c >= 127 {
			b[i] = '_'
		}
	}
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

func (s *Syslog) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: s.o.DialTimeout, KeepAlive: 30 * time.Second}
	if s.tls != nil {
		td := &tls.Dialer{NetDialer: d, Config: s.tls}
		return td.DialContext(ctx, "tcp", s.o.Address)
	}
	return d.DialContext(ctx, "tcp", s.o.Address)
}

// alive reports whether the receiver has not closed the connection: a receiver that went
// away would otherwise swallow the next write.
func alive(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Deliver implements Deliverer.
func (s *Syslog) Deliver(ctx context.Context, id string, record []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && !alive(s.conn) {
		s.conn.Close()
		s.conn = nil
	}
	if s.conn == nil {
		c, err := s.dial(ctx)
		if err != nil {
			return fmt.Errorf("syslog: %w", err)
		}
		s.conn = c
	}
	frame := make([]byte, 0, len(record)+8)
	frame = strconv.AppendInt(frame, int64(len(record)), 10)
	frame = append(frame, ' ')
	frame = append(frame, record...)
	if dl, ok := ctx.Deadline(); ok {
		s.conn.SetWriteDeadline(dl)
	}
	if _, err := s.conn.Write(frame); err != nil {
		s.conn.Close()
		s.conn = nil
		return fmt.Errorf("syslog: %w", err)
	}
	return nil
}

// Probe implements Deliverer: connect.
func (s *Syslog) Probe(ctx context.Context) error {
	c, err := s.dial(ctx)
	if err != nil {
		return fmt.Errorf("syslog: %w", err)
	}
	return c.Close()
}

// Close implements Deliverer.
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		err := s.conn.Close()
		s.conn = nil
		return err
	}
	return nil
}
