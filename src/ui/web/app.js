// The discovery web UI: plain ES module, no build step. It reads the REST API of the discoveryd
// that serves it, with the bearer token kept in this tab's sessionStorage, and offers only what
// GET /v1/whoami says the identity may change.
import { beginOidcSignIn, finishOidcSignIn } from "./oidc.js";

const TOKEN_KEY = "discovery.token";
const POLL_MS = 2000;
const PAGE_SIZE = 100;
const EXPORT_NAMES = { 0: "disabled", 1: "standard", 2: "blackbox" };
const STATE_NAMES = { 0: "leaving", 1: "joining", 2: "active" };

const main = document.getElementById("main");
const statusLine = document.getElementById("status");
let identity = null;
let config = { oidc: null };
let pollTimer = null;
// The page being shown: its render function, re-run by the poller.
let current = null;
// Per URL: the last ETag and parsed answer, so that a poll costs a 304 while nothing changes.
const cache = new Map();

// ---------- helpers ----------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function announce(text) {
  statusLine.textContent = text;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// GET `path` as JSON with the token; revalidates with If-None-Match. Returns {data, total,
// changed}: `changed` is false when the answer is the cached one.
async function api(path, { method = "GET" } = {}) {
  const headers = { Authorization: `Bearer ${token()}` };
  const cached = method === "GET" ? cache.get(path) : undefined;
  if (cached) headers["If-None-Match"] = cached.etag;
  const response = await fetch(path, { method, headers, cache: "no-store" });
  if (response.status === 304 && cached) return { ...cached, changed: false };
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    if (response.status === 401 && method === "GET" && path === "/v1/whoami") {
      throw new ApiError(401, (body && body.message) || "the token was refused");
    }
    if (response.status === 401) signOut("Your sign-in expired or was refused; sign in again.");
    throw new ApiError(response.status, (body && body.message) || `${response.status} ${response.statusText}`);
  }
  const total = response.headers.get("X-Total-Count");
  const entry = { data: body, total: total === null ? null : Number(total), etag: response.headers.get("ETag") };
  if (method === "GET" && entry.etag) cache.set(path, entry);
  return { ...entry, changed: true };
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== "" && value !== undefined && value !== null) search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

function escapeRegex(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function labelList(labels) {
  const entries = Object.entries(labels || {});
  if (entries.length === 0) return h("span", { class: "muted" }, "none");
  return h("ul", { class: "labels" }, entries.map(([k, v]) => h("li", {}, `${k}=${v}`)));
}

function age(timestamp) {
  // Records written without a time carry the epoch (or protobuf's zero time): no age to show.
  if (!timestamp || !(Date.parse(timestamp) > 0)) return "";
  const seconds = Math.max(0, (Date.now() - Date.parse(timestamp)) / 1000);
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

// The expiry of a service when the record carries one (a TTL registration), else "".
function expiry(service) {
  const at = service.expires || service.expiresAt || service.expiry;
  if (!at) return service.ttl ? `TTL ${service.ttl}` : "";
  const seconds = (Date.parse(at) - Date.now()) / 1000;
  return seconds <= 0 ? "expired" : `in ${age(new Date(Date.now() - seconds * 1000).toISOString())}`;
}

function canChange(namespace) {
  if (!identity) return false;
  if (identity.allNamespaces) return true;
  return identity.namespaces.includes(namespace || "default");
}

// The confirmation dialog; resolves true when the user confirms.
function confirmAction(text, okLabel) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

// A table in its own horizontally scrollable region (focusable, so the keyboard can scroll it),
// so that a narrow window or 200 % zoom never needs the whole page scrolled sideways.
function table(caption, columns, rows, attrs = {}) {
  // Each cell names its column, for the stacked layout of narrow windows (app.css).
  for (const row of rows) {
    [...row.children].forEach((cell, i) => { if (columns[i]) cell.dataset.label = columns[i].title; });
  }
  return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption },
    h("table", attrs,
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, columns.map((c) =>
        h("th", { scope: "col", class: c.num ? "num" : null }, c.title)))),
      h("tbody", {}, rows)));
}

function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error.message || String(error));
}

// ---------- sign-in ----------

