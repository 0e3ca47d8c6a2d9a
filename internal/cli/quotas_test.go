package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/store"
)

func TestQuotasCommands(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "portcullis.yaml")
	data := `auth: none
store: {path: portcullis.db}
servers: [{name: a, command: x}]
guards:
  limits:
    rules:
      - {name: sums, daily_calls: 3}
      - {name: wallet, daily_budget: 100}
`
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, _, err := openStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Format(time.DateOnly)
	if _, ok, err := st.AddQuotas(ctx, today, []store.QuotaAdd{
		{Key: "sums/calls/p=apikey:alice", N: 3, Cap: 3}, {Key: "wallet/units/p=apikey:alice", N: 42, Cap: 100}, {Key: "gone/calls", N: 1, Cap: -1},
	}); err != nil || !ok {
		t.Fatalf("AddQuotas: %v %v", ok, err)
	}
	st.Close()

	code, out, errs := runCLI("quotas", "list", "--config", path)
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errs)
	}
	for _, want := range []string{"CAP (" + today + ")", "sums/calls/p=apikey:alice    sums    calls   3     3", "units   42    100", "gone/calls", "-"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI("quotas", "list", "--config", path, "--json")
	var u struct {
		Key, Rule, Counts string
		Used, Cap         int64
	}
	if code != 0 || json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &u) != nil || u.Key != "gone/calls" || u.Cap != 0 {
		t.Errorf("list --json: exit %d: %s", code, out)
	}
	code, out, errs = runCLI("quotas", "reset", "--config", path, "sums/calls/p=apikey:alice")
	if code != 0 || !strings.Contains(out, "1 counters of "+today+" reset") {
		t.Fatalf("reset: exit %d: %s %s", code, out, errs)
	}
	_, out, _ = runCLI("quotas", "list", "--config", path, "--json")
	if !strings.Contains(out, `{"key":"sums/calls/p=apikey:alice","rule":"sums","counts":"calls","used":0,"cap":3}`) {
		t.Errorf("after reset:\n%s", out)
	}
	code, out, _ = runCLI("quotas", "list", "--config", path, "--day", "2020-01-01")
	if code != 0 || strings.Count(out, "\n") != 1 {
		t.Errorf("another day: exit %d:\n%s", code, out)
	}
	for _, bad := range [][]string{{"quotas"}, {"quotas", "list", "--config", path, "extra"}, {"quotas", "reset", "--config", path}, {"quotas", "list", "--config", path, "--day", "tomorrow"}} {
		if code, _, _ := runCLI(bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}
