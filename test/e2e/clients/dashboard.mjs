// dashboard.mjs: drives the dashboard in real headless Chromium (Debian's, through
// playwright-core) for TestDashboard, and prints one JSON object of what it saw on stdout.
// Every step that fails throws: the script exits non-zero and the Go test fails.
//
// Environment (set by test/e2e/dashboard_test.go):
//   BASE            the dashboard, http://127.0.0.1:PORT
//   MCP_URL         the gateway's MCP endpoint
//   ADMIN_KEY, APPROVER_KEY, VIEWER_KEY   API keys of the three roles
//   APPROVE_ID, DENY_ID                   pending approvals made by the test (store mode)
//   HELD=1          the approval guard holds calls: the script makes the held calls itself
//   HELD_TOOL       the tool whose calls are held (HELD=1)
//   PIN_SERVER, PIN_NAME                  a tool with a changed definition to approve
//   SHOTS           where to save a screenshot of each view
//   CHROMIUM        the browser (default /usr/bin/chromium)
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const e2e = process.env.PORTCULLIS_E2E || path.resolve(here, "..", "..", "..", ".e2e");
const require = createRequire(path.join(e2e, "node_modules", "noop.js"));
const { chromium } = require("playwright-core");
const sdk = (p) => import(pathToFileURL(path.join(e2e, "node_modules", "@modelcontextprotocol", "sdk", "dist", "esm", p)).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`dashboard.mjs: ${k} is not set`);
  return v;
};
const BASE = env("BASE");
const SHOTS = env("SHOTS");
const out = {};
const log = (...a) => console.error("[dashboard.mjs]", ...a);
function check(cond, msg) {
  if (!cond) throw new Error("check failed: " + msg);
}

// playwright-core gives the browser a fresh profile (--user-data-dir) of its own.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const failures = [];
async function newPage() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  // A Content-Security-Policy violation or a script error is a failure.
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of (401|403|409)/.test(m.text())) failures.push("console: " + m.text());
  });
  page.on("pageerror", (e) => failures.push("page error: " + e.message));
  page.setDefaultTimeout(20000);
  return page;
}
async function login(page, key) {
  await page.goto(BASE + "/");
  check(page.url().endsWith("/login"), "an anonymous visit goes to /login, not " + page.url());
  await page.fill("#key", key);
  await Promise.all([page.waitForURL(BASE + "/"), page.click("#login")]);
  return (await page.textContent("#role")).trim();
}
async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, name + ".png"), fullPage: true });
}

// An MCP client of the gateway, as an application would be: it connects and lists the
// tools before calling them.
async function mcpClient() {
  const c = new Client({ name: "dashboard-e2e", version: "1.0.0" });
  await c.connect(new StreamableHTTPClientTransport(new URL(env("MCP_URL"))));
  c.listed = (await c.listTools()).tools.map((t) => t.name);
  return c;
}

