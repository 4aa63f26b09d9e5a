// ipfleet dashboard: polls the controller's /api endpoints (the same JSON as `ipfleet ... -o json`)
// and redraws. Data is only ever inserted as text, never as markup.
"use strict";

const POLL_MS = 1000;
const EXPIRY_WARNING_S = 30 * 24 * 3600;
const COLORS = { up: "#2e7d32", down: "#d32f2f", stale: "#ef6c00", unknown: "#9e9e9e" };
const SVG_NS = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v;
    else if (k === "class") e.setAttribute("class", v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function $(id) { return document.getElementById(id); }
function setText(id, v) { $(id).textContent = String(v); }

async function getJson(path) {
  const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (r.status === 404 && path === "/api/rollout") return null;  // no rollout yet
  if (r.status === 401 || r.status === 403) { window.location.href = "/login"; throw new Error("not logged in"); }
  const body = await r.json();
  if (!r.ok) throw new Error(path + ": " + (body.error || r.status));
  return body;
}

function fmtTime(unix) {
  if (!unix || unix <= 0) return "never";
  return new Date(unix * 1000).toISOString().replace(".000Z", "Z");
}
function ago(unix, now) {
  if (!unix || unix <= 0) return "never";
  const d = Math.max(0, now - unix);
  if (d < 120) return d + "s ago";
  if (d < 7200) return Math.floor(d / 60) + "m ago";
  if (d < 172800) return Math.floor(d / 3600) + "h ago";
  return Math.floor(d / 86400) + "d ago";
}
function num(v) { return Number(v || 0); }

// A tunnel's state from both ends' reports: stale beats down beats up; no report is unknown.
function tunnelState(t) {
  const ends = t.ends || [];
  if (ends.length === 0) return "unknown";
  if (ends.some(e => e.stale)) return "stale";
  if (ends.some(e => !e.up)) return "down";
  return "up";
}

function renderCards(status, hosts, tunnels, certs, now) {
  const hs = status.hosts;
  setText("hosts-connected", hs.filter(h => h.connected).length);
  setText("hosts-total", hs.length);
  setText("tunnels-up", tunnels.filter(t => tunnelState(t) === "up").length);
  setText("tunnels-total", tunnels.length);
  setText("stale-sas", hs.reduce((a, h) => a + num(h.stale_sas), 0));
  setText("forced", hs.reduce((a, h) => a + num(h.forced_renegotiations), 0));
  const versions = {};
  for (const h of hs) versions[h.bundle_version] = (versions[h.bundle_version] || 0) + 1;
  setText("bundle-versions", Object.entries(versions).map(([v, n]) => "v" + v + " ×" + n).join("  ") || "–");
  const live = certs.filter(c => !c.revoked && num(c.not_after_unix) > 0);
  const soon = live.filter(c => num(c.not_after_unix) - now < EXPIRY_WARNING_S);
  setText("certs-expiring", soon.length);
  $("certs-expiring").className = "value" + (soon.length ? " warn" : "");
  const next = live.sort((a, b) => num(a.not_after_unix) - num(b.not_after_unix))[0];
  setText("certs-next", next ? "next: " + next.name + " (" + next.kind + ") " + fmtTime(num(next.not_after_unix)) : "");
}

function renderHosts(status, hosts, now) {
  const info = Object.fromEntries(hosts.map(h => [h.name, h]));
  const body = $("hosts").tBodies[0];
  body.replaceChildren(...status.hosts.map(h => {
    const notAfter = num((info[h.host] || {}).cert_not_after_unix);
    const expiring = notAfter > 0 && notAfter - now < EXPIRY_WARNING_S;
    return el("tr", { "data-host": h.host },
      el("td", {}, el("a", { href: "#/host/" + encodeURIComponent(h.host), text: h.host })),
      el("td", { class: h.connected ? "state-up" : "state-down", text: h.connected ? "yes" : "no" }),
      el("td", { text: ago(num(h.last_seen_unix), now) }),
      el("td", { text: h.bundle_version }),
      el("td", { text: h.tunnels_up + "/" + h.tunnels_total }),
      el("td", { class: num(h.stale_sas) ? "state-stale" : "", text: h.stale_sas }),
      el("td", { text: h.forced_renegotiations }),
      el("td", { class: expiring ? "warn" : "", text: notAfter ? fmtTime(notAfter) : "not enrolled" }));
  }));
}

function renderTunnels(tunnels) {
  const body = $("tunnels").tBodies[0];
  body.replaceChildren(...tunnels.map(t => {
    const s = tunnelState(t);
    return el("tr", { "data-tunnel": t.name, "data-state": s },
      el("td", { text: t.name }), el("td", { text: t.left }), el("td", { text: t.right }),
      el("td", { text: t.proposal }), el("td", { class: "state-" + s, text: s }));
  }));
}

// Hosts on a circle, tunnels as straight edges coloured by state; external peers drawn as squares.
function renderTopology(status, tunnels) {
  const svg = $("topology");
  const names = [...new Set([...status.hosts.map(h => h.host), ...tunnels.flatMap(t => [t.left, t.right])])].sort();
  const hosts = new Set(status.hosts.map(h => h.host));
  const connected = Object.fromEntries(status.hosts.map(h => [h.host, h.connected]));
  const cx = 300, cy = 210, r = names.length > 1 ? 165 : 0;
  const pos = {};
  names.forEach((n, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, names.length) - Math.PI / 2;
    pos[n] = [cx + r * Math.cos(a), cy + r * Math.sin(a)];
  });
  const edges = tunnels.map(t => {
    const s = tunnelState(t);
    const [x1, y1] = pos[t.left], [x2, y2] = pos[t.right];
    return el("svg:line", { x1, y1, x2, y2, stroke: COLORS[s], "stroke-width": 3, "data-tunnel": t.name,
                            "data-state": s, class: "edge" }, el("svg:title", { text: t.name + ": " + s }));
  });
  const nodes = names.map(n => {
    const [x, y] = pos[n];
    const fill = !hosts.has(n) ? "#5c6bc0" : connected[n] ? "#1d2733" : "#b0bec5";
    const shape = hosts.has(n) ? el("svg:circle", { cx: x, cy: y, r: 11, fill })
                               : el("svg:rect", { x: x - 10, y: y - 10, width: 20, height: 20, fill });
    const link = el("svg:a", { href: hosts.has(n) ? "#/host/" + encodeURIComponent(n) : "#/", "data-node": n },
      shape, el("svg:text", { x: x + 14, y: y + 4, text: n }));
    return link;
  });
  svg.replaceChildren(...edges, ...nodes);
}