function showSignIn(message) {
  stopPolling();
  document.querySelector("nav").hidden = true;
  document.querySelector(".who").hidden = true;
  const input = h("textarea", { id: "token", name: "token", autocomplete: "off", spellcheck: "false", required: true });
  const form = h("form", { class: "signin", onsubmit: async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    await start();
  } },
  h("h1", {}, "Sign in"),
  message ? h("p", { class: "error", role: "alert" }, message) : null,
  config.oidc ? h("section", {},
    h("h2", {}, "With your account"),
    h("button", { type: "button", id: "oidc-sign-in", onclick: () => beginOidcSignIn(config.oidc) }, "Sign in")) : null,
  h("section", {},
    h("h2", {}, "With a machine token"),
    h("label", { for: "token" }, "Token"),
    input,
    h("p", { class: "muted" }, "Created with “discoveryd token create”. It is kept in this tab only."),
    h("button", { type: "submit", id: "token-sign-in" }, "Sign in with token")));
  main.replaceChildren(form);
  input.focus();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  identity = null;
  cache.clear();
  showSignIn(message);
}

// ---------- pages ----------

async function serversPage(first) {
  const servers = await api("/v1/servers");
  const namespaces = await api("/v1/namespaces");
  const names = (servers.data.servers || []).map((s) => s.name);
  const nsNames = (namespaces.data.namespaces || []).map((n) => n.name);
  const counts = new Map();
  let changed = first || servers.changed || namespaces.changed;
  for (const server of names) {
    const perNs = {};
    for (const ns of nsNames) {
      const answer = await api(`/v1/services${query({ namespace: ns, filterServer: `^${escapeRegex(server)}$`, limit: 1 })}`);
      perNs[ns] = answer.total;
      changed = changed || answer.changed;
    }
    counts.set(server, perNs);
  }
  if (!changed) return false;
  const totals = names.map((n) => Object.values(counts.get(n)).reduce((a, b) => a + b, 0));
  const placements = totals.reduce((a, b) => a + b, 0);
  const active = (servers.data.servers || []).filter((s) => Number(s.state) === 2).length || names.length;
  const ideal = active ? placements / active : 0;
  const rows = (servers.data.servers || []).map((server, i) => h("tr", { "data-server": server.name },
    h("th", { scope: "row" }, server.name),
    h("td", {}, labelList(server.labels)),
    h("td", {}, STATE_NAMES[Number(server.state)] || String(server.state)),
    h("td", {}, h("ul", { class: "labels" }, nsNames.map((ns) =>
      h("li", {}, `${ns}: ${counts.get(server.name)[ns]}`)))),
    h("td", { class: "num", "data-total": totals[i] }, totals[i]),
    identity.admin ? h("td", {}, h("button", { type: "button", class: "danger",
      "aria-label": `Unregister server ${server.name}`,
      onclick: () => remove(`server ${server.name}`, `/v1/servers/${encodeURIComponent(server.name)}`) }, "Unregister")) : null));
  const columns = [{ title: "Server" }, { title: "Labels" }, { title: "State" },
    { title: "Targets per namespace" }, { title: "Targets", num: true }];
  if (identity.admin) columns.push({ title: "Actions" });
  main.replaceChildren(
    h("h1", {}, "Servers"),
    h("p", { id: "servers-summary" }, `${names.length} servers, ${placements} placed targets; the ideal share is ${ideal.toFixed(1)} per active server.`),
    chart(names, totals, ideal),
    table(`Servers (${names.length})`, columns, rows, { id: "servers-table" }));
  return true;
}

