package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/guards/approval"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

func init() {
	register("approvals", "approvals list|show|approve|deny --config FILE ...   (held calls waiting for a person)", approvalsCmd)
}

const approvalsUsage = `Usage:
  portcullis approvals list    --config FILE [--status pending|approved|denied|expired|all] [--limit N] [--json]
  portcullis approvals show    --config FILE ID [--json]
  portcullis approvals approve --config FILE ID [--scope once|session|duration] [--for 30m] [--note TEXT] [--as NAME]
  portcullis approvals deny    --config FILE ID [--note TEXT] [--as NAME]

approve and deny settle a pending approval in the gateway's store; the held call is released
(or refused) at once, whichever gateway process holds it. The approver is the OS user unless
--as names someone. Scopes: once (this call), session (the same arguments in the same client
session), duration (the same arguments by the same principal for --for).
`

func approvalsCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, approvalsUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("approvals "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "portcullis.yaml", "configuration file")
	var status, scope, note, as *string
	var limit *int
	var asJSON *bool
	var dur *time.Duration
	switch sub {
	case "list":
		status = fs.String("status", "pending", "pending, approved, denied, expired or all")
		limit = fs.Int("limit", 100, "at most this many, newest first (0: all)")
		asJSON = fs.Bool("json", false, "one JSON object per line")
	case "show":
		asJSON = fs.Bool("json", false, "as JSON")
	case "approve", "deny":
		if sub == "approve" {
			scope = fs.String("scope", "once", "once, session or duration")
			dur = fs.Duration("for", 0, "for scope duration: how long (e.g. 30m)")
		}
		note = fs.String("note", "", "why, for the audit trail")
		as = fs.String("as", "", "the approver's name (default: the OS user)")
	case "-h", "--help", "help":
		fmt.Fprint(stdout, approvalsUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "portcullis approvals: unknown subcommand %q\n%s", sub, approvalsUsage)
		return 2
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return 2
	}
	if sub == "list" && len(pos) != 0 || sub != "list" && len(pos) != 1 {
		fmt.Fprintf(stderr, "portcullis approvals %s: wrong arguments\n%s", sub, approvalsUsage)
		return 2
	}
	ctx := context.Background()
	st, _, ok := configStore(ctx, *cfgPath, stderr)
	if !ok {
		return 1
	}
	defer st.Close()
	switch sub {
	case "list":
		s := *status
		if s == "all" {
			s = ""
		}
		switch s {
		case "", store.ApprovalPending, store.ApprovalApproved, store.ApprovalDenied, store.ApprovalExpired:
		default:
			fmt.Fprintf(stderr, "portcullis approvals list: unknown --status %q\n", *status)
			return 2
		}
		as, err := st.ListApprovals(ctx, s, *limit)
		if err != nil {
			fmt.Fprintf(stderr, "portcullis: %v\n", err)
			return 1
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			for _, a := range as {
				enc.Encode(approvalJSON(a))
			}
			return 0
		}
		printApprovals(stdout, as)
		return 0
	case "show":
		a, err := st.GetApproval(ctx, pos[0])
		if err != nil {
			return approvalErr(stderr, pos[0], err)
		}
		if *asJSON {
			json.NewEncoder(stdout).Encode(approvalJSON(a))
			return 0
		}
		printApproval(stdout, a)
		return 0
	}
	approver := *as
	if approver == "" {
		u, err := user.Current()
		if err != nil || u.Username == "" {
			fmt.Fprintln(stderr, "portcullis: the OS user is unknown: name the approver with --as")
			return 1
		}
		approver = u.Username
	}
	d := approval.Decision{Approve: sub == "approve", Approver: approver, Via: "cli", Note: *note}
	if sub == "approve" {
		d.Scope, d.For = *scope, *dur
		if d.Scope != store.ScopeDuration && d.For != 0 {
			fmt.Fprintln(stderr, "portcullis approvals approve: --for goes with --scope duration")
			return 2
		}
	}
	a, err := approval.Settle(ctx, st, pos[0], d, time.Now())
	if err != nil {
		return approvalErr(stderr, pos[0], err, a)
	}
	fmt.Fprintf(stdout, "approval %s %s by %s (%s %s on %s for %s)\n", a.ID, a.Status, approver, a.Method, a.Tool, a.Server, a.Principal)
	return 0
}

