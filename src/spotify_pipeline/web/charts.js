/* Shared by the HTML report (inlined) and the dashboard (/static/charts.js): draws a Vega-Lite spec with
   the vendored runtime (no network, no eval: expressions run in vega-interpreter), with tooltips, the
   system's light or dark theme, and CSV / PNG downloads of the chart. */
"use strict";
window.spCharts = (function () {
  const darkQuery = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  const isDark = () => Boolean(darkQuery && darkQuery.matches);

  function csv(rows) {
    if (!rows.length) return "";
    const columns = Object.keys(rows[0]);
    const cell = v => {
      const text = v === null || v === undefined ? "" : String(v);
      return /[",\n\r]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
    };
    return [columns.join(",")].concat(rows.map(r => columns.map(c => cell(r[c])).join(","))).join("\r\n") + "\r\n";
  }

  function download(filename, href) {
    const a = document.createElement("a");
    a.href = href;
    a.download = filename;
    a.rel = "noopener";
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  function button(label, title, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "download";
    b.textContent = label;
    b.title = title;
    b.addEventListener("click", onClick);
    return b;
  }

  /* On a phone: slanted category labels, and the two playlists of an overlap pair on two lines. */
  function narrow(s) {
    const encodings = [s.encoding].concat((s.layer || []).map(l => l.encoding)).filter(Boolean);
    encodings.forEach(e => {
      if (e.x && e.x.type === "ordinal") e.x.axis = Object.assign({}, e.x.axis, {labelAngle: -45});
      if (e.y && e.y.axis && e.y.axis.labelLimit === 0) {
        e.y.axis = Object.assign({}, e.y.axis, {labelExpr: "split(datum.label, ' ↔ ')", labelLimit: 200});
        s.height = {step: 30};
      }
    });
  }

  /* Draw `spec` into `target` (an element); `name` names the downloads. Resolves to the Vega view. */
  async function render(target, spec, name) {
    const s = JSON.parse(JSON.stringify(spec));
    s.width = "container";
    s.autosize = {type: "fit-x", contains: "padding"};
    s.background = null;
    if (target.clientWidth && target.clientWidth < 520) narrow(s);
    const dark = isDark();
    const result = await window.vegaEmbed(target, s, {
      renderer: "svg",
      actions: false,
      ast: true,
      expr: window.vega.expressionInterpreter,
      theme: dark ? "dark" : undefined,
      tooltip: {theme: dark ? "dark" : "light"},
    });
    const view = result.view;
    const tools = document.createElement("div");
    tools.className = "chart-tools";
    tools.appendChild(button("CSV", "Download this chart's data as CSV", () => {
      const blob = new Blob([csv(s.data.values)], {type: "text/csv"});
      const url = URL.createObjectURL(blob);
      download(name + ".csv", url);
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    }));
    tools.appendChild(button("PNG", "Download this chart as PNG", async () => {
      download(name + ".png", await view.toImageURL("png", 2));
    }));
    target.parentNode.insertBefore(tools, target);
    target.dataset.rendered = "true";
    return view;
  }

  return {render, csv, download, isDark};
})();
