/* The dashboard page: three views (overview, playlists, one playlist) whose whole state is in the URL
   (?view=&playlist=&from=&to=&q=&sort=&order=&page=), so a view can be bookmarked, shared and reloaded. */
"use strict";
(function () {
  const $ = id => document.getElementById(id);
  const picker = $("playlist"), fromInput = $("from"), toInput = $("to"), status = $("status");
  const main = $("view"), kpis = $("kpis");
  const PAGE = 50;
  const MIN_LINE_POINTS = 2;
  let reportsCache = null, playlistsCache = null, renderCount = 0;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  async function getJSON(url) {
    const response = await fetch(url);
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  // --- state in the URL ------------------------------------------------------------------------------
  const KEYS = ["view", "playlist", "from", "to", "q", "sort", "order", "page"];
  function readState() {
    const params = new URLSearchParams(location.search);
    const state = {};
    KEYS.forEach(k => { state[k] = params.get(k) || ""; });
    if (!["overview", "playlists", "playlist"].includes(state.view)) state.view = state.playlist && params.get("view") === "playlist" ? "playlist" : "overview";
    if (state.view === "playlist" && !state.playlist) state.view = "playlists";
    return state;
  }
  function urlOf(state) {
    const params = new URLSearchParams();
    KEYS.forEach(k => { if (state[k] && !(k === "view" && state[k] === "overview")) params.set(k, state[k]); });
    const text = params.toString();
    return location.pathname + (text ? "?" + text : "");
  }
  function go(changes, replace) {
    const state = Object.assign(readState(), changes);
    const url = urlOf(state);
    if (url !== location.pathname + location.search) {
      if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
    }
    return render();
  }
  function link(changes, text, attrs) {
    const state = Object.assign(readState(), {q: "", sort: "", order: "", page: ""}, changes);
    const a = el("a", Object.assign({href: urlOf(state)}, attrs || {}), text);
    a.addEventListener("click", event => {
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      history.pushState(null, "", a.getAttribute("href"));
      render();
    });
    return a;
  }

  // --- formatting ------------------------------------------------------------------------------------
  const ISO = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(:\d\d(\.\d+)?)?([+-]\d\d:\d\d|Z)?$/;
  function show(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") return Number.isInteger(value) ? value.toLocaleString("en") : String(Math.round(value * 1000) / 1000);
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (typeof value === "object") return JSON.stringify(value);
    const m = ISO.exec(value);
    if (m) return m[1] + " " + m[2];
    return String(value);
  }
  function spotifyUrl(uri) {
    const m = /^spotify:(track|episode|album|artist|playlist|show):([0-9A-Za-z]+)$/.exec(uri || "");
    return m ? "https://open.spotify.com/" + m[1] + "/" + m[2] : null;
  }
  function external(href, text, label) {
    const attrs = {href: href, target: "_blank", rel: "noopener noreferrer"};
    if (label) attrs["aria-label"] = label;
    return el("a", attrs, text);
  }
  function minutes(ms) {
    if (ms === null || ms === undefined) return "";
    const s = Math.round(ms / 1000);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }
  function inRange(value, state) {
    if (!value) return true;
    const day = String(value).slice(0, 10);
    return (!state.from || day >= state.from) && (!state.to || day <= state.to);
  }

  function table(columns, titles, rows, cellFor) {
    const wrap = el("div", {class: "scroll", tabindex: "0", role: "region", "aria-label": "Table"});
    const t = wrap.appendChild(el("table"));
    const head = t.appendChild(el("thead")).appendChild(el("tr"));
    columns.forEach(c => head.appendChild(el("th", {scope: "col"}, titles[c] || c)));
    const body = t.appendChild(el("tbody"));
    rows.forEach(row => {
      const tr = body.appendChild(el("tr"));
      columns.forEach(c => tr.appendChild(cellFor ? cellFor(row, c) : plainCell(row[c])));
    });
    return wrap;
  }
  function plainCell(value) {
    const text = show(value);
    const numeric = typeof value === "number";
    const td = el("td", numeric ? {class: "num"} : text.length > 40 ? {class: "long"} : {});
    const href = typeof value === "string" ? spotifyUrl(value) : null;
    if (href) td.appendChild(external(href, text, "Open " + text + " in Spotify"));
    else td.textContent = text;
    return td;
  }

  // --- header: KPIs, picker, nav -----------------------------------------------------------------------
  async function renderKpis(state) {
    const query = state.playlist ? "?playlist=" + encodeURIComponent(state.playlist) : "";
    const info = await getJSON("/api/summary" + query);
    const stats = [
      [info.fresh ? show(info.fresh) + " UTC" : "unknown", "data as of"],
      [show(info.playlists), "playlists"],
      [show(info.items), "playlist items"],
      [show(info.songs), "songs"],
      [show(info.artists), "artists"],
    ];
    if (info.last_run) stats.push([info.last_run.status, "last run"]);
    kpis.replaceChildren(...stats.map(([value, label]) => {
      const box = el("div", {class: "stat", "data-kpi": label});
      box.appendChild(el("b", {}, value));
      box.appendChild(document.createTextNode(label));
      return box;
    }));
  }

  function syncControls(state) {
    picker.value = state.playlist;
    fromInput.value = state.from;
    toInput.value = state.to;
    document.querySelectorAll("header nav a").forEach(a => {
      const current = a.dataset.view === state.view || (a.dataset.view === "playlists" && state.view === "playlist");
      if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    });
    const timed = state.view === "overview";
    fromInput.disabled = toInput.disabled = !timed;
  }

  // --- views -----------------------------------------------------------------------------------------
  async function overview(state, token) {
    main.className = "";
    const query = state.playlist ? "?playlist=" + encodeURIComponent(state.playlist) : "";
    const reports = reportsCache || (reportsCache = await getJSON("/api/reports"));
    const sections = reports.map(report => {
      const section = el("section", {id: report.name, "data-report": report.name, class: report.chart ? "" : "wide"});
      section.appendChild(el("h2", {}, report.title));
      let desc = report.description;
      if (report.time_field && (state.from || state.to)) desc += " Showing " + (state.from || "…") + " to " + (state.to || "…") + ".";
      section.appendChild(el("p", {}, desc));
      return section;
    });
    main.replaceChildren(...sections);
    await Promise.all(reports.map(async (report, i) => {
      const section = sections[i];
      const field = report.time_field;
      if (report.chart) {
        const answer = await getJSON("/api/charts/" + report.name + ".json" + query);
        if (token !== renderCount) return;
        const spec = answer.spec;
        let note = answer.note;
        if (!note && field) {
          spec.data.values = spec.data.values.filter(v => inRange(v[field], state));
          const points = new Set(spec.data.values.map(v => v[field])).size;
          if (!points) note = "No data in this time range.";
          else if (points < MIN_LINE_POINTS) note = "Not enough data yet in this time range: a trend needs at least 2 points.";
        }
        if (note) { section.appendChild(el("p", {class: "empty not-enough"}, note)); return; }
        const chart = el("div", {class: "chart", "data-report": report.name});
        const wrap = el("div");
        wrap.appendChild(chart);
        section.appendChild(wrap);
        await window.spCharts.render(chart, spec, report.name);
      } else {
        const data = await getJSON("/api/reports/" + report.name + query);
        if (token !== renderCount) return;
        const rows = field ? data.rows.filter(r => inRange(r[field], state)) : data.rows;
        if (!rows.length) { section.appendChild(el("p", {class: "empty"}, field && data.rows.length ? "No rows in this time range." : "No rows.")); return; }
        section.appendChild(table(data.columns, data.titles || {}, rows.slice(0, 25)));
        if (rows.length > 25) section.appendChild(el("p", {class: "empty"}, (rows.length - 25) + " more rows not shown."));
      }
    }));
  }

  async function playlistsView(state, token) {
    main.className = "single";
    const rows = playlistsCache || (playlistsCache = await getJSON("/api/playlists"));
    if (token !== renderCount) return;
    const section = el("section", {id: "playlists", class: "wide"});
    section.appendChild(el("h2", {}, "Playlists"));
    const bar = section.appendChild(el("div", {class: "toolbar"}));
    const label = bar.appendChild(el("label", {}, "Search "));
    const search = label.appendChild(el("input", {type: "search", id: "search", value: state.q, placeholder: "playlist name"}));
    const count = bar.appendChild(el("span", {class: "meta"}));
    const holder = section.appendChild(el("div"));
    const draw = q => {
      const needle = q.trim().toLowerCase();
      const shown = rows.filter(p => !needle || (p.name || "").toLowerCase().includes(needle));
      count.textContent = shown.length + " of " + rows.length + " playlists";
      holder.replaceChildren(table(["name", "items", "open"], {name: "Playlist", items: "Items", open: "Spotify"}, shown, (p, c) => {
        const td = el("td", c === "items" ? {class: "num"} : {});
        if (c === "name") td.appendChild(link({view: "playlist", playlist: p.playlist_id}, p.name || p.playlist_id));
        else if (c === "items") td.textContent = show(p.items);
        else td.appendChild(external("https://open.spotify.com/playlist/" + p.playlist_id, "Open ↗", "Open " + (p.name || "playlist") + " in Spotify"));
        return td;
      }));
    };
    let timer = null;
    search.addEventListener("input", () => {
      draw(search.value);
      clearTimeout(timer);
      timer = setTimeout(() => history.replaceState(null, "", urlOf(Object.assign(readState(), {q: search.value}))), 250);
    });
    draw(state.q);
    main.replaceChildren(section);
  }

  const SONG_COLUMNS = [
    ["position", "#", "position"], ["name", "Title", "name"], ["artists", "Artists", "artists"],
    ["album", "Album", "album"], ["duration_ms", "Length", "duration"], ["popularity", "Popularity", "popularity"],
    ["added_at", "Added", "added"], ["open", "Spotify", null],
  ];

  async function playlistView(state, token) {
    main.className = "single";
    const page = Math.max(1, parseInt(state.page || "1", 10) || 1);
    const sort = state.sort || "position", order = state.order === "desc" ? "desc" : "asc";
    const params = new URLSearchParams({sort: sort, order: order, offset: String((page - 1) * PAGE), limit: String(PAGE)});
    if (state.q) params.set("q", state.q);
    const data = await getJSON("/api/playlists/" + encodeURIComponent(state.playlist) + "/songs?" + params);
    if (token !== renderCount) return;
    const p = data.playlist;
    const section = el("section", {id: "songs", class: "wide", "data-playlist": p.playlist_id});
    section.appendChild(el("h2", {}, p.name || p.playlist_id));
    if (p.description) section.appendChild(el("p", {}, p.description));
    const meta = section.appendChild(el("div", {class: "meta"}));
    meta.appendChild(el("span", {}, show(p.total_items) + " items"));
    if (p.owner_name) meta.appendChild(el("span", {}, "by " + p.owner_name));
    if (p.followers !== null && p.followers !== undefined) meta.appendChild(el("span", {}, show(p.followers) + " followers"));
    if (p.extracted_at) meta.appendChild(el("span", {}, "extracted " + show(p.extracted_at) + " UTC"));
    meta.appendChild(external("https://open.spotify.com/playlist/" + p.playlist_id, "Open in Spotify ↗"));
    meta.appendChild(link({view: "overview", playlist: p.playlist_id}, "Charts for this playlist"));

    const bar = section.appendChild(el("div", {class: "toolbar"}));
    const label = bar.appendChild(el("label", {}, "Search "));
    const search = label.appendChild(el("input", {type: "search", id: "search", value: state.q, placeholder: "title, artist or album"}));
    let timer = null;
    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => go({q: search.value.trim(), page: ""}, true), 300);
    });
    const pages = Math.max(1, Math.ceil(data.total / PAGE));
    const pager = bar.appendChild(el("div", {class: "pager", "aria-label": "Pages"}));
    const first = data.total ? data.offset + 1 : 0;
    pager.appendChild(el("span", {id: "range"}, first + "–" + (data.offset + data.rows.length) + " of " + data.total));
    const prev = pager.appendChild(el("button", {type: "button", id: "prev"}, "‹ Previous"));
    const next = pager.appendChild(el("button", {type: "button", id: "next"}, "Next ›"));
    prev.disabled = page <= 1;
    next.disabled = page >= pages;
    prev.addEventListener("click", () => go({page: page - 1 > 1 ? String(page - 1) : ""}));
    next.addEventListener("click", () => go({page: String(page + 1)}));

    if (!data.rows.length) {
      section.appendChild(el("p", {class: "empty"}, state.q ? "No song matches “" + state.q + "”." : "This playlist is empty."));
    } else {
      const wrap = table(SONG_COLUMNS.map(c => c[0]), {}, data.rows, (row, c) => {
        if (c === "open") {
          const td = el("td");
          const href = spotifyUrl(row.item_uri);
          if (href) td.appendChild(external(href, "Open ↗", "Open " + (row.name || "item") + " in Spotify"));
          return td;
        }
        if (c === "duration_ms") return el("td", {class: "num"}, minutes(row.duration_ms));
        if (c === "added_at") return el("td", {}, row.added_at ? String(row.added_at).slice(0, 10) : "");
        const td = plainCell(row[c]);
        if (c === "name" && row.explicit) td.appendChild(el("abbr", {class: "explicit", title: "explicit"}, "E"));
        return td;
      });
      const head = wrap.querySelector("thead tr");
      SONG_COLUMNS.forEach(([, title, key], i) => {
        const th = head.children[i];
        th.textContent = "";
        if (!key) { th.textContent = title; return; }
        const active = key === sort;
        th.setAttribute("aria-sort", active ? (order === "asc" ? "ascending" : "descending") : "none");
        const b = th.appendChild(el("button", {type: "button", "data-sort": key}, title + (active ? (order === "asc" ? " ▲" : " ▼") : "")));
        b.addEventListener("click", () => go({sort: key === "position" && active && order === "desc" ? "" : key,
                                               order: active && order === "asc" ? "desc" : "", page: ""}));
      });
      section.appendChild(wrap);
    }
    main.replaceChildren(section);
  }

  // --- render ----------------------------------------------------------------------------------------
  async function render() {
    const state = readState();
    const token = ++renderCount;
    syncControls(state);
    status.textContent = "loading…";
    document.body.dataset.ready = "";
    try {
      await Promise.all([
        renderKpis(state),
        state.view === "playlists" ? playlistsView(state, token)
          : state.view === "playlist" ? playlistView(state, token) : overview(state, token),
      ]);
      if (token !== renderCount) return;
      status.textContent = "";
    } catch (err) {
      if (token !== renderCount) return;
      status.textContent = "error: " + err.message;
      main.replaceChildren(el("section", {class: "wide"}, "Could not load this view: " + err.message));
    }
    document.body.dataset.view = state.view;
    document.body.dataset.loadedPlaylist = state.playlist;
    document.body.dataset.ready = urlOf(state);
  }

  async function init() {
    playlistsCache = await getJSON("/api/playlists");
    playlistsCache.forEach(p => picker.appendChild(el("option", {value: p.playlist_id}, (p.name || p.playlist_id) + " (" + p.items + ")")));
    picker.addEventListener("change", () => {
      const view = readState().view;
      go({playlist: picker.value, view: view === "playlist" && picker.value ? "playlist" : view === "playlist" ? "playlists" : view,
          page: "", q: view === "playlist" ? "" : readState().q});
    });
    fromInput.addEventListener("change", () => go({from: fromInput.value}));
    toInput.addEventListener("change", () => go({to: toInput.value}));
    document.querySelectorAll("header nav a").forEach(a => a.addEventListener("click", event => {
      event.preventDefault();
      go({view: a.dataset.view, q: "", sort: "", order: "", page: ""});
    }));
    window.addEventListener("popstate", render);
    await render();
  }
  init();
})();
