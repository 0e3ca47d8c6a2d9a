package approval

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/guard"
	"github.com/portcullis-mcp/portcullis/internal/jsonrpc"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

// progressToken returns the request's _meta.progressToken when it has one of the types
// MCP allows (a string or an integer).
func progressToken(m *jsonrpc.Message) (json.RawMessage, bool) {
	raw, ok := jsonrpc.LookupPath(m.Params, "_meta", "progressToken")
	if !ok || len(raw) == 0 {
		return nil, false
	}
	if raw[0] == '"' || raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9' {
		return raw, true
	}
	return nil, false
}

// reportHeld tells the client of c, on the call's own stream, that the call waits for
// approval a: at once, then every ProgressInterval until ctx ends. The person asked
// sees why nothing happens, and a client that restarts its request timeout on progress
// (the TypeScript SDK's resetTimeoutOnProgress) waits as long as the approval may take
// instead of giving up after its own timeout (60 s in that SDK).
//
// progress is the seconds waited and total the approval's timeout, so progress
// increases with each report, as MCP requires. The server's own reports for the token,
// after the call is released, count from wherever the server starts.
func (g *Guard) reportHeld(ctx context.Context, c *guard.Call, a store.Approval, token json.RawMessage) {
	start := g.o.Now()
	who := "a person"
	if len(a.Approvers) > 0 {
		who = "a member of " + strings.Join(a.Approvers, " or ")
	}
	t := time.NewTicker(g.c.ProgressInterval)
	defer t.Stop()
	for {
		waited := g.o.Now().Sub(start)
		left := a.ExpiresAt.Sub(g.o.Now()).Round(time.Second)
		n := jsonrpc.NewNotification("notifications/progress", map[string]any{
			"progressToken": token,
			"progress":      waited.Seconds(),
			"total":         a.ExpiresAt.Sub(a.CreatedAt).Seconds(),
			"message":       fmt.Sprintf("waiting for %s to approve the call (approval %s, %s; %s left)", who, a.ID, a.Reason, max(left, 0)),
		})
		if err := c.Client.Notify(ctx, n); err != nil {
			if ctx.Err() == nil {
				g.log.LogAttrs(ctx, slog.LevelDebug, "could not tell the client its call is held", slog.String("approval", a.ID), slog.String("err", err.Error()))
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