function renderRollout(rollout) {
  const box = $("rollout");
  if (!rollout) { box.replaceChildren(el("p", { class: "muted", text: "no rollout yet" })); return; }
  const state = String(rollout.state || "").replace("ROLLOUT_STATE_", "").toLowerCase();
  const waves = {};
  for (const h of rollout.hosts || []) {
    const w = waves[h.wave] || (waves[h.wave] = { done: 0, sent: 0, failed: 0, pending: 0, total: 0 });
    const s = String(h.state).replace("HOST_ROLLOUT_STATE_", "").toLowerCase();
    w.total++;
    if (s === "done") w.done++; else if (s === "sent") w.sent++;
    else if (s === "failed" || s === "timed_out") w.failed++; else w.pending++;
  }
  const rows = Object.keys(waves).map(Number).sort((a, b) => a - b).map(i => {
    const w = waves[i];
    const part = (k) => { const s = el("span", { class: k }); s.style.width = (100 * w[k] / w.total) + "%"; return s; };
    return el("div", { class: "wave", "data-wave": i },
      el("span", { text: "wave " + i }),
      el("div", { class: "bar" }, part("done"), part("sent"), part("failed")),
      el("span", { text: w.done + "/" + w.total + " done" + (w.failed ? ", " + w.failed + " failed" : "") }));
  });
  box.replaceChildren(
    el("p", { id: "rollout-summary", "data-state": state,
              text: "rollout " + rollout.id + " · generation " + rollout.generation + " · " + state +
                    " · wave " + rollout.current_wave + "/" + rollout.waves + (rollout.error ? " · " + rollout.error : "") }),
    ...rows);
}

