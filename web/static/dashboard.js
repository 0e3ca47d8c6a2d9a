// Portcullis dashboard: small progressive enhancement. Every page works without this
// script; with it the live feed updates itself (server-sent events) and action buttons
// answer in place (fetch) instead of reloading the page.
"use strict";

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

// The live feed: each recorded event becomes a row at the top of the table. Text is only
// ever set with textContent: nothing a client or server sent is parsed as HTML.
function liveFeed() {
  const body = document.querySelector("#feed tbody");
  const state = document.getElementById("feed-state");
  if (!body || !window.EventSource) return;
  const src = new EventSource("/live/events");
  src.addEventListener("open", () => { state.textContent = "live"; state.className = "ok"; });
  src.addEventListener("error", () => { state.textContent = "reconnecting…"; state.className = "bad"; });
  src.addEventListener("skipped", (m) => { state.textContent = "live (" + m.data + " events skipped: the feed fell behind)"; });
  src.addEventListener("audit", (m) => {
    let e;
    try { e = JSON.parse(m.data); } catch (_) { return; }
    const tr = el("tr", "fresh d-" + (e.decision || "") + " k-" + e.kind);
    tr.dataset.seq = e.seq;
    for (const v of [e.time, e.code, e.decision, e.principal, e.server, e.method, e.tool, e.guard, e.latency]) {
      tr.appendChild(el("td", "", v));
    }
    tr.children[6].className = "tool";
    const msg = el("td", "", e.message);
    for (const f of e.findings || []) {
      msg.appendChild(document.createTextNode(" "));
      msg.appendChild(el("span", "finding sev-" + f.severity, f.detector + ": " + (f.message || f.rule || "")));
    }
    tr.appendChild(msg);
    if (!matches(tr)) tr.hidden = true;
    body.insertBefore(tr, body.firstChild);
    while (body.children.length > 500) body.removeChild(body.lastChild);
  });
}

// The feed's filter: rows without the text are hidden, new ones included.
let feedFilter = "";
function matches(tr) { return !feedFilter || tr.textContent.toLowerCase().includes(feedFilter); }
function filterFeed() {
  const input = document.getElementById("feed-filter");
  if (!input) return;
  input.closest(".filterline").hidden = false;
  input.addEventListener("input", () => {
    feedFilter = input.value.trim().toLowerCase();
    for (const tr of document.querySelectorAll("#feed tbody tr")) tr.hidden = !matches(tr);
  });
}

// Forms marked data-fetch post in place and show the answer next to the button.
function fetchForms() {
  for (const form of document.querySelectorAll("form[data-fetch]")) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const box = form.closest("article, td, section") || form.parentElement;
      const out = box.querySelector(".result");
      const buttons = box.querySelectorAll("button");
      buttons.forEach((b) => { b.disabled = true; });
      let ok = false, msg = "";
      try {
        const data = new FormData(form);
        const res = await fetch(form.action, {
          method: "POST", body: new URLSearchParams(data), credentials: "same-origin",
          headers: { "Accept": "application/json", "X-CSRF-Token": data.get("csrf") || "" },
        });
        const ct = res.headers.get("Content-Type") || "";
        if (ct.includes("application/json")) {
          const j = await res.json();
          ok = j.ok; msg = j.message;
        } else {
          msg = (await res.text()).trim();
        }
      } catch (e) {
        msg = "request failed: " + e;
      }
      if (out) {
        out.hidden = false;
        out.textContent = msg;
        out.className = "result " + (ok ? "ok" : "bad");
      }
      if (!ok) buttons.forEach((b) => { b.disabled = false; });
      else box.classList.add("done");
    });
  }
}

// The approvals page says when calls it does not show are waiting (it does not reload by
// itself: a person may be typing a note).
function newApprovals() {
  const note = document.getElementById("new-pending");
  if (!note) return;
  const shown = new Set([...document.querySelectorAll("article.approval")].map((a) => a.id.replace(/^approval-/, "")));
  setInterval(async () => {
    try {
      const r = await fetch("/approvals/pending", { credentials: "same-origin", headers: { "Accept": "application/json" } });
      if (!r.ok) return;
      const j = await r.json();
      const fresh = j.pending.filter((id) => !shown.has(id)).length;
      note.hidden = fresh === 0;
      if (fresh) note.firstChild.textContent = fresh + (fresh === 1 ? " new call is" : " new calls are") + " waiting: reload";
    } catch (_) { /* the next tick tries again */ }
  }, 3000);
}

document.addEventListener("DOMContentLoaded", () => {
  liveFeed();
  filterFeed();
  fetchForms();
  newApprovals();
});
