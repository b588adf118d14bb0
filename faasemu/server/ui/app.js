// The faasemu dashboard: plain JS, no build step, no CDN. All data goes in through textContent
// (the el() helper), never innerHTML, so function names, errors and payloads cannot inject markup.
"use strict";
const API = "/_faasemu/api";
const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
const tag = (text, kind) => el("span", { class: "tag " + (kind || text) }, text);
const json = (value) => JSON.stringify(value, null, 2);

async function getJSON(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}
async function postJSON(path, body, type) {
  const response = await fetch(path, { method: "POST", headers: { "content-type": type || "application/json" },
                                       body: typeof body === "string" ? body : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, text };
}

// -- tabs ---------------------------------------------------------------------------------------
const loaders = {};
function show(view) {
  for (const button of document.querySelectorAll("#tabs button")) button.classList.toggle("active", button.dataset.view === view);
  for (const section of document.querySelectorAll(".view")) section.classList.toggle("active", section.id === "view-" + view);
  if (location.hash !== "#" + view) history.replaceState(null, "", "#" + view);
  if (loaders[view]) loaders[view]();
}
for (const button of document.querySelectorAll("#tabs button")) button.addEventListener("click", () => show(button.dataset.view));

// -- functions ----------------------------------------------------------------------------------
let functionNames = [];
loaders.functions = async function () {
  const data = await getJSON(API + "/functions");
  functionNames = data.functions.map((f) => f.name);
  const body = $("functions").tBodies[0];
  body.replaceChildren(...data.functions.map((f) => {
    const triggers = [...f.http.map((r) => r.methods.join(",") + " " + r.path),
                      ...f.async_http.map((r) => "async " + r.path), ...f.events.map((t) => "event " + t)];
    const w = f.workers || {};
    const error = f.error ? el("span", { class: "bad" }, (f.error.type || "Error") + ": " + (f.error.message || ""),
                               f.error.where ? " (" + f.error.where + ")" : "") : el("span", { class: "muted" }, "none");
    return el("tr", { "data-function": f.name }, el("td", {}, el("code", {}, f.name)), el("td", {}, f.runtime),
              el("td", {}, triggers.map((t) => el("div", { class: "mono" }, t))),
              el("td", {}, `${w.idle || 0} idle · ${w.busy || 0} busy · ${w.starting || 0} starting`),
              el("td", {}, f.queued || 0), el("td", {}, f.cold_starts !== undefined ? f.cold_starts : "–"), el("td", {}, error));
  }));
  fillSelect($("live-function"), functionNames, "all functions");
  fillSelect($("send-function"), functionNames, "(publish an event)");
  fillSelect($("send-type"), data.event_types, null);
};
function fillSelect(select, values, none) {
  const current = select.value;
  select.replaceChildren(...(none === null ? [] : [el("option", { value: "" }, none)]), ...values.map((v) => el("option", { value: v }, v)));
  select.value = values.includes(current) ? current : (none === null ? (values[0] || "") : "");
}

// -- live invocations (server-sent events) --------------------------------------------------------
const liveItems = [];
function liveMatches(item) {
  const fn = $("live-function").value, st = $("live-status").value;
  if (fn && item.function !== fn) return false;
  if (st === "error" && !isError(item)) return false;
  if (st === "ok" && isError(item)) return false;
  return true;
}
const OK = ["ok", "done", "delivered", "-"];
function isError(item) {  // an HTTP status of 400 and up, or a delivery that did not succeed (retry, dead, timeout)
  if (item.event === "error") return true;
  if (item.event !== "invocation") return false;
  return typeof item.status === "number" ? item.status >= 400 : !OK.includes(String(item.status));
}
function liveRow(item) {
  const time = new Date(item.time * 1000).toLocaleTimeString();
  let head, detail;
  if (item.event === "invocation") {
    head = `${time}  ${item.function}  ${item.trigger}  ${item.status}  ${item.ms.toFixed(1)} ms` + (item.cold_ms !== null ? `  cold ${item.cold_ms} ms` : "") + (item.note ? "  " + item.note : "");
    detail = json(item);
  } else if (item.event === "error") {
    head = `${time}  ${item.function}  ${item.type}: ${item.message}` + (item.where ? ` (${item.where})` : "");
    detail = item.traceback || json(item);
  } else if (item.event === "output") {
    head = `${time}  ${item.function} | ${item.line}`;
  } else {
    head = `${time}  ${item.message}`;
  }
  const row = el("li", { class: item.event + (isError(item) ? " error" : ""), "data-function": item.function || "" },
                 el("div", {}, head), detail ? el("pre", { class: "detail" }, detail) : null);
  row.addEventListener("click", () => row.classList.toggle("open"));
  return row;
}
function renderLive() {
  $("live").replaceChildren(...liveItems.filter(liveMatches).slice(-300).reverse().map(liveRow));
}
$("live-function").addEventListener("change", renderLive);
$("live-status").addEventListener("change", renderLive);
function connectLive() {
  const source = new EventSource(API + "/live");
  source.onopen = () => { $("status").textContent = "live"; };
  // The server ends an idle stream every second and the browser reconnects (with Last-Event-ID):
  // only say so when the server stays away.
  source.onerror = () => { setTimeout(() => { if (source.readyState !== EventSource.OPEN) $("status").textContent = "reconnecting…"; }, 1500); };
  source.onmessage = (message) => {
    const item = JSON.parse(message.data);
    if (liveItems.length && liveItems[liveItems.length - 1].id >= item.id) liveItems.length = 0; // a new server
    liveItems.push(item);
    if (liveItems.length > 2000) liveItems.splice(0, 1000);
    if (item.event === "notice") $("notices").prepend(el("li", {}, new Date(item.time * 1000).toLocaleTimeString() + "  " + item.message));
    if (liveMatches(item)) {
      $("live").prepend(liveRow(item));
      while ($("live").children.length > 300) $("live").lastChild.remove();
    }
    if (item.event === "invocation" || item.event === "notice") scheduleRefresh();
  };
}
let refreshTimer = null;
function scheduleRefresh() {  // the views that change with invocations, at most every 300 ms
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    const active = document.querySelector("#tabs button.active").dataset.view;
    if (active === "functions") loaders.functions();
    if (active === "events") loadEvents(false);
  }, 300);
}

