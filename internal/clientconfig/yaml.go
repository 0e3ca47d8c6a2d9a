package clientconfig

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// yamlFormat is Continue's config.yaml (and the block files in .continue/mcpServers/): a
// list of servers under mcpServers, each with a name and command/args/env or type/url.
// Rewriting re-encodes the YAML document (comments stay; layout may change).
type yamlFormat struct{}

type yamlDoc struct {
	path string
	data []byte
	root yaml.Node
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func (yamlFormat) parse(c *Client, path string, data []byte) (document, error) {
	d := &yamlDoc{path: path, data: data}
	if err := yaml.Unmarshal(data, &d.root); err != nil {
		line := 0
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		return nil, &Error{Path: path, Line: line, Msg: "not valid YAML: " + err.Error()}
	}
	if len(d.root.Content) > 0 && d.root.Content[0].Kind != yaml.MappingNode {
		return nil, &Error{Path: path, Line: d.root.Content[0].Line, Msg: "not valid: the file must hold a mapping"}
	}
	return d, nil
}

func mapGet(n *yaml.Node, key string) (*yaml.Node, int) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, -1
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1], i
		}
	}
	return nil, -1
}

func (d *yamlDoc) list() (*yaml.Node, error) {
	if len(d.root.Content) == 0 {
		return nil, nil
	}
	l, _ := mapGet(d.root.Content[0], "mcpServers")
	if l == nil {
		return nil, nil
	}
	if l.Kind != yaml.SequenceNode {
		return nil, &Error{Path: d.path, Line: l.Line, Msg: "mcpServers must be a list of servers"}
	}
	return l, nil
}

func (d *yamlDoc) entries() ([]Entry, error) {
	l, err := d.list()
	if l == nil {
		return nil, err
	}
	var out []Entry
	for i, n := range l.Content {
		var s struct {
			Name           string            `yaml:"name"`
			Type           string            `yaml:"type"`
			Command        string            `yaml:"command"`
			Args           []string          `yaml:"args"`
			Env            map[string]string `yaml:"env"`
			Cwd            string            `yaml:"cwd"`
			URL            string            `yaml:"url"`
			RequestOptions struct {
				Headers map[string]string `yaml:"headers"`
			} `yaml:"requestOptions"`
		}
		if err := n.Decode(&s); err != nil {
			return nil, &Error{Path: d.path, Line: n.Line, Msg: fmt.Sprintf("server %d: %v", i+1, err)}
		}
		e := Entry{Name: s.Name, Scope: "user", Pointer: fmt.Sprintf("/mcpServers/%d", i), Line: n.Line,
			Command: s.Command, Args: s.Args, Env: s.Env, Cwd: s.Cwd, URL: s.URL, Headers: s.RequestOptions.Headers}
		if e.Name == "" {
			e.Name = fmt.Sprintf("server-%d", i+1)
		}
		switch {
		case s.Command != "":
			e.Transport = Stdio
		case s.Type == "sse":
			e.Transport = SSE
		case s.URL != "":
			e.Transport = HTTP
		default:
			return nil, &Error{Path: d.path, Line: n.Line, Msg: fmt.Sprintf("server %q: neither a command nor a url", e.Name)}
		}
		out = append(out, e)
	}
	return out, nil
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }

func setKey(m *yaml.Node, key string, v *yaml.Node) {
	if _, i := mapGet(m, key); i >= 0 {
		m.Content[i+1] = v
		return
	}
	m.Content = append(m.Content, scalar(key), v)
}

func delKey(m *yaml.Node, key string) {
	if _, i := mapGet(m, key); i >= 0 {
		m.Content = append(m.Content[:i], m.Content[i+2:]...)
	}
}

func (d *yamlDoc) restore(orig document, pointers []string) ([]byte, error) {
	o, ok := orig.(*yamlDoc)
	if !ok {
		return nil, &Error{Path: d.path, Msg: "cannot restore from another format"}
	}
	d = &yamlDoc{path: d.path, data: d.data}
	if err := yaml.Unmarshal(d.data, &d.root); err != nil {
		return nil, &Error{Path: d.path, Msg: err.Error()}
	}
	cur, err := d.list()
	if err != nil {
		return nil, err
	}
	was, err := o.list()
	if err != nil {
		return nil, err
	}
	for _, p := range pointers {
		var i int
		if _, err := fmt.Sscanf(p, "/mcpServers/%d", &i); err != nil || cur == nil || was == nil || i < 0 || i >= len(cur.Content) || i >= len(was.Content) {
			continue
		}
		cur.Content[i] = was.Content[i]
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&d.root); err != nil {
		return nil, &Error{Path: d.path, Msg: err.Error()}
	}
	enc.Close()
	return buf.Bytes(), nil
}

func (d *yamlDoc) rewrite(changes []Change) ([]byte, error) {
	d = &yamlDoc{path: d.path, data: d.data} // edit a copy
	if err := yaml.Unmarshal(d.data, &d.root); err != nil {
		return nil, &Error{Path: d.path, Msg: err.Error()}
	}
	l, err := d.list()
	if err != nil {
		return nil, err
	}
	for _, ch := range changes {
		var i int
		if _, err := fmt.Sscanf(ch.Pointer, "/mcpServers/%d", &i); err != nil || l == nil || i < 0 || i >= len(l.Content) {
			return nil, &Error{Path: d.path, Msg: "no server at " + ch.Pointer}
		}
		n := l.Content[i]
		if ch.URL != "" {
			for _, k := range []string{"command", "args", "env", "cwd", "requestOptions"} {
				delKey(n, k)
			}
			if t, _ := mapGet(n, "type"); t != nil {
				setKey(n, "type", scalar("streamable-http"))
			}
			setKey(n, "url", scalar(ch.URL))
			if len(ch.Headers) > 0 {
				hs := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
				for _, k := range sortedKeys(ch.Headers) {
					hs.Content = append(hs.Content, scalar(k), scalar(ch.Headers[k]))
				}
				setKey(n, "requestOptions", &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{scalar("headers"), hs}})
			}
			continue
		}
		delKey(n, "url")
		delKey(n, "requestOptions")
		if t, _ := mapGet(n, "type"); t != nil {
			setKey(n, "type", scalar("stdio"))
		}
		setKey(n, "command", scalar(ch.Command))
		args := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for _, a := range ch.Args {
			args.Content = append(args.Content, scalar(a))
		}
		setKey(n, "args", args)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&d.root); err != nil {
		return nil, &Error{Path: d.path, Msg: err.Error()}
	}
	enc.Close()
	return buf.Bytes(), nil
}