function saBlock(c) {
  const k = c.counters || {};
  return el("div", { class: "sa", "data-spi-in": c.spi_in, "data-spi-out": c.spi_out },
    el("div", { class: c.stale ? "state-stale" : "",
                text: "esp in 0x" + c.spi_in + " out 0x" + c.spi_out + "  " +
                      String(c.state).replace("SA_STATE_", "").toLowerCase() + "  " + c.suite +
                      (c.stale ? "  STALE: " + c.stale_reason : "") }),
    el("div", { text: c.local_ts + " === " + c.remote_ts }),
    el("div", { text: "in " + num(k.bytes_in) + " B / " + num(k.packets_in) + " pkts   out " + num(k.bytes_out) +
                      " B / " + num(k.packets_out) + " pkts   age " + num(c.age_seconds) + " s   rekeys " + num(c.rekeys) }));
}

function renderHost(name, info, report, now) {
  setText("host-name", name);
  setText("host-summary", (info.connected ? "connected" : "disconnected") + " · last seen " +
    ago(num(info.last_seen_unix), now) + " · bundle " + info.applied_bundle_version + " · certificate expires " +
    fmtTime(num(info.cert_not_after_unix)) + " · addresses " + (info.addresses || []).join(", "));
  const tunnels = (report && report.tunnels) || [];
  $("host-tunnels").replaceChildren(...(tunnels.length ? tunnels.map(t => {
    const s = t.up ? "up" : "down";
    const ike = t.ike_sa ? el("div", { class: "sa", text: "ike " + t.ike_sa.spi_i + "/" + t.ike_sa.spi_r + "  " +
      String(t.ike_sa.state).replace("SA_STATE_", "").toLowerCase() + "  " + t.ike_sa.suite + "  peer " +
      t.ike_sa.remote_identity + (t.ike_sa.stale ? "  STALE: " + t.ike_sa.stale_reason : "") }) : null;
    return el("div", { class: "tunnel-block", "data-tunnel": t.tunnel, "data-state": s },
      el("strong", { text: t.tunnel + " " }), el("span", { class: "state-" + s, text: s }),
      t.last_error ? el("div", { class: "state-down", text: "last error: " + t.last_error }) : null,
      ike, ...(t.child_sas || []).map(saBlock));
  }) : [el("p", { class: "muted", text: "no health report yet" })]));
  const forced = ((report && report.forced) || []).slice().reverse();
  $("host-forced").tBodies[0].replaceChildren(...forced.map(f => el("tr", {},
    el("td", { text: fmtTime(num(f.at_unix)) }), el("td", { text: f.tunnel }), el("td", { text: f.reason }),
    el("td", { text: f.detail }))));
}

function route() {
  const m = window.location.hash.match(/^#\/host\/(.+)$/);
  return m ? { page: "host", host: decodeURIComponent(m[1]) } : { page: "overview" };
}

async function refresh() {
  const r = route();
  const now = Math.floor(Date.now() / 1000);
  $("page-overview").classList.toggle("hidden", r.page !== "overview");
  $("page-host").classList.toggle("hidden", r.page !== "host");
  try {
    if (r.page === "host") {
      const enc = encodeURIComponent(r.host);
      const [info, report] = await Promise.all([getJson("/api/hosts/" + enc), getJson("/api/hosts/" + enc + "/sas")]);
      renderHost(r.host, info, report, now);
    } else {
      const [status, hosts, tunnels, rollout, certs] = await Promise.all([
        getJson("/api/status"), getJson("/api/hosts"), getJson("/api/tunnels"), getJson("/api/rollout"),
        getJson("/api/certificates")]);
      renderCards(status, hosts, tunnels, certs, now);
      renderTopology(status, tunnels);
      renderRollout(rollout);
      renderHosts(status, hosts, now);
      renderTunnels(tunnels);
    }
    $("error").classList.add("hidden");
    setText("updated", "updated " + new Date().toLocaleTimeString());
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } catch (e) {
    $("error").textContent = "cannot reach the controller: " + e.message;
    $("error").classList.remove("hidden");
  }
}

let timer = null;
function schedule() {
  clearTimeout(timer);
  refresh().finally(() => { timer = setTimeout(schedule, POLL_MS); });
}
window.addEventListener("hashchange", schedule);
document.addEventListener("DOMContentLoaded", schedule);