// -- events and deliveries ----------------------------------------------------------------------
let eventsNext = null;
async function loadEvents(more) {
  const params = new URLSearchParams({ limit: "50" });
  if ($("dead-only").checked) params.set("dead", "1");
  if (more && eventsNext !== null) params.set("before", String(eventsNext));
  const data = await getJSON(API + "/events?" + params);
  eventsNext = data.next;
  $("events-more").hidden = data.next === null;
  $("events-count").textContent = `${data.total} events · ${data.dead} with dead letters`;
  const rows = data.events.map(eventRow);
  const body = $("events").tBodies[0];
  if (more) body.append(...rows); else body.replaceChildren(...rows);
  if (!more) loadSink();
}
async function loadSink() {  // the effect sink's calls (GET /_faasemu/sink): the effects handlers had
  const data = await getJSON("/_faasemu/sink");
  const row = (call, note) => el("tr", {}, el("td", { class: "mono" }, call.method + " " + call.name),
                                 el("td", { class: "mono" }, typeof call.body === "string" ? call.body : JSON.stringify(call.body)),
                                 el("td", {}, note));
  $("sink").tBodies[0].replaceChildren(...data.calls.slice(-100).reverse().map((c) => row(c, "")),
                                       ...data.replayed.slice(-50).map((c) => row(c, "replayed (same Idempotency-Key)")),
                                       ...data.errors.slice(-50).map((c) => row(c, `${c.status} ${c.message}`)));
}
function eventRow(event) {
  const deliveries = event.deliveries.map((d) => el("div", { class: "delivery", "data-status": d.status },
    el("code", {}, d.function), d.copy ? ` copy ${d.copy}` : "", " ", tag(d.status),
    ` ${d.attempts} attempt${d.attempts === 1 ? "" : "s"} `, el("span", { class: "muted mono" }, d.attempt_id),
    d.tags.map((t) => tag(t, "chaos")), d.last_error ? el("div", { class: "bad mono" }, d.last_error) : null));
  const dead = event.deliveries.some((d) => d.status === "dead");
  const redrive = dead ? el("button", { class: "danger redrive", onclick: async () => {
    const answer = await postJSON(API + "/redrive", { event: event.id });
    redrive.textContent = answer.status === 200 ? "redriven" : "refused: " + answer.text;
    redrive.disabled = true;
    setTimeout(() => loadEvents(false), 500);
  } }, "Redrive") : null;
  const payload = el("pre", { class: "detail", hidden: "" }, json(event.data));
  const idCell = el("td", { class: "mono" }, event.id);
  idCell.addEventListener("click", () => { payload.hidden = !payload.hidden; });
  return el("tr", { "data-event": event.id, "data-type": event.type }, el("td", {}, event.seq), el("td", {}, el("code", {}, event.type)),
            idCell, el("td", {}, event.origin), el("td", {}, deliveries, payload), el("td", {}, redrive));
}
loaders.events = () => loadEvents(false);
$("events-more").addEventListener("click", () => loadEvents(true));
$("dead-only").addEventListener("change", () => loadEvents(false));
$("redrive-all").addEventListener("click", async () => {
  const answer = await postJSON(API + "/redrive", { event: null });
  $("events-count").textContent = answer.text;
  setTimeout(() => loadEvents(false), 500);
});