// Targets per server as horizontal bars, the ideal share as a dashed line.
function chart(names, totals, ideal) {
  const barHeight = 22;
  const labelWidth = 180;
  const width = 600;
  const max = Math.max(ideal, ...totals, 1);
  const scale = (width - labelWidth - 50) / max;
  const height = names.length * barHeight + 24;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-labelledby", "chart-title");
  const title = document.createElementNS(ns, "title");
  title.id = "chart-title";
  title.textContent = `Targets per server; ideal share ${ideal.toFixed(1)}. ` +
    names.map((n, i) => `${n}: ${totals[i]}`).join(", ");
  svg.append(title);
  names.forEach((name, i) => {
    const y = i * barHeight + 4;
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", 0);
    label.setAttribute("y", y + 14);
    label.textContent = name.length > 26 ? `${name.slice(0, 25)}…` : name;
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("class", "bar");
    bar.setAttribute("x", labelWidth);
    bar.setAttribute("y", y);
    bar.setAttribute("height", barHeight - 6);
    bar.setAttribute("width", Math.max(1, totals[i] * scale));
    const value = document.createElementNS(ns, "text");
    value.setAttribute("x", labelWidth + totals[i] * scale + 4);
    value.setAttribute("y", y + 14);
    value.textContent = totals[i];
    svg.append(label, bar, value);
  });
  const line = document.createElementNS(ns, "line");
  line.setAttribute("class", "ideal");
  line.setAttribute("x1", labelWidth + ideal * scale);
  line.setAttribute("x2", labelWidth + ideal * scale);
  line.setAttribute("y1", 0);
  line.setAttribute("y2", height - 16);
  const legend = document.createElementNS(ns, "text");
  legend.setAttribute("x", Math.min(labelWidth + ideal * scale + 4, width - 90));
  legend.setAttribute("y", height - 4);
  legend.textContent = `ideal ${ideal.toFixed(1)}`;
  svg.append(line, legend);
  return h("figure", { class: "chart" }, svg,
    h("figcaption", { class: "muted" }, "Targets per server; the dashed line is the ideal share."));
}

async function namespacesPage(first) {
  const namespaces = await api("/v1/namespaces");
  let changed = first || namespaces.changed;
  const list = namespaces.data.namespaces || [];
  const counts = [];
  for (const ns of list) {
    const answer = await api(`/v1/services${query({ namespace: ns.name, limit: 1 })}`);
    counts.push(answer.total);
    changed = changed || answer.changed;
  }
  if (!changed) return false;
  // Services counts every stored record, also those that cannot be served.
  const columns = [{ title: "Namespace" }, { title: "Export config" }, { title: "Services", num: true }, { title: "Modified" }];
  if (identity.admin) columns.push({ title: "Actions" });
  const rows = list.map((ns, i) => h("tr", { "data-namespace": ns.name },
    h("th", { scope: "row" }, ns.name),
    h("td", {}, EXPORT_NAMES[ns.export] || String(ns.export)),
    h("td", { class: "num" }, counts[i]),
    h("td", {}, ns.modified ? `${age(ns.modified)} ago` : ""),
    identity.admin ? h("td", {}, h("button", { type: "button", class: "danger",
      "aria-label": `Unregister namespace ${ns.name}`,
      onclick: () => remove(`namespace ${ns.name}`, `/v1/namespaces/${encodeURIComponent(ns.name)}`) }, "Unregister")) : null));
  main.replaceChildren(h("h1", {}, "Namespaces"),
    table(`Namespaces (${list.length})`, columns, rows, { id: "namespaces-table" }));
  return true;
}

// The services page keeps its filter form across polls; only the table is redrawn.
const servicesState = { offset: 0, filters: { namespace: "", filterName: "", filterEndpoint: "", filterServer: "", filterSelector: "" } };

function servicesForm() {
  const field = (id, key, labelText, hint) => h("div", {},
    h("label", { for: id }, labelText),
    h("input", { id, name: key, type: "search", value: servicesState.filters[key], placeholder: hint, autocomplete: "off" }));
  const form = h("form", { class: "filters", id: "service-filters", role: "search", onsubmit: (event) => {
    event.preventDefault();
    for (const input of form.querySelectorAll("input")) servicesState.filters[input.name] = input.value.trim();
    servicesState.offset = 0;
    render(true);
  } },
  field("f-name", "filterName", "Name", "regular expression"),
  field("f-endpoint", "filterEndpoint", "Endpoint", "regular expression"),
  field("f-namespace", "namespace", "Namespace", "exact name"),
  field("f-server", "filterServer", "Server", "regular expression"),
  field("f-selector", "filterSelector", "Label selector", "env=prod,team!=a"),
  h("div", {}, h("button", { type: "submit", id: "apply-filters" }, "Filter")));
  return form;
}

