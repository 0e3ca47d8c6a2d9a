package config

import "net"

// DefaultListen is the address `portcullis serve` listens on when neither the file nor
// --listen names one.
const DefaultListen = "127.0.0.1:8931"

// BaseURL is the URL clients on this machine reach the gateway of c at: its listen
// address (a wildcard address reached on loopback), https when it serves TLS. The MCP
// endpoint is BaseURL/mcp, and the endpoint of one server BaseURL/mcp/<name>.
func (c *Config) BaseURL() string {
	addr := c.Listen
	if addr == "" {
		addr = DefaultListen
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port, _ = net.SplitHostPort(DefaultListen)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	scheme := "http"
	if c.TLS.Enabled() {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
