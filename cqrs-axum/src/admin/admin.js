// The admin page of eventweave-axum: hand-written, no build step, no dependencies.
// Everything shown comes from the service's own endpoints (`<base>/api/...`) and its live
// feed (`/events`, Server-Sent Events). Text is inserted with `textContent`, never as HTML.
"use strict";

(function () {
  const base = document.body.dataset.base || "/admin";
  const FEED_KEEP = 200; // lines kept in the live view
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function showError(text) {
    const box = $("error");
    box.textContent = text;
    box.hidden = !text;
  }

  async function api(path) {
    const response = await fetch(base + "/api/" + path, { headers: { accept: "application/json" } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error((body && body.detail) || response.status + " " + response.statusText);
    }
    return body;
  }

  let head = 0;
  function setHead(position) {
    if (position > head) head = position;
    $("head").textContent = String(head);
  }

  // ---- projections --------------------------------------------------------------------
  async function loadProjections() {
    const data = await api("projections");
    setHead(data.head);
    const body = $("projections").tBodies[0];
    const rows = data.projections.map((p) => {
      let parked = "0";
      if (p.parked.length > 0) {
        const list = el("ul", {}, ...p.parked.map((e) =>
          el("li", {}, `@${e.position} ${e.stream} v${e.version} ${e.event_name}: ${e.error}`)));
        parked = el("details", {}, el("summary", {}, String(p.parked.length)), list);
      }
      const stateClass = "state" + (p.state.startsWith("stopped") ? " stopped" : "");
      return el("tr", { "data-name": p.name, "data-state": p.state, class: p.parked.length ? "parked" : "" },
        el("td", { class: "name" }, p.name),
        el("td", {}, p.kind),
        el("td", { class: stateClass }, p.state),
        el("td", { class: "num" }, String(p.checkpoint)),
        el("td", { class: "num" }, String(p.lag)),
        el("td", { class: "num" }, parked));
    });
    body.replaceChildren(...rows);
  }

  // ---- streams ------------------------------------------------------------------------
  let lastStream = null;
  async function loadStreams(more) {
    const after = more && lastStream ? "&after=" + encodeURIComponent(lastStream) : "";
    const data = await api("streams?limit=100" + after);
    const body = $("streams").tBodies[0];
    const rows = data.streams.map((s) =>
      el("tr", { class: "clickable", "data-stream": s.stream, onclick: () => openStream(s.stream) },
        el("td", {}, el("code", {}, s.stream)),
        el("td", { class: "num" }, String(s.events)),
        el("td", { class: "num" }, String(s.last_position))));
    if (more) body.append(...rows); else body.replaceChildren(...rows);
    if (data.streams.length > 0) lastStream = data.streams[data.streams.length - 1].stream;
    $("more-streams").hidden = data.streams.length < 100;
  }

  function eventItem(e) {
    const line = el("div", {},
      el("span", { class: "meta" }, `@${e.position} `),
      el("code", {}, `${e.stream} v${e.version}`), " ",
      el("span", { class: "name" }, e.event_name),
      el("span", { class: "meta" }, ` (v${e.event_version}) ${new Date(e.recorded_at / 1000).toISOString()}`));
    const ids = el("div", { class: "meta" }, `event ${e.event_id}`,
      e.correlation_id ? ` correlation ${e.correlation_id}` : "",
      e.causation_id ? ` causation ${e.causation_id}` : "");
    const payload = el("pre", {}, JSON.stringify(e.payload, null, 2));
    const problem = e.problem ? el("div", { class: "error" }, e.problem) : null;
    return el("li", { "data-position": String(e.position) }, line, ids, payload, problem);
  }

  let openStreamName = null;
  async function openStream(stream) {
    openStreamName = stream;
    const data = await api("streams/" + encodeURIComponent(stream) + "?limit=500");
    $("stream-name").textContent = stream;
    $("stream-events").replaceChildren(...data.events.map(eventItem));
    $("stream-view").hidden = false;
  }

  // ---- live feed ----------------------------------------------------------------------
  let refresh = null;
  function refreshSoon() {
    if (refresh) return;
    refresh = setTimeout(() => {
      refresh = null;
      Promise.all([loadProjections(), loadStreams(false),
        openStreamName ? openStream(openStreamName) : null])
        .then(() => showError(""), (e) => showError(e.message));
    }, 300);
  }

  function feedState(state) {
    const node = $("feed-state");
    node.textContent = state;
    node.dataset.state = state;
  }

  function startFeed(from) {
    const source = new EventSource("/events?from=" + from);
    source.onopen = () => feedState("live");
    source.onerror = () => feedState(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
    source.onmessage = (message) => {
      let e;
      try { e = JSON.parse(message.data); } catch (_) { return; }
      const list = $("feed");
      if (list.querySelector(`li[data-position="${e.position}"]`)) return;
      const item = el("li", { "data-position": String(e.position), "data-event": e.event_name, class: "new" },
        el("span", { class: "meta" }, `@${e.position} `),
        el("code", {}, `${e.stream} v${e.version}`), " ",
        el("span", { class: "name" }, e.event_name), " ",
        el("span", { class: "meta" }, JSON.stringify(e.payload)));
      list.prepend(item);
      while (list.children.length > FEED_KEEP) list.lastElementChild.remove();
      setHead(e.position);
      refreshSoon();
    };
    for (const name of ["lagged", "shutdown", "error"]) {
      source.addEventListener(name, (message) => {
        let detail = name;
        try { detail = JSON.parse(message.data).detail || name; } catch (_) { /* not JSON */ }
        feedState(name === "lagged" ? "reconnecting" : name);
        showError("feed: " + detail);
      });
    }
  }

  // ---- catalog ------------------------------------------------------------------------
  function drawCatalog(data) {
    $("mermaid").textContent = data.mermaid;
    const c = data.catalog;
    const graph = $("catalog-graph");
    const nodes = new Map();
    const column = (title, items, kind, id, label) => {
      const col = el("div", { class: "column" }, el("h4", {}, title));
      for (const item of items) {
        const node = el("div", { class: "node " + kind, title: item.type || "" }, label(item));
        nodes.set(id(item), node);
        col.append(node);
      }
      return col;
    };
    const edges = [];
    // Decisions (catalog version 2; an older server sends none) sit beside the aggregates: their
    // commands lead to them, they emit events (solid) and read the events of their states
    // (dashed, drawn back from the event).
    const decisions = c.decisions || [];
    for (const cmd of c.commands) {
      if (cmd.aggregate) edges.push(["cmd:" + cmd.name, "agg:" + cmd.aggregate, false]);
      if (cmd.decision) edges.push(["cmd:" + cmd.name, "dec:" + cmd.decision, false]);
    }
    for (const agg of c.aggregates) for (const ev of agg.events) edges.push(["agg:" + agg.name, "evt:" + ev, false]);
    for (const d of decisions) {
      for (const ev of d.emits) edges.push(["dec:" + d.name, "evt:" + ev, false]);
      const read = new Set(d.states.flatMap((state) => state.events));
      for (const ev of read) edges.push(["evt:" + ev, "dec:" + d.name, true]);
    }
    for (const p of c.projections) {
      for (const ev of p.events) edges.push(["evt:" + ev, "prj:" + p.name, false]);
      for (const q of p.queries) edges.push(["prj:" + p.name, "qry:" + q, true]);
    }
    for (const pm of c.process_managers) {
      for (const ev of pm.events) edges.push(["evt:" + ev, "pm:" + pm.name, false]);
      for (const cmd of pm.issues || []) edges.push(["pm:" + pm.name, "cmd:" + cmd, true]);
    }
    const short = (type) => type.split("::").pop();
    graph.replaceChildren(
      column("Commands", c.commands, "command", (x) => "cmd:" + x.name, (x) => x.name),
      (() => {
        const col = column("Aggregates", c.aggregates, "aggregate", (x) => "agg:" + x.name, (x) => x.name);
        if (decisions.length === 0) return col;
        const decs = column("Decisions", decisions, "decision", (x) => "dec:" + x.name, (x) => x.name);
        col.append(...Array.from(decs.children));
        return col;
      })(),
      column("Events", c.events, "event", (x) => "evt:" + x.name, (x) => x.name),
      (() => {
        const col = column("Projections", c.projections, "projection", (x) => "prj:" + x.name, (x) => x.name);
        const pms = column("Process managers", c.process_managers, "process", (x) => "pm:" + x.name, (x) => x.name);
        col.append(...Array.from(pms.children));
        return col;
      })(),
      column("Queries", c.queries, "query", (x) => "qry:" + x.type, (x) => short(x.type)));
    const draw = () => {
      const old = graph.querySelector("svg");
      if (old) old.remove();
      const ns = "http://www.w3.org/2000/svg";
      const svg = document.createElementNS(ns, "svg");
      svg.setAttribute("width", String(graph.scrollWidth));
      svg.setAttribute("height", String(graph.scrollHeight));
      const origin = graph.getBoundingClientRect();
      for (const [from, to, dashed] of edges) {
        const a = nodes.get(from), b = nodes.get(to);
        if (!a || !b) continue;
        const ra = a.getBoundingClientRect(), rb = b.getBoundingClientRect();
        const backwards = rb.left < ra.left;
        const x1 = (backwards ? ra.left : ra.right) - origin.left + graph.scrollLeft;
        const y1 = ra.top + ra.height / 2 - origin.top;
        const x2 = (backwards ? rb.right : rb.left) - origin.left + graph.scrollLeft;
        const y2 = rb.top + rb.height / 2 - origin.top;
        const bend = Math.max(30, Math.abs(x2 - x1) / 2) * (backwards ? -1 : 1);
        const path = document.createElementNS(ns, "path");
        path.setAttribute("d", `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`);
        if (dashed) path.setAttribute("class", "dashed");
        svg.append(path);
      }
      graph.prepend(svg);
    };
    window.addEventListener("resize", draw);
    // Drawn once laid out; the returned promise settles then (the page is `ready` after it).
    return new Promise((resolve) => requestAnimationFrame(() => { draw(); resolve(); }));
  }

  // ---- start --------------------------------------------------------------------------
  async function start() {
    try {
      const overview = await api("overview");
      setHead(overview.head);
      if (overview.feed) startFeed(Math.max(1, overview.head - 19));
      else feedState("off");
      await Promise.all([loadProjections(), loadStreams(false), api("catalog").then(drawCatalog)]);
      document.body.dataset.ready = "true";
    } catch (e) {
      showError(e.message);
    }
  }
  $("more-streams").addEventListener("click", () => loadStreams(true).catch((e) => showError(e.message)));
  start();
})();