async function servicesPage(first) {
  // The form is built once per visit, so that filtering keeps the keyboard focus where it is.
  if (!document.getElementById("service-filters")) {
    main.replaceChildren(h("h1", {}, "Services"), servicesForm(), h("div", { id: "services-result" }));
  }
  const target = document.getElementById("services-result");
  const started = performance.now();
  const path = `/v1/services${query({ ...servicesState.filters, offset: servicesState.offset, limit: PAGE_SIZE })}`;
  let answer;
  try {
    answer = await api(path);
  } catch (error) {
    if (error instanceof ApiError && error.status === 400) {
      target.replaceChildren(errorBox(error));
      target.dataset.query = path;
      return true;
    }
    throw error;
  }
  if (!first && !answer.changed && target.dataset.query === path) return false;
  const services = (answer.data.services || []).map((s) => ({ service: s, reason: "" }));
  const invalid = (answer.data.invalidServices || []).map((r) => ({ service: r.service, reason: r.reason }));
  const rows = [...services, ...invalid];
  const total = answer.total || 0;
  // The Actions column only when the identity may change something on this page.
  const actions = rows.some(({ service }) => canChange(service.namespace));
  const columns = [{ title: "Name" }, { title: "Endpoint" }, { title: "Namespace" }, { title: "Servers" },
    { title: "Labels" }, { title: "Age" }, { title: "Expiry" }, { title: "Record" }];
  if (actions) columns.push({ title: "Actions" });
  const body = rows.map(({ service, reason }) => h("tr", { "data-id": service.id, "data-namespace": service.namespace },
    h("th", { scope: "row" }, service.name),
    h("td", {}, h("code", {}, service.endpoint)),
    h("td", {}, service.namespace),
    h("td", {}, (service.servers || []).join(", ")),
    h("td", {}, labelList(service.labels)),
    h("td", {}, age(service.modified)),
    h("td", {}, expiry(service)),
    h("td", {}, reason ? h("span", { class: "invalid" }, `does not parse: ${reason}`) : "ok"),
    !actions ? null : h("td", {}, canChange(service.namespace) ? h("button", { type: "button", class: "danger",
      "aria-label": `Unregister ${service.name} ${service.endpoint}`,
      onclick: () => remove(`service ${service.name} (${service.endpoint}) in ${service.namespace}`,
        `/v1/services/${encodeURIComponent(service.namespace)}${query({ id: service.id })}`) }, "Unregister") : "")));
  const last = Math.min(servicesState.offset + rows.length, total);
  const pager = h("div", { class: "pager" },
    h("button", { type: "button", class: "secondary", id: "prev-page", disabled: servicesState.offset === 0,
      onclick: () => turnPage(-PAGE_SIZE, "prev-page") }, "Previous"),
    h("span", { id: "services-range" }, total ? `${servicesState.offset + 1}–${last} of ${total}` : "0 of 0"),
    h("button", { type: "button", class: "secondary", id: "next-page", disabled: last >= total,
      onclick: () => turnPage(PAGE_SIZE, "next-page") }, "Next"));
  target.replaceChildren(
    h("p", { id: "services-total", "data-total": total }, `${total} services match.`),
    table(`Services ${total ? servicesState.offset + 1 : 0}–${last} of ${total}`, columns, body, { id: "services-table" }),
    pager);
  target.dataset.query = path;
  target.dataset.renderMs = String(Math.round(performance.now() - started));
  return true;
}

async function turnPage(delta, buttonId) {
  servicesState.offset = Math.max(0, servicesState.offset + delta);
  await render(true);
  const button = document.getElementById(buttonId);
  (button && !button.disabled ? button : main).focus();
}

const targetsState = { server: "", namespace: "" };

