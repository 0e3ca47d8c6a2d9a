package audit

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-mcp/portcullis/internal/store/sqlite"
)

// Where the HMAC key lives by default: next to a JSONL trail; in the user's configuration
// directory when a key is there already (installs from before audit was on by default);
// else next to the SQLite database the trail goes into, which is writable where the home
// directory may not be (a container); else the user's configuration directory.
func TestKeyFileDefault(t *testing.T) {
	dir := t.TempDir()
	cfgHome := filepath.Join(dir, "config")
	t.Setenv("XDG_CONFIG_HOME", cfgHome)
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "state", "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mem, err := sqlite.Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	user := filepath.Join(cfgHome, "portcullis", "audit.key")
	for _, tc := range []struct {
		name string
		c    Config
		st   *sqlite.Store
		want string
	}{
		{"key_file", Config{KeyFile: "/k/audit.key"}, st, "/k/audit.key"},
		{"next to the file", Config{File: "/var/log/pc/audit.jsonl"}, st, "/var/log/pc/audit.key"},
		{"next to the database", Config{}, st, filepath.Join(dir, "state", "audit.key")},
		{"store named with syslog", Config{Store: &StoreConfig{}, Syslog: &SyslogConfig{}}, st, filepath.Join(dir, "state", "audit.key")},
		{"syslog only", Config{Syslog: &SyslogConfig{}}, st, user},
		{"in-memory store", Config{}, mem, user},
	} {
		if got := tc.c.keyFile(tc.st); got != tc.want {
			t.Errorf("%s: key file %s, want %s", tc.name, got, tc.want)
		}
	}
	// A key the user's configuration directory has already is kept.
	os.MkdirAll(filepath.Dir(user), 0o700)
	os.WriteFile(user, []byte("k"), 0o600)
	if got := (&Config{}).keyFile(st); got != user {
		t.Errorf("with a key in the configuration directory: %s, want %s", got, user)
	}
}
