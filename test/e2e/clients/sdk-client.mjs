// sdk-client.mjs: a small MCP client built on the official TypeScript SDK, for the
// end-to-end tests. It connects, lists the tools, calls the tools it is given in order (in
// one session), and prints one JSON object on stdout:
//
//   {"serverInfo": {...}, "tools": ["name", ...], "calls": [{"name": ..., "result": {...}}]}
//
// A call that fails with a JSON-RPC error gives {"name": ..., "error": {"code", "message"}}.
// With --timeout MS, each call asks for progress and has that request timeout, restarted by
// each progress notification (resetTimeoutOnProgress); the messages of the notifications
// it got are in the call's "progress", their progress values in "progressValues".
//
// Usage:
//   node sdk-client.mjs [--root URI]... [--call TOOL JSON_ARGS]... [--header "Name: value"]... [--timeout MS] --url URL
//   node sdk-client.mjs [--root URI]... [--call TOOL JSON_ARGS]... -- COMMAND [ARGS...]
//
// With --header, every HTTP request carries the header (credentials, as a client
// configuration's "headers" give them).
// With --root, the client declares the roots capability and answers roots/list with them.
//
// The SDK is loaded from $PORTCULLIS_E2E/node_modules (default: .e2e/ at the repository
// root), where test/e2e/deps.sh installs it; ES modules ignore NODE_PATH.
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const e2e = process.env.PORTCULLIS_E2E || path.resolve(here, "..", "..", "..", ".e2e");
const sdk = (p) => import(pathToFileURL(path.join(e2e, "node_modules", "@modelcontextprotocol", "sdk", "dist", "esm", p)).href);

function usage(msg) {
  console.error(`sdk-client: ${msg}\nusage: sdk-client.mjs [--call TOOL JSON_ARGS]... (--url URL | -- COMMAND [ARGS...])`);
  process.exit(2);
}

const argv = process.argv.slice(2);
const calls = [];
const roots = [];
const headers = {};
let url = null;
let timeout = null;
let command = null;
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === "--call") {
    if (i + 2 >= argv.length) usage("--call needs a tool name and JSON arguments");
    let args;
    try {
      args = JSON.parse(argv[i + 2]);
    } catch (e) {
      usage(`--call ${argv[i + 1]}: arguments are not JSON: ${e.message}`);
    }
    calls.push({ name: argv[i + 1], args });
    i += 2;
  } else if (a === "--root") {
    if (i + 1 >= argv.length) usage("--root needs a URI");
    roots.push({ uri: argv[++i] });
  } else if (a === "--header") {
    const h = argv[++i] ?? "";
    const colon = h.indexOf(":");
    if (colon <= 0) usage("--header needs \"Name: value\"");
    headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
  } else if (a === "--timeout") {
    timeout = Number(argv[++i]);
    if (!(timeout > 0)) usage("--timeout needs milliseconds");
  } else if (a === "--url") {
    url = argv[++i];
  } else if (a === "--") {
    command = argv.slice(i + 1);
    break;
  } else {
    usage(`unknown argument ${a}`);
  }
}
if (!url === !(command && command.length)) usage("give exactly one of --url URL or -- COMMAND");

// Never hang: the Go test has its own deadline, this one gives a clearer message.
const deadline = setTimeout(() => {
  console.error("sdk-client: timed out after 90s");
  process.exit(3);
}, 90_000);
deadline.unref();

const { Client } = await sdk("client/index.js");
let transport;
if (url) {
  const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
  transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
} else {
  const { StdioClientTransport } = await sdk("client/stdio.js");
  transport = new StdioClientTransport({
    command: command[0],
    args: command.slice(1),
    env: { ...process.env },
    stderr: "inherit",
  });
}

const client = new Client(
  { name: "portcullis-e2e-sdk-client", version: "1.0.0" },
  roots.length ? { capabilities: { roots: { listChanged: true } } } : {},
);
if (roots.length) {
  const { ListRootsRequestSchema } = await sdk("types.js");
  client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots }));
}
const out = { serverInfo: null, tools: [], calls: [] };
let code = 0;
try {
  await client.connect(transport);
  out.serverInfo = client.getServerVersion() ?? null;
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    out.tools.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor);
  for (const c of calls) {
    try {
      const progress = [];
      const progressValues = [];
      const onprogress = (p) => {
        progress.push(p.message ?? "");
        progressValues.push(p.progress);
      };
      const options = timeout ? { timeout, resetTimeoutOnProgress: true, onprogress } : undefined;
      try {
        const result = await client.callTool({ name: c.name, arguments: c.args }, undefined, options);
        out.calls.push({ name: c.name, result, ...(timeout ? { progress, progressValues } : {}) });
      } catch (e) {
        out.calls.push({ name: c.name, error: { code: e.code ?? null, message: String(e.message ?? e) }, ...(timeout ? { progress, progressValues } : {}) });
      }
    } catch (e) {
      out.calls.push({ name: c.name, error: { code: e.code ?? null, message: String(e.message ?? e) } });
    }
  }
} catch (e) {
  console.error(`sdk-client: ${e.stack ?? e}`);
  code = 1;
} finally {
  try {
    await client.close();
  } catch (e) {
    console.error(`sdk-client: close: ${e.message ?? e}`);
  }
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(code);