async function targetsPage(first) {
  const servers = await api("/v1/servers");
  const namespaces = await api("/v1/namespaces");
  if (!document.getElementById("sd-form")) {
    const serverSelect = h("select", { id: "sd-server", name: "server" },
      (servers.data.servers || []).map((s) => h("option", { value: s.name, selected: s.name === targetsState.server }, s.name)));
    const nsSelect = h("select", { id: "sd-namespace", name: "namespace" },
      (namespaces.data.namespaces || []).map((n) => h("option", { value: n.name, selected: n.name === targetsState.namespace }, n.name)));
    const form = h("form", { class: "filters", id: "sd-form", onsubmit: (event) => {
      event.preventDefault();
      targetsState.server = serverSelect.value;
      targetsState.namespace = nsSelect.value;
      render(true);
    } },
    h("div", {}, h("label", { for: "sd-server" }, "Prometheus server"), serverSelect),
    h("div", {}, h("label", { for: "sd-namespace" }, "Namespace"), nsSelect),
    h("div", {}, h("button", { type: "submit", id: "sd-show" }, "Show")));
    main.replaceChildren(h("h1", {}, "What does this Prometheus see?"), form, h("div", { id: "sd-result" }));
    if (!targetsState.server) targetsState.server = serverSelect.value;
    if (!targetsState.namespace) targetsState.namespace = nsSelect.value;
  }
  const target = document.getElementById("sd-result");
  if (!targetsState.server || !targetsState.namespace) {
    target.replaceChildren(h("p", {}, "Register a server and a namespace first."));
    return true;
  }
  const path = `/v1/sd/${encodeURIComponent(targetsState.server)}/${encodeURIComponent(targetsState.namespace)}`;
  const answer = await api(path);
  if (!first && !answer.changed && target.dataset.path === path) return false;
  target.dataset.path = path;
  const groups = answer.data || [];
  const rows = groups.map((group) => h("tr", {},
    h("td", {}, h("ul", { class: "labels" }, (group.targets || []).map((t) => h("li", {}, t)))),
    h("td", {}, labelList(group.labels))));
  const targets = groups.reduce((n, g) => n + (g.targets || []).length, 0);
  target.replaceChildren(
    h("p", { id: "sd-summary", "data-targets": targets }, `${groups.length} target groups, ${targets} targets, as Prometheus reads them from `, h("code", {}, path), "."),
    table(`Target groups of ${targetsState.server} in ${targetsState.namespace}`, [{ title: "Targets" }, { title: "Labels" }], rows, { id: "sd-table" }));
  return true;
}

async function remove(what, path) {
  if (!(await confirmAction(`Unregister ${what}?`, "Unregister"))) {
    announce("Nothing was changed.");
    return;
  }
  try {
    await api(path, { method: "DELETE" });
    announce(`Unregistered ${what}.`);
  } catch (error) {
    main.prepend(errorBox(error));
    return;
  }
  await render(true);
  main.focus();
}

// ---------- routing and polling ----------

const PAGES = { servers: serversPage, namespaces: namespacesPage, services: servicesPage, targets: targetsPage };

function pageName() {
  const name = location.hash.replace(/^#\/?/, "");
  return PAGES[name] ? name : "servers";
}

let rendering = Promise.resolve();

function render(first) {
  rendering = rendering.then(async () => {
    const name = pageName();
    for (const link of document.querySelectorAll("nav a")) {
      if (link.getAttribute("href") === `#/${name}`) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    document.title = `${name[0].toUpperCase()}${name.slice(1)} · discovery`;
    try {
      const drew = await PAGES[name](first);
      document.body.dataset.page = name;
      // Counts the redraws, for tests and tools that wait for one.
      if (drew) document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
    } catch (error) {
      if (!token()) return;
      main.replaceChildren(h("h1", {}, "Error"), errorBox(error));
    }
  });
  return rendering;
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

async function start() {
  try {
    identity = (await api("/v1/whoami")).data;
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(`Sign-in failed: ${error.message}`);
    return;
  }
  document.getElementById("identity").textContent =
    `${identity.kind} ${identity.name || "(unnamed)"}${identity.admin ? " · admin" : ""}`;
  document.body.dataset.admin = String(identity.admin);
  document.querySelector("nav").hidden = false;
  document.querySelector(".who").hidden = false;
  await render(true);
  main.focus();
  stopPolling();
  pollTimer = setInterval(() => render(false), POLL_MS);
}

window.addEventListener("hashchange", async () => {
  if (!identity) return;
  await render(true);
  main.focus();
});
document.getElementById("sign-out").addEventListener("click", () => signOut());

(async () => {
  try {
    config = await (await fetch("config.json", { cache: "no-store" })).json();
  } catch {
    config = { oidc: null };
  }
  try {
    const signedIn = await finishOidcSignIn(config.oidc);
    if (signedIn) sessionStorage.setItem(TOKEN_KEY, signedIn);
  } catch (error) {
    showSignIn(`Sign-in failed: ${error.message}`);
    return;
  }
  if (token()) await start();
  else showSignIn();
})();
