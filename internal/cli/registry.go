package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"aead.dev/minisign"

	"github.com/portcullis-mcp/portcullis/internal/config"
	"github.com/portcullis-mcp/portcullis/internal/registry"
)

func init() {
	register("registry", "registry keygen|sign|verify|check|hash|spki ...   (the signed registry of servers)", registryCmd)
}

const registryUsage = `Usage:
  portcullis registry keygen --key FILE [--pub FILE]            new Ed25519 (minisign) key pair
  portcullis registry sign   --key FILE REGISTRY                writes REGISTRY.minisig
  portcullis registry verify --pub FILE|KEY REGISTRY            checks REGISTRY.minisig
  portcullis registry check  --config FILE                      the registry's verdict on the configured servers
  portcullis registry hash   EXECUTABLE                         the sha256 to write in an entry
  portcullis registry spki   [--insecure] URL                   the spki_sha256 of a server's certificate

The private key may be encrypted with a password read from PORTCULLIS_REGISTRY_PASSWORD
(keygen encrypts it when that variable is set). verify, check and serve name the entry
that was added, removed or changed after signing.
`

func registryCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, registryUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("registry "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	key := fs.String("key", "", "minisign private key file")
	pub := fs.String("pub", "", "minisign public key file, or the key")
	cfgPath := fs.String("config", "portcullis.yaml", "configuration file")
	insecure := fs.Bool("insecure", false, "do not verify the certificate chain (spki of a self-signed server)")
	switch sub {
	case "keygen", "sign", "verify", "check", "hash", "spki":
	case "-h", "--help", "help":
		fmt.Fprint(stdout, registryUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "portcullis registry: unknown subcommand %q\n%s", sub, registryUsage)
		return 2
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "portcullis: %v\n", err)
		return 1
	}
	needArgs := map[string]int{"keygen": 0, "sign": 1, "verify": 1, "check": 0, "hash": 1, "spki": 1}[sub]
	if len(pos) != needArgs {
		fmt.Fprintf(stderr, "portcullis registry %s: wrong number of arguments\n%s", sub, registryUsage)
		return 2
	}
	password := os.Getenv("PORTCULLIS_REGISTRY_PASSWORD")
	switch sub {
	case "keygen":
		if *key == "" {
			fmt.Fprint(stderr, "portcullis registry keygen: --key is required\n"+registryUsage)
			return 2
		}
		if *pub == "" {
			*pub = *key + ".pub"
		}
		pk, sk, err := minisign.GenerateKey(rand.Reader)
		if err != nil {
			return fail(err)
		}
		var skText []byte
		if password != "" {
			skText, err = minisign.EncryptKey(password, sk)
		} else {
			skText, err = sk.MarshalText()
		}
		if err != nil {
			return fail(err)
		}
		pkText, _ := pk.MarshalText()
		if err := writeNew(*key, skText, 0o600); err != nil {
			return fail(err)
		}
		if err := writeNew(*pub, append(pkText, '\n'), 0o644); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "private key %s (keep it off the gateway), public key %s:\n%s\n", *key, *pub, pk.String())
	case "sign":
		if *key == "" {
			fmt.Fprint(stderr, "portcullis registry sign: --key is required\n"+registryUsage)
			return 2
		}
		r, err := registry.Load(pos[0])
		if err != nil {
			return fail(err)
		}
		sk, err := registry.PrivateKey(*key, password)
		if err != nil {
			return fail(err)
		}
		sig := registry.Sign(r, sk)
		if err := os.WriteFile(registry.SignatureFile(r.File), sig, 0o644); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "signed %s (%d servers) with key %X: %s\n", r.File, len(r.Entries), sk.ID(), registry.SignatureFile(r.File))
	case "verify":
		if *pub == "" {
			fmt.Fprint(stderr, "portcullis registry verify: --pub is required\n"+registryUsage)
			return 2
		}
		r, err := registry.Load(pos[0])
		if err != nil {
			return fail(err)
		}
		pk, err := registry.PublicKey(*pub)
		if err != nil {
			return fail(err)
		}
		if err := registry.Verify(r, pk); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "%s: signature good (key %X), %d servers\n", r.File, pk.ID(), len(r.Entries))
	case "check":
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return fail(err)
		}
		g, err := checkRegistry(cfg, "")
		if err != nil {
			return fail(err)
		}
		for _, f := range g.findings {
			fmt.Fprintln(stdout, f.String())
		}
		if len(g.refused) > 0 {
			fmt.Fprintf(stdout, "%d server(s) refused: the gateway would not start\n", len(g.refused))
			return 1
		}
		fmt.Fprintf(stdout, "%d server(s) accepted, %d finding(s)\n", len(cfg.Servers), len(g.findings))
	case "hash":
		h, err := registry.HashFile(pos[0])
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, h)
	case "spki":
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		p, err := registry.FetchSPKI(ctx, pos[0], *insecure)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, p)
	}
	return 0
}

// writeNew writes a file that must not exist yet (keys are never overwritten).
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; keys are never overwritten", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