func approvalErr(stderr io.Writer, id string, err error, a ...store.Approval) int {
	switch {
	case errors.Is(err, store.ErrNotFound):
		fmt.Fprintf(stderr, "portcullis: no approval %q (see portcullis approvals list)\n", id)
	case errors.Is(err, store.ErrNotPending) && len(a) > 0:
		by := ""
		if a[0].Approver != "" {
			by = " by " + a[0].Approver
		}
		fmt.Fprintf(stderr, "portcullis: approval %s is no longer pending: %s%s\n", id, a[0].Status, by)
	default:
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
	}
	return 1
}

func printApprovals(w io.Writer, as []store.Approval) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tPRINCIPAL\tSERVER\tTOOL\tARGUMENTS\tAPPROVERS\tEXPIRES\tDECIDED BY")
	for _, a := range as {
		args := string(a.Arguments)
		if len(args) > 60 {
			args = args[:57] + "..."
		}
		by := ""
		if a.Status != store.ApprovalPending {
			by = a.Approver
			if a.Via != "" {
				by += " via " + a.Via
			}
		}
		status := a.Status
		if status == store.ApprovalPending && time.Now().After(a.ExpiresAt) {
			status = "pending (past expiry: nobody waits)" // its gateway stopped; settling it marks it expired
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, status, a.Principal, a.Server, a.Tool, args,
			strings.Join(a.Approvers, ","), a.ExpiresAt.Local().Format(time.DateTime), strings.TrimSpace(by))
	}
	tw.Flush()
}

func printApproval(w io.Writer, a store.Approval) {
	fmt.Fprintf(w, "approval   %s\nstatus     %s\nprincipal  %s (%s)\nserver     %s\ncall       %s %s\narguments  %s\nreason     %s\n",
		a.ID, a.Status, a.Principal, a.PrincipalMethod, a.Server, a.Method, a.Tool, a.Arguments, a.Reason)
	if len(a.Approvers) > 0 {
		fmt.Fprintf(w, "approvers  %s\n", strings.Join(a.Approvers, ", "))
	}
	fmt.Fprintf(w, "created    %s\nexpires    %s\n", a.CreatedAt.Local().Format(time.RFC3339), a.ExpiresAt.Local().Format(time.RFC3339))
	if a.DecidedAt != nil {
		fmt.Fprintf(w, "decided    %s by %s via %s\n", a.DecidedAt.Local().Format(time.RFC3339), a.Approver, a.Via)
	}
	if a.Scope != "" {
		fmt.Fprintf(w, "scope      %s\n", a.Scope)
	}
	if a.GrantUntil != nil {
		fmt.Fprintf(w, "until      %s\n", a.GrantUntil.Local().Format(time.RFC3339))
	}
	if a.Note != "" {
		fmt.Fprintf(w, "note       %s\n", a.Note)
	}
}

func approvalJSON(a store.Approval) map[string]any {
	m := map[string]any{
		"id": a.ID, "status": a.Status, "principal": a.Principal, "auth_method": a.PrincipalMethod, "server": a.Server,
		"method": a.Method, "tool": a.Tool, "args_hash": a.ArgsHash, "session": a.Session, "reason": a.Reason,
		"approvers": a.Approvers, "created_at": a.CreatedAt, "expires_at": a.ExpiresAt,
	}
	if json.Valid(a.Arguments) {
		m["arguments"] = json.RawMessage(a.Arguments)
	}
	if a.DecidedAt != nil {
		m["decided_at"], m["approver"], m["via"], m["scope"], m["note"] = a.DecidedAt, a.Approver, a.Via, a.Scope, a.Note
	}
	if a.GrantUntil != nil {
		m["grant_until"] = a.GrantUntil
	}
	return m
}
