// approval-client.mjs: an MCP client on the official TypeScript SDK that declares the
// elicitation capability and answers the gateway's approval questions as told, for the
// approval end-to-end tests. It calls the tools it is given in order (one session) and
// prints one JSON object on stdout:
//
//   {"elicitations": [{"message": ..., "requestedSchema": {...}}],
//    "calls": [{"name": ..., "result": {...}} | {"name": ..., "error": {"code", "message"}}]}
//
// Usage:
//   node approval-client.mjs --answer accept|decline|cancel|ignore [--scope once|session|duration]
//        [--call TOOL JSON_ARGS]... --url URL
//
// ignore never answers (the gateway's timeout decides).
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const e2e = process.env.PORTCULLIS_E2E || path.resolve(here, "..", "..", "..", ".e2e");
const sdk = (p) => import(pathToFileURL(path.join(e2e, "node_modules", "@modelcontextprotocol", "sdk", "dist", "esm", p)).href);

function usage(msg) {
  console.error(`approval-client: ${msg}`);
  process.exit(2);
}

const argv = process.argv.slice(2);
const calls = [];
let url = null;
let answer = null;
let scope = "once";
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === "--call") {
    calls.push({ name: argv[i + 1], args: JSON.parse(argv[i + 2]) });
    i += 2;
  } else if (a === "--url") {
    url = argv[++i];
  } else if (a === "--answer") {
    answer = argv[++i];
  } else if (a === "--scope") {
    scope = argv[++i];
  } else {
    usage(`unknown argument ${a}`);
  }
}
if (!url || !["accept", "decline", "cancel", "ignore"].includes(answer)) usage("need --url and --answer accept|decline|cancel|ignore");

const deadline = setTimeout(() => {
  console.error("approval-client: timed out after 90s");
  process.exit(3);
}, 90_000);
deadline.unref();

const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { ElicitRequestSchema } = await sdk("types.js");

const client = new Client({ name: "portcullis-e2e-approval-client", version: "1.0.0" }, { capabilities: { elicitation: {} } });
const out = { elicitations: [], calls: [] };
client.setRequestHandler(ElicitRequestSchema, async (req) => {
  out.elicitations.push({ message: req.params.message, requestedSchema: req.params.requestedSchema });
  if (answer === "ignore") return new Promise(() => {});
  if (answer === "accept") return { action: "accept", content: { scope } };
  return { action: answer };
});

let code = 0;
try {
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  await client.listTools();
  for (const c of calls) {
    try {
      const result = await client.callTool({ name: c.name, arguments: c.args });
      out.calls.push({ name: c.name, result });
    } catch (e) {
      out.calls.push({ name: c.name, error: { code: e.code ?? null, message: String(e.message ?? e) } });
    }
  }
} catch (e) {
  console.error(`approval-client: ${e.stack ?? e}`);
  code = 1;
} finally {
  try {
    await client.close();
  } catch {}
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(code);