try {
  // ---- log in ----
  const admin = await newPage();
  await admin.goto(BASE + "/login");
  await shot(admin, "login");
  await admin.fill("#key", "pc_wrongwrongwrongw_" + "A".repeat(43));
  await admin.click("#login");
  check((await admin.textContent("#login-error")).includes("not accepted"), "a wrong key is refused");
  out.adminRole = await login(admin, env("ADMIN_KEY"));
  check(out.adminRole === "admin", "admin role: " + out.adminRole);

  // ---- single sign-on (OIDC authorization code flow) in the browser ----
  if (process.env.SSO === "1") {
    const ssoPage = await newPage();
    await ssoPage.goto(BASE + "/login");
    await ssoPage.click("#sso");
    await ssoPage.waitForURL(BASE + "/"); // issuer, callback, then the dashboard's own page moves on
    out.ssoUser = (await ssoPage.textContent("#user")).trim();
    out.ssoRole = (await ssoPage.textContent("#role")).trim();
    await ssoPage.context().close();
  }

  // ---- the live feed: a call appears as it is recorded ----
  await admin.goto(BASE + "/live");
  await admin.waitForSelector("#feed-state:text('live')");
  // The first listing pins the server's definitions (trust on first use); right after it
  // the server changes the tool add (see below).
  const client = await mcpClient();
  out.listedTools = client.listed;
  const res = await client.callTool({ name: "echo", arguments: { message: "hello" } });
  check(!res.isError, "the tool call works");
  const row = admin.locator("#feed tbody tr.fresh", { hasText: "echo" }).filter({ hasText: "PC1002I" });
  await row.first().waitFor();
  out.feedRow = (await row.first().innerText()).replace(/\s+/g, " ");
  await admin.fill("#feed-filter", "echo");
  const visible = await admin.locator("#feed tbody tr:visible").allInnerTexts();
  check(visible.length > 0 && visible.every((t) => t.includes("echo")), "the feed's filter shows only matching rows: " + visible.length);
  out.feedFiltered = (await admin.locator("#feed tbody tr").count()) - visible.length;
  await admin.fill("#feed-filter", "");
  await shot(admin, "live");

  // ---- approvals ----
  const approver = await newPage();
  out.approverRole = await login(approver, env("APPROVER_KEY"));
  const held = {};
  let approveId = process.env.APPROVE_ID, denyId = process.env.DENY_ID;
  if (process.env.HELD === "1") {
    // Real held calls: the client's calls wait for a person.
    const tool = env("HELD_TOOL");
    const c1 = await mcpClient(), c2 = await mcpClient();
    held.approved = settle(c1.callTool({ name: tool, arguments: { message: "hold: approve me" } }, undefined, { timeout: 120000 }));
    const a1 = await waitForApproval(approver, "hold: approve me", held.approved);
    held.denied = settle(c2.callTool({ name: tool, arguments: { message: "hold: deny me" } }, undefined, { timeout: 120000 }));
    // The page, loaded before this call was held, says a new one is waiting.
    await approver.locator("#new-pending").waitFor({ state: "visible" });
    out.newPendingNotice = await approver.locator("#new-pending").innerText();
    const a2 = await waitForApproval(approver, "hold: deny me", held.denied);
    approveId = a1; denyId = a2;
  } else {
    await approver.goto(BASE + "/approvals");
  }
  out.approveId = approveId; out.denyId = denyId;
  const card = approver.locator(`#approval-${approveId}`);
  await card.waitFor();
  out.shownArguments = await card.locator("pre.args").innerText();
  await shot(approver, "approvals");

  // Refusals first, while both are pending.
  // Unauthenticated: no session cookie.
  const anon = await fetch(`${BASE}/approvals/${approveId}/approve`, { method: "POST", redirect: "manual" });
  out.anonymousApprove = anon.status;
  // A viewer, with the viewer's own valid CSRF token, from the dashboard's own page.
  const viewer = await newPage();
  out.viewerRole = await login(viewer, env("VIEWER_KEY"));
  await viewer.goto(BASE + "/approvals");
  check(await viewer.locator(`#approval-${approveId} button.approve`).count() === 0, "no approve button for a viewer");
  out.viewerApprove = await viewer.evaluate(async (id) => {
    const csrf = document.querySelector("input[name=csrf]").value;
    const r = await fetch(`/approvals/${id}/approve`, { method: "POST", headers: { "X-CSRF-Token": csrf, "Accept": "application/json" } });
    return r.status;
  }, approveId);
  // A cross-site form post: another site's page submits a form to the dashboard, in the
  // approver's logged-in browser, even carrying a valid CSRF token.
  const token = await approver.locator("input[name=csrf]").first().inputValue();
  const evil = http.createServer((req, res) => {
    res.setHeader("Content-Type", "text/html");
    res.end(`<!doctype html><form id=f method=post action="${BASE}/approvals/${approveId}/approve">
      <input name=csrf value="${token}"><input name=scope value=once></form><script>document.getElementById("f").submit()</script>`);
  });
  await new Promise((r) => evil.listen(0, "127.0.0.1", r));
  const evilPage = await approver.context().newPage();
  const nav = evilPage.waitForResponse((r) => r.url().startsWith(BASE + "/approvals/"));
  await evilPage.goto(`http://localhost:${evil.address().port}/`);
  out.crossSiteApprove = (await nav).status();
  const evilSameSite = await approver.context().newPage();
  const nav2 = evilSameSite.waitForResponse((r) => r.url().startsWith(BASE + "/approvals/"));
  await evilSameSite.goto(`http://127.0.0.1:${evil.address().port}/`);
  out.crossOriginApprove = (await nav2).status();
  evil.close();
  await approver.goto(BASE + "/approvals");
  check(await approver.locator(`#approval-${approveId}`).count() === 1, "the approval is still pending after the refused posts");

  // Approve one and deny the other with the buttons.
  await approver.locator(`#approval-${approveId} button.approve`).click();
  await approver.locator(`#approval-${approveId} .result.ok`).waitFor();
  out.approveMessage = await approver.locator(`#approval-${approveId} .result`).innerText();
  const denyCard = approver.locator(`#approval-${denyId}`);
  await denyCard.locator("input[name=note]").fill("not in production");
  await denyCard.locator("button.deny").click();
  await denyCard.locator(".result.ok").waitFor();
  out.denyMessage = await denyCard.locator(".result").innerText();
  if (held.approved) {
    const [a, d] = await Promise.all([held.approved, held.denied]);
    out.heldApproved = a; out.heldDenied = d;
  }
  await approver.goto(BASE + "/approvals");
  await approver.locator(`#settled-${approveId}`).waitFor();

  // ---- servers: approve a changed tool definition ----
  const pinName = env("PIN_NAME");
  const pinRow = admin.locator(`[id="pin-${env("PIN_SERVER")}-tool-${pinName}"]`);
  for (let i = 0; ; i++) { // the gateway sees the change when the server announces it
    await admin.goto(BASE + "/servers");
    if (await pinRow.count() > 0 && (await pinRow.locator(".status").innerText()).trim() === "changed") break;
    check(i < 100, "the changed tool is shown as changed");
    await admin.waitForTimeout(200);
  }
  out.pinBefore = await settle(client.callTool({ name: pinName, arguments: { a: 1, b: 2 } }));
  out.diff = await admin.locator("pre.diff").first().innerText();
  await shot(admin, "servers");
  await admin.locator("tr.change button.approve").first().click();
  await admin.locator("tr.change .result.ok").first().waitFor();
  out.pinMessage = await admin.locator("tr.change .result").first().innerText();
  await admin.goto(BASE + "/servers");
  out.pinStatusAfter = (await pinRow.locator(".status").innerText()).trim();
  out.pinAfter = await settle(client.callTool({ name: pinName, arguments: { a: 1, b: 2 } }));

  // ---- alerts, audit search, summary ----
  await admin.goto(BASE + "/alerts");
  await shot(admin, "alerts");
  await admin.goto(BASE + "/audit");
  await admin.fill("input[name=tool]", "echo");
  await admin.selectOption("select[name=decision]", "allowed");
  await Promise.all([admin.waitForURL(/\/audit\?/), admin.click("#search")]);
  out.auditCount = Number(await admin.textContent("#count"));
  out.auditTools = await admin.locator("#results td.tool").allInnerTexts();
  const download = admin.waitForEvent("download");
  await admin.click("#export-jsonl");
  const dl = await download;
  out.exportLines = fs.readFileSync(await dl.path(), "utf8").trim().split("\n").length;
  await shot(admin, "audit");
  await admin.goto(BASE + "/");
  out.summaryCalls = Number(await admin.textContent("#calls"));
  await shot(admin, "summary");
  await client.close();
} finally {
  out.failures = failures;
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(0);

// settle turns a call's outcome into JSON: its result, or its error.
function settle(p) {
  return p.then((r) => ({ result: r }), (e) => ({ error: String(e), code: e.code }));
}

// waitForApproval reloads the approvals page until a pending approval shows text, and
// returns its id.
async function waitForApproval(page, text, call) {
  let done = null;
  call.then((r) => { done = r; });
  for (let i = 0; i < 200; i++) {
    if (done) throw new Error(`the call with ${text} ended before anybody approved it: ${JSON.stringify(done)}`);
    await page.goto(BASE + "/approvals");
    const card = page.locator("article.approval", { hasText: text });
    if (await card.count() > 0) return (await card.first().getAttribute("id")).replace(/^approval-/, "");
    await page.waitForTimeout(250);
  }
  throw new Error("no pending approval with " + text);
}
