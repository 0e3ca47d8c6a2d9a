package gateway

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/mcp"
)

// Keys of per-request metadata in the 2026-07-28 protocol.
const (
	MetaProtocolVersion    = mcp.MetaProtocolVersion
	MetaClientCapabilities = mcp.MetaClientCapabilities
	MetaClientInfo         = mcp.MetaClientInfo
	MetaServerInfo         = mcp.MetaServerInfo
)

// ModernVersion returns the protocol version a request declares in params._meta.
func ModernVersion(m *jsonrpc.Message) (string, bool) {
	raw, ok := jsonrpc.LookupPath(m.Params, "_meta", MetaProtocolVersion)
	if !ok {
		return "", false
	}
	var v string
	if json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	return v, true
}

// removedInModern are methods 2026-07-28 removed; a modern request for them is unknown.
var removedInModern = []string{"initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe",
	"notifications/initialized", "notifications/roots/list_changed", "tasks/list", "tasks/result"}

// cacheable are the methods whose results carry ttlMs and cacheScope in 2026-07-28.
var cacheable = []string{"tools/list", "prompts/list", "resources/list", "resources/read", "resources/templates/list", "server/discover"}

// CheckModern validates the per-request metadata of a sessionless request (CheckMeta),
// then the version and the method. It returns nil when the request may proceed.
func CheckModern(m *jsonrpc.Message) *jsonrpc.Error {
	if je := CheckMeta(m); je != nil {
		return je
	}
	v, _ := ModernVersion(m)
	if !slices.Contains(ModernVersions, v) {
		return UnsupportedVersion(v)
	}
	if slices.Contains(removedInModern, m.Method) {
		return jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method %q does not exist in protocol version %s", m.Method, v)
	}
	return nil
}

// CheckMeta checks that a sessionless request carries the required _meta fields.
func CheckMeta(m *jsonrpc.Message) *jsonrpc.Error {
	meta, ok := jsonrpc.Lookup(m.Params, "_meta")
	if !ok || len(meta) == 0 || meta[0] != '{' {
		return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "missing or invalid _meta field %q", MetaProtocolVersion)
	}
	if _, ok := jsonrpc.LookupString(meta, MetaProtocolVersion); !ok {
		return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "missing or invalid _meta field %q", MetaProtocolVersion)
	}
	if caps, ok := jsonrpc.Lookup(meta, MetaClientCapabilities); !ok || caps[0] != '{' {
		return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "missing or invalid _meta field %q", MetaClientCapabilities)
	}
	return nil
}

// UnsupportedVersion is the error for a protocol version the gateway does not speak.
func UnsupportedVersion(requested string) *jsonrpc.Error {
	return (&jsonrpc.Error{Code: jsonrpc.CodeUnsupportedProtocolVersion, Message: "Unsupported protocol version"}).
		WithData(map[string]any{"supported": append(slices.Clone(ModernVersions), LegacyVersions...), "requested": requested})
}

// HandleModern serves one request of a sessionless (2026-07-28) client. The caller has
// validated it with CheckModern.
func (g *Gateway) HandleModern(ctx context.Context, p identity.Principal, c Client, m *jsonrpc.Message) *jsonrpc.Message {
	return g.handleModern(ctx, g.all(), p, c, m)
}

func (g *Gateway) handleModern(ctx context.Context, sc scope, p identity.Principal, c Client, m *jsonrpc.Message) *jsonrpc.Message {
	ctx = identity.With(ctx, p) // this request's groups and claims, not the pool's first
	var resp *jsonrpc.Message
	if m.Method == "server/discover" {
		resp = g.discover(ctx, sc, p, c, m)
	} else {
		s, err := g.modernSession(ctx, sc, p, c)
		if err != nil {
			return jsonrpc.NewError(m.ID, jsonrpc.Errorf(jsonrpc.CodeUpstreamUnavailable, "%v", err))
		}
		resp = s.Handle(ctx, m)
	}
	if resp == nil || resp.Error != nil || len(resp.Result) == 0 || resp.Result[0] != '{' {
		return resp
	}
	return g.decorate(m.Method, resp)
}

// decorate adds the fields 2026-07-28 requires of results that a legacy server leaves out.
func (g *Gateway) decorate(method string, resp *jsonrpc.Message) *jsonrpc.Message {
	res := resp.Result
	if _, ok := jsonrpc.Lookup(res, "resultType"); !ok {
		res, _ = jsonrpc.Set(res, "resultType", json.RawMessage(`"complete"`))
	}
	if slices.Contains(cacheable, method) {
		if _, ok := jsonrpc.Lookup(res, "ttlMs"); !ok {
			res, _ = jsonrpc.Set(res, "ttlMs", json.RawMessage(`0`))
		}
		if _, ok := jsonrpc.Lookup(res, "cacheScope"); !ok {
			res, _ = jsonrpc.Set(res, "cacheScope", json.RawMessage(`"private"`))
		}
	}
	meta, ok := jsonrpc.Lookup(res, "_meta")
	if !ok || len(meta) == 0 || meta[0] != '{' {
		meta = json.RawMessage(`{}`)
	}
	if _, ok := jsonrpc.Lookup(meta, MetaServerInfo); !ok {
		meta, _ = jsonrpc.Set(meta, MetaServerInfo, g.serverInfo())
		res, _ = jsonrpc.Set(res, "_meta", meta)
	}
	out := *resp
	out.Result = res
	return &out
}

func (g *Gateway) serverInfo() json.RawMessage {
	b, _ := json.Marshal(map[string]string{"name": "portcullis", "version": g.opts.Version})
	return b
}

// discover answers server/discover with the gateway's versions and the servers' merged
// capabilities.
func (g *Gateway) discover(ctx context.Context, sc scope, p identity.Principal, c Client, m *jsonrpc.Message) *jsonrpc.Message {
	s, err := g.modernSession(ctx, sc, p, c)
	if err != nil {
		return jsonrpc.NewError(m.ID, jsonrpc.Errorf(jsonrpc.CodeUpstreamUnavailable, "%v", err))
	}
	var init map[string]json.RawMessage
	json.Unmarshal(s.mergedInit(LegacyVersions[0]), &init)
	res := map[string]any{
		"supportedVersions": append(slices.Clone(ModernVersions), LegacyVersions...),
		"capabilities":      init["capabilities"],
	}
	if ins, ok := init["instructions"]; ok {
		res["instructions"] = ins
	}
	return jsonrpc.NewResult(m.ID, res)
}
