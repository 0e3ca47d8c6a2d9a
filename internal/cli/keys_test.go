package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/identity"
)

// writeTestConfig writes a configuration with the given auth lines into a temporary
// directory, with the store next to it.
func writeTestConfig(t *testing.T, auth string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "portcullis.yaml")
	data := auth + "store: {path: state/portcullis.db}\nservers: [{name: a, command: x}]\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var keyRE = regexp.MustCompile(`pc_[a-z2-7]{16}_[A-Za-z0-9_-]{43}`)

func TestKeysCommands(t *testing.T) {
	cfg := writeTestConfig(t, "auth: {api_keys: true}\n")
	code, out, errs := runCLI("keys", "create", "--config", cfg, "--name", "ci-bot", "--groups", "ci, deploy")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errs)
	}
	tok := strings.TrimSpace(out)
	if !keyRE.MatchString(tok) || tok != keyRE.FindString(out) {
		t.Fatalf("create printed %q, want only the key", out)
	}
	id, _, _ := identity.ParseKey(tok)
	if !strings.Contains(errs, "shown only this once") || !strings.Contains(errs, id) || strings.Contains(errs, tok) {
		t.Errorf("create stderr %q", errs)
	}
	if fi, err := os.Stat(filepath.Join(filepath.Dir(cfg), "state", "portcullis.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("store not created next to the configuration, 0600: %v", err)
	}

	code, out, _ = runCLI("keys", "list", "--config", cfg)
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "ci-bot") || !strings.Contains(out, "ci,deploy") || !strings.Contains(out, "active") {
		t.Errorf("list: exit %d:\n%s", code, out)
	}
	if strings.Contains(out, tok[20:]) {
		t.Error("list shows the secret")
	}

	// Flags after the id work too.
	code, out, errs = runCLI("keys", "revoke", id, "--config", cfg)
	if code != 0 || !strings.Contains(out, "revoked") {
		t.Errorf("revoke: exit %d: %s %s", code, out, errs)
	}
	_, out, _ = runCLI("keys", "list", "--config", cfg)
	if !strings.Contains(out, "revoked") {
		t.Errorf("list after revoke:\n%s", out)
	}
	if code, _, errs = runCLI("keys", "revoke", "--config", cfg, "nosuchkey"); code != 1 || !strings.Contains(errs, "no API key") {
		t.Errorf("revoke unknown: exit %d: %s", code, errs)
	}
	// The whole key also names it (revoking a leaked key).
	_, out, _ = runCLI("keys", "create", "--config", cfg, "--name", "leaky")
	if code, _, errs = runCLI("keys", "revoke", "--config", cfg, strings.TrimSpace(out)); code != 0 {
		t.Errorf("revoke by key: exit %d: %s", code, errs)
	}

	for _, args := range [][]string{
		{"keys"}, {"keys", "frob"}, {"keys", "create", "--config", cfg}, {"keys", "revoke", "--config", cfg},
		{"keys", "create", "--config", cfg, "--name", "a", "extra"},
	} {
		if code, _, _ := runCLI(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, errs := runCLI("keys", "create", "--config", cfg, "--name", "bad name"); code != 1 || !strings.Contains(errs, "key name") {
		t.Errorf("bad name: exit %d: %s", code, errs)
	}
}

func loadConfig(t *testing.T, path string) *config.Config {
	t.Helper()
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Without an auth section, serve requires API keys and creates the first one, once.
func TestSecureByDefault(t *testing.T) {
	cfg := loadConfig(t, writeTestConfig(t, ""))
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var stderr bytes.Buffer
	fa, err := setupAuth(ctx, cfg, "127.0.0.1:8931", &stderr, logger)
	if err != nil {
		t.Fatal(err)
	}
	tok := keyRE.FindString(stderr.String())
	if tok == "" || !strings.Contains(stderr.String(), "shown only this once") {
		t.Fatalf("no key printed:\n%s", stderr.String())
	}
	r := httptest.NewRequest("POST", "http://127.0.0.1:8931/mcp", nil)
	if _, err := fa.authenticate(r); err == nil {
		t.Error("a request without a key is accepted")
	}
	r.Header.Set("Authorization", "Bearer "+tok)
	if p, err := fa.authenticate(r); err != nil || p.ID != "admin" {
		t.Errorf("the printed key: %+v, %v", p, err)
	}
	fa.Close()

	// Second start: no new key.
	stderr.Reset()
	fa, err = setupAuth(ctx, cfg, "127.0.0.1:8931", &stderr, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	if keyRE.MatchString(stderr.String()) {
		t.Errorf("a second key was printed:\n%s", stderr.String())
	}
	keys, _ := fa.store.ListKeys(ctx)
	if len(keys) != 1 {
		t.Errorf("%d keys after two starts, want 1", len(keys))
	}
}

func TestAuthNoneRemote(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := loadConfig(t, writeTestConfig(t, "auth: none\n"))
	// --listen moves a loopback-only configuration to all interfaces: refused.
	if _, err := setupAuth(context.Background(), cfg, "0.0.0.0:8931", io.Discard, logger); err == nil || !strings.Contains(err.Error(), "allow_remote_none") {
		t.Errorf("none on 0.0.0.0: %v", err)
	}
	fa, err := setupAuth(context.Background(), cfg, "127.0.0.1:8931", io.Discard, logger)
	if err != nil || fa.authenticate != nil || fa.store != nil {
		t.Errorf("none on loopback: %+v, %v", fa, err)
	}
	cfg = loadConfig(t, writeTestConfig(t, "auth: {none: true, allow_remote_none: true}\n"))
	if _, err := setupAuth(context.Background(), cfg, "0.0.0.0:8931", io.Discard, logger); err != nil {
		t.Errorf("forced none on 0.0.0.0: %v", err)
	}
}

func TestOSPrincipal(t *testing.T) {
	p := osPrincipal()
	u, err := user.Current()
	if err != nil {
		t.Skip(err)
	}
	if p.ID != u.Username || p.Method != "os" || p.Claims["uid"] != u.Uid {
		t.Errorf("run mode principal = %+v, want user %s", p, u.Username)
	}
}