// -- the send box -------------------------------------------------------------------------------
$("send-form").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  let data;
  try { data = JSON.parse($("send-body").value || "null"); } catch (error) { $("send-result").textContent = "not JSON: " + error.message; return; }
  const fn = $("send-function").value;
  let answer;
  if (fn) {
    answer = await postJSON("/2015-03-31/functions/" + encodeURIComponent(fn) + "/invocations", data);
  } else {
    const event = { specversion: "1.0", id: "dash-" + Date.now() + "-" + Math.random().toString(16).slice(2, 8),
                    source: "faasemu/dashboard", type: $("send-type").value, datacontenttype: "application/json", data };
    answer = await postJSON("/_faasemu/events", event, "application/cloudevents+json");
  }
  $("send-result").textContent = `HTTP ${answer.status}\n${answer.text}`;
});

// -- the last campaign --------------------------------------------------------------------------
loaders.campaign = async function () {
  const data = await getJSON(API + "/campaign");
  const report = data.report;
  $("campaign-summary").replaceChildren(report ? el("p", {}, `seed ${report.seed} · ${report.runs} runs · ${report.events} events · ${report.deliveries} deliveries · exit ${report.exit_code ?? "?"}`)
                                               : el("p", { class: "muted" }, "No campaign yet: run faasemu chaos."));
  const verdict = (v) => v === true ? el("span", { class: "good" }, "yes") : v === false ? el("span", { class: "bad" }, "NO") : el("span", { class: "muted" }, "not checked");
  $("verdicts").tBodies[0].replaceChildren(...Object.entries(report ? report.functions : {}).map(([name, f]) =>
    el("tr", { "data-function": name }, el("td", {}, el("code", {}, name)), el("td", {}, verdict(f.idempotent)), el("td", {}, verdict(f.order_tolerant)),
       el("td", {}, f.deliveries), el("td", {}, f.violations.map((v) => el("div", {}, v.kind)))) ));
  const violations = report ? Object.values(report.functions).flatMap((f) => f.violations) : [];
  $("cexes").replaceChildren(...data.counterexamples.map((cex) => {
    const found = violations.find((v) => v.counterexample === cex.file) || {};
    const schedule = cex.schedule || [];
    // The in-order run: each (event, function) once, in the order of the events file, no perturbation.
    const position = new Map((cex.events || []).map((e, i) => [e.id, i]));
    const seen = new Set();
    const inOrder = schedule.filter((s) => { const key = s.event + " " + s.function; if (seen.has(key)) return false; seen.add(key); return true; })
                            .map((s) => ({ event: s.event, function: s.function }))
                            .sort((a, b) => (position.get(a.event) ?? 0) - (position.get(b.event) ?? 0));
    const step = (s) => el("li", { class: (s.tags || []).length ? "perturbed" : "" },
                          el("span", { class: "mono" }, (s.event || "") + " → " + (s.function || cex.function)),
                          (s.tags || []).map((t) => tag(t, "chaos")), s.inject ? tag(s.inject, "chaos") : null);
    const diff = cex.diff && typeof cex.diff === "object" && !Array.isArray(cex.diff)
      ? el("table", { class: "diff" }, el("tr", {}, el("th", {}, "state or effect"), el("th", {}, "in order"), el("th", {}, "perturbed")),
           Object.entries(cex.diff).map(([path, pair]) => el("tr", {}, el("td", { class: "mono" }, path),
             el("td", { class: "mono good" }, json(Array.isArray(pair) ? pair[0] : pair)), el("td", { class: "mono bad" }, json(Array.isArray(pair) ? pair[1] : "")))))
      : el("pre", { class: "diff" }, typeof cex.diff === "string" ? cex.diff : json(cex.diff));
    return el("div", { class: "cex", "data-cex": cex.file },
      el("h3", {}, `${cex.function}: ${cex.kind}`), el("div", { class: "muted mono" }, cex.file),
      el("div", { class: "timeline" }, el("div", {}, el("h4", {}, "Perturbed deliveries"), el("ol", { class: "perturbed-run" }, schedule.map(step))),
                                      el("div", {}, el("h4", {}, "In-order run"), el("ol", { class: "in-order-run" }, inOrder.map(step)))),
      el("h4", {}, "State and effect diff"), diff,
      el("h4", {}, "Reproduce"), el("pre", { class: "reproduce" }, found.reproduce || "faasemu chaos --replay-cex " + cex.file),
      found.hint ? el("p", {}, found.hint) : null);
  }));
};

connectLive();
const VIEWS = ["functions", "live", "events", "send", "campaign"];
const wanted = location.hash.slice(1);
show(VIEWS.includes(wanted) ? wanted : "functions");
window.addEventListener("hashchange", () => { const view = location.hash.slice(1); if (VIEWS.includes(view)) show(view); });
loaders.functions();
setInterval(() => { if (document.querySelector("#tabs button.active").dataset.view === "functions") loaders.functions(); }, 3000);
