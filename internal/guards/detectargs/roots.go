package detectargs

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/detect/pathtrav"
	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
)

// clientRoots keeps, per session, the path checker bounded by the roots its client
// declared (MCP roots: the directories the user let the client share). It asks once per
// session, and again after the client says its roots changed.
type clientRoots struct {
	timeout time.Duration
	resolve bool
	mu      sync.Mutex
	m       map[string]*pathtrav.Checker
}

// maxSessions bounds the cache; past it, it starts over.
const maxSessions = 10000

func newClientRoots(timeout time.Duration, resolve bool) *clientRoots {
	return &clientRoots{timeout: timeout, resolve: resolve, m: map[string]*pathtrav.Checker{}}
}

func (r *clientRoots) forget(session string) {
	r.mu.Lock()
	delete(r.m, session)
	r.mu.Unlock()
}

// unrestricted checks escapes and sensitive files only.
var unrestricted = pathtrav.New(pathtrav.Options{})

// checker returns the checker for the call's session: bounded by the client's roots when
// it declared the roots capability and listed file roots, unrestricted otherwise.
func (r *clientRoots) checker(ctx context.Context, c *guard.Call, log *slog.Logger) *pathtrav.Checker {
	if c.Session == "" || c.Client == nil || !c.HasCapability("roots") {
		return unrestricted
	}
	r.mu.Lock()
	ch, ok := r.m[c.Session]
	r.mu.Unlock()
	if ok {
		return ch
	}
	roots, err := r.ask(ctx, c)
	ch = unrestricted
	if err != nil {
		log.LogAttrs(ctx, slog.LevelWarn, "client roots unavailable: paths are checked without roots", slog.String("session", c.Session), slog.String("error", err.Error()))
	} else if len(roots) > 0 {
		ch = pathtrav.New(pathtrav.Options{Roots: roots, ResolveSymlinks: r.resolve})
	}
	r.mu.Lock()
	if len(r.m) >= maxSessions {
		r.m = map[string]*pathtrav.Checker{}
	}
	r.m[c.Session] = ch
	r.mu.Unlock()
	return ch
}

// ask sends roots/list to the client (the transport gives it an id) and returns the paths
// of its file:// roots.
func (r *clientRoots) ask(ctx context.Context, c *guard.Call) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	resp, err := c.Client.Request(ctx, jsonrpc.NewRequest(jsonrpc.IntID(0), "roots/list", map[string]any{}))
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	return RootPaths(resp.Result)
}

// RootPaths reads a roots/list result: the local paths of its file:// roots.
func RootPaths(result []byte) ([]string, error) {
	var res struct {
		Roots []struct {
			URI string `json:"uri"`
		} `json:"roots"`
	}
	if err := json.Unmarshal(result, &res); err != nil {
		return nil, err
	}
	var out []string
	for _, rt := range res.Roots {
		u, err := url.Parse(rt.URI)
		if err != nil || u.Scheme != "file" || u.Path == "" || u.Host != "" && u.Host != "localhost" {
			continue
		}
		if !strings.HasPrefix(u.Path, "/") {
			continue
		}
		out = append(out, u.Path)
	}
	return out, nil
}
