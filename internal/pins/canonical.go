// Package pins keeps every tool, prompt and resource template definition a server offers
// pinned to the definition a person (or first use) approved, so that a server that
// changes a definition after it was trusted (a rug pull) is caught: the changed item is
// hidden and its calls refused until someone approves the change.
//
// A definition is hashed over its canonical JSON: the fields a model reads (name, title,
// description, schemas, annotations, prompt arguments), with object keys sorted and no
// insignificant space, so that reordering keys or reformatting never counts as a change
// and any change of meaning does. _meta, icons and pagination are left out.
//
// The Checker is what the registry guard asks on every listing and call; List, Diff,
// Approve and Reset are what the pins command and the dashboard use. All state is in a
// store.Pins, shared by every gateway process and the command line; a gateway re-reads it
// when its version counter moved.
package pins

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Kinds of definitions.
const (
	KindTool     = "tool"
	KindPrompt   = "prompt"
	KindTemplate = "resource_template"
)

// Kinds lists the kinds, in the order the command line shows them.
var Kinds = []string{KindTool, KindPrompt, KindTemplate}

// fields are the members of a definition that are pinned, by kind.
var fields = map[string][]string{
	KindTool:     {"name", "title", "description", "inputSchema", "outputSchema", "annotations"},
	KindPrompt:   {"name", "title", "description", "arguments"},
	KindTemplate: {"uriTemplate", "name", "title", "description", "mimeType", "annotations"},
}

// ListKind returns the kind of the items of a list method and the result member holding
// them.
func ListKind(method string) (kind, field string, ok bool) {
	switch method {
	case "tools/list":
		return KindTool, "tools", true
	case "prompts/list":
		return KindPrompt, "prompts", true
	case "resources/templates/list":
		return KindTemplate, "resourceTemplates", true
	}
	return "", "", false
}

// KeyField is the member that names an item of kind.
func KeyField(kind string) string {
	if kind == KindTemplate {
		return "uriTemplate"
	}
	return "name"
}

// Canonical returns the canonical JSON of a definition of kind (a JSON object as a server
// lists it) and its hash, "sha256:<hex>". name, when not empty, replaces the item's key
// field (the server's own name of an item the gateway listed with a prefix).
func Canonical(kind string, item []byte, name string) (canon []byte, hash string, err error) {
	fs, ok := fields[kind]
	if !ok {
		return nil, "", fmt.Errorf("pins: unknown kind %q", kind)
	}
	dec := json.NewDecoder(bytes.NewReader(item))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, "", fmt.Errorf("pins: %s definition: %w", kind, err)
	}
	if obj == nil {
		return nil, "", errors.New("pins: definition is not a JSON object")
	}
	sel := make(map[string]any, len(fs))
	for _, f := range fs {
		if v, ok := obj[f]; ok {
			sel[f] = v
		}
	}
	if name != "" {
		sel[KeyField(kind)] = name
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(sel); err != nil { // maps encode with sorted keys
		return nil, "", fmt.Errorf("pins: %s definition: %w", kind, err)
	}
	canon = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return canon, Hash(canon), nil
}

// Hash is the hash of a canonical definition.
func Hash(canon []byte) string {
	sum := sha256.Sum256(canon)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Short is a hash cut to what people compare by eye.
func Short(hash string) string {
	if len(hash) > 19 {
		return hash[:19]
	}
	return hash
}
