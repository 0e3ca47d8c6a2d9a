// Package mcp holds protocol constants shared by both sides of the gateway.
package mcp

// Keys of per-request metadata in the 2026-07-28 protocol.
const (
	MetaProtocolVersion    = "io.modelcontextprotocol/protocolVersion"
	MetaClientCapabilities = "io.modelcontextprotocol/clientCapabilities"
	MetaClientInfo         = "io.modelcontextprotocol/clientInfo"
	MetaServerInfo         = "io.modelcontextprotocol/serverInfo"
	MetaLogLevel           = "io.modelcontextprotocol/logLevel"
)

// Protocol versions the gateway speaks, newest first.
var (
	LegacyVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}
	ModernVersions = []string{"2026-07-28"}
)

// Modern is the newest modern protocol version.
const Modern = "2026-07-28"
