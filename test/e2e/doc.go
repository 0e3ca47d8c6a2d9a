// Package e2e holds the end-to-end tests of the portcullis binary: the official MCP
// conformance suites, real clients (the TypeScript SDK, the MCP Inspector CLI) and reference
// servers, aggregation of several servers, and fault injection with a fake server.
//
// The tests need the dependencies test/e2e/deps.sh installs into .e2e/ (or $PORTCULLIS_E2E);
// without them, and under go test -short, they are skipped.
package e2e
