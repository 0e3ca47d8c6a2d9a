package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/identity"
	"github.com/portcullis-mcp/portcullis/internal/store/postgres/pgtest"
)

// keys create/list/revoke against PostgreSQL: the DSN comes from the environment through
// ${VAR}, and two configurations (two replicas) see the same keys.
func TestKeysOnPostgres(t *testing.T) {
	dsn := pgtest.Schema(t)
	t.Setenv("PORTCULLIS_TEST_DSN", dsn)
	var cfgs []string
	for _, name := range []string{"a.yaml", "b.yaml"} {
		path := filepath.Join(t.TempDir(), name)
		data := "auth: {api_keys: true}\nstore: {driver: postgres, dsn: \"${PORTCULLIS_TEST_DSN}\"}\nservers: [{name: a, command: x}]\n"
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, path)
	}
	code, out, errs := runCLI("keys", "create", "--config", cfgs[0], "--name", "ci-bot")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errs)
	}
	id, _, err := identity.ParseKey(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("create printed %q: %v", out, err)
	}
	if strings.Contains(errs, "postgres@") || !strings.Contains(errs, "postgres://127.0.0.1") {
		t.Errorf("create names the store %q; want the host and database without the user", errs)
	}
	if code, _, errs := runCLI("keys", "revoke", "--config", cfgs[1], id); code != 0 {
		t.Fatalf("revoke through the second configuration: exit %d: %s", code, errs)
	}
	code, out, _ = runCLI("keys", "list", "--config", cfgs[0])
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "revoked") {
		t.Errorf("list: exit %d:\n%s", code, out)
	}
}
