package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-mcp/portcullis/internal/config"
)

// The Kubernetes manifests parse, and the configuration their ConfigMap carries loads with
// the Secret's files in place and the pod's IP in the environment.
func TestKubernetesManifests(t *testing.T) {
	dir := filepath.Join(repoRoot, "deploy", "kubernetes")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var cfgText string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		if doc.Kind == "ConfigMap" {
			cfgText = doc.Data["portcullis.yaml"]
		}
	}
	if cfgText == "" {
		t.Fatal("no ConfigMap with portcullis.yaml")
	}
	etc := t.TempDir()
	os.MkdirAll(filepath.Join(etc, "secrets"), 0o700)
	os.WriteFile(filepath.Join(etc, "secrets", "postgres-dsn"), []byte("postgres://u:p@db:5432/p?sslmode=disable"), 0o600)
	os.WriteFile(filepath.Join(etc, "secrets", "fleet-key"), []byte("a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5\n"), 0o600)
	path := filepath.Join(etc, "portcullis.yaml")
	os.WriteFile(path, []byte(cfgText), 0o644)
	t.Setenv("POD_IP", "10.0.0.7")
	c, err := config.Load(path)
	if err != nil {
		t.Fatalf("the ConfigMap's configuration: %v", err)
	}
	if c.Fleet.Advertise != "http://10.0.0.7:8931" || c.Store.Driver != "postgres" {
		t.Fatalf("fleet %q, store %q", c.Fleet.Advertise, c.Store.Driver)
	}
}
