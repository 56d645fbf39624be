/* micon report: builds the page from the JSON embedded in index.html (no network, no fetch). */
"use strict";
(function () {
  const mark = (name) => performance.mark(`micon:${name}`);  // phases of opening, read by benchmarks/report_scale.py
  const D = JSON.parse(document.getElementById("report-data").textContent);
  mark("parsed");
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const num = (x, d = 2) => (x === null || x === undefined || x === "" ? "-" : typeof x === "number" ? x.toFixed(d) : esc(x));
  const pct = (x) => (typeof x === "number" ? (100 * x).toFixed(1) : "-");
  const taskTitle = (t) => (D.tasks[t] && D.tasks[t].title) || t;
  const DIMS = (D.runs[0] && D.runs[0].scores.dim_names) || {};
  const dimTitle = (d) => (DIMS[d] ? `${d} ${DIMS[d]}` : d);
  const charts = [];

  // -- header ------------------------------------------------------------------------------------
  $("meta").textContent = `Generated ${D.generated}` + (D.max_cases ? ` · gallery limited to the first ${D.max_cases} cases of each task (--max_cases)` : "");
  const notes = [...D.notices, ...D.runs.flatMap((r) => r.notices.map((n) => `${r.name}: ${n}`)),
    ...Object.entries(D.tasks).filter(([, t]) => t.note).map(([name, t]) => `task ${name}: ${t.note}`)];
  $("notices").innerHTML = notes.map((n) => `<li>${esc(n)}</li>`).join("");

  // -- scores ------------------------------------------------------------------------------------
  function tableHtml(t, run) {
    const head = `<tr>${t.columns.map((c) => `<th>${esc(c)}</th>`).join("")}</tr>`;
    const rows = t.rows.map((row, i) => `<tr>${row.map((v, j) => {
      const key = t.keys && t.keys[i] ? t.keys[i][j] : null;
      const attrs = key ? ` data-key="${esc(key)}" data-value="${esc(v)}"` : "";
      return `<td${attrs}>${typeof v === "number" ? num(v) : esc(v)}</td>`;
    }).join("")}</tr>`).join("");
    const h = t.headline || {};
    let line = "";
    if (h.value !== undefined && h.value !== null) {
      line = `<p class="headline">${esc(h.name || "Score")} <b>${num(h.value)}</b>` + (h.stderr != null ? ` ± ${num(h.stderr)} (bootstrap stderr)` : "") +
        (h.clean != null ? ` · clean-only ${num(h.clean)}` : "") + (h.macro != null ? ` · macro avg ${num(h.macro)}` + (h.macro_stderr != null ? ` ± ${num(h.macro_stderr)}` : "") : "") + `</p>`;
    }
    const c = t.counts || {};
    const counts = Object.keys(c).length ? `<p class="muted">${Object.entries(c).map(([k, v]) => `${esc(k)}: ${esc(v)}`).join(" · ")}</p>` : "";
    const views = t.views && Object.keys(t.views).length ? `<p class="muted">${Object.entries(t.views).map(([k, v]) =>
      `${esc(k)}: ${num(v.value)}${v.stderr != null ? ` ± ${num(v.stderr)}` : ""}`).join(" · ")}</p>` : "";
    return `<h4>${esc(t.title)}</h4>${line}<table class="scores-table" data-run="${run}" data-title="${esc(t.title)}">${head}${rows}</table>${counts}${views}`;
  }
  function detailsHtml(details) {
    if (!details.length) return "";
    const dims = [...new Set(details.flatMap((d) => Object.keys(d.dimensions || {})))].sort();
    const head = ["Task", "Cases", "Clean", "Gen. failed", "Judge errors", "Score", "± Stderr", "Clean score", ...dims.map((d) => `<span title="${esc(DIMS[d] || d)}">${esc(d)}</span>`)];
    const rows = details.map((d) => `<tr><td>${esc(d.task)}</td><td>${d.n_cases ?? "-"}</td><td>${d.n_cases_clean ?? "-"}</td><td>${d.n_failed ?? "-"}</td>` +
      `<td>${d.n_checkpoint_errors ?? "-"}</td><td data-key="results.${esc(d.task)}.score" data-value="${esc(d.score)}">${num(d.score)}</td><td>${num(d.stderr)}</td><td>${num(d.score_clean)}</td>` +
      dims.map((k) => `<td>${typeof (d.dimensions || {})[k] === "number" && d.dimensions[k] <= 1 ? pct(d.dimensions[k]) : num((d.dimensions || {})[k])}</td>`).join("") + `</tr>`).join("");
    return `<table class="details-table">${"<tr>" + head.map((h) => `<th>${h}</th>`).join("") + "</tr>"}${rows}</table>` +
      `<p class="muted">Dimension columns: mean pass rate × 100 after hard caps. Errors and failed generations count as fails, never dropped.</p>`;
  }
  function provHtml(prov) {
    return `<details class="prov"><summary>Provenance</summary><dl>${prov.map(([k, v]) =>
      `<dt>${esc(k)}</dt><dd>${esc(typeof v === "object" ? JSON.stringify(v, null, 1) : v)}</dd>`).join("")}</dl></details>`;
  }
  function leaderboard() {
    if (D.runs.length < 2) return "";
    const order = D.runs.map((r, i) => i).sort((a, b) => ((D.runs[b].scores.headline || {}).value ?? -1) - ((D.runs[a].scores.headline || {}).value ?? -1));
    const rows = order.map((i, rank) => {
      const r = D.runs[i], h = r.scores.headline || {};
      return `<tr><td>${rank + 1}</td><td>${esc(r.name)}</td><td>${esc(r.model)}</td><td>${r.dar ? "on" : "off"}</td><td>${esc(r.judge)}</td>` +
        `<td data-value="${esc(h.value)}">${num(h.value)}</td><td>${num(h.stderr)}</td><td>${num(h.clean)}</td><td>${h.n ?? r.cards.length}</td></tr>`;
    }).join("");
    return `<h3>Leaderboard</h3><table id="leaderboard-table"><tr><th>#</th><th>Run</th><th>Model</th><th>DAR</th><th>Judge</th><th>Headline</th><th>± Stderr</th><th>Clean</th><th>Cases</th></tr>${rows}</table>`;
  }
  $("leaderboard").innerHTML = leaderboard();
  $("run-scores").innerHTML = D.runs.map((r, i) => {
    const tn = Object.entries(r.task_notices || {}).flatMap(([t, ns]) => ns.map((n) => `<li>${esc(t)}: ${esc(n)}</li>`)).join("");
    return `<div class="run-block" data-run="${i}"><h3>${esc(r.name)} <span class="tag">model ${esc(r.model)} · DAR ${r.dar ? "on" : "off"} · judge ${esc(r.judge)}</span></h3>` +
      (r.notices.length || tn ? `<ul class="notices">${r.notices.map((n) => `<li>${esc(n)}</li>`).join("")}${tn}</ul>` : "") +
      r.scores.tables.map((t) => tableHtml(t, i)).join("") + detailsHtml(r.scores.details) + provHtml(r.scores.provenance) + `</div>`;
  }).join("");

  // -- charts (Chart.js, colours from the CSS variables so both schemes read well) ---------------
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"];
  const css = (v) => getComputedStyle(document.documentElement).getPropertyValue(v).trim();
  function chart(id, labels, datasets, title, opts = {}) {
    if (typeof Chart === "undefined" || !$(id)) return;
    const fg = css("--fg"), line = css("--line");
    const c = new Chart($(id), {
      type: "bar", data: { labels, datasets },
      options: { animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { title: { display: true, text: title, color: fg }, legend: { labels: { color: fg }, display: datasets.length > 1 } },
        scales: { x: { ticks: { color: fg }, grid: { color: line } }, y: { ticks: { color: fg }, grid: { color: line }, ...opts.y } } },
    });
    charts.push(c);
  }
  function scoreCharts() {
    const tasks = [...new Set(D.runs.flatMap((r) => r.scores.details.map((d) => d.task)))];
    chart("chart-tasks", tasks.map(taskTitle), D.runs.map((r, i) => ({ label: r.name, backgroundColor: PALETTE[i % 8],
      data: tasks.map((t) => (r.scores.details.find((d) => d.task === t) || {}).score ?? null) })), "Score per task (0-100)", { y: { min: 0, max: 100 } });
    const dimOf = (r) => ((r.scores.tables.find((t) => t.dimensions) || {}).dimensions || {});
    const dims = [...new Set(D.runs.flatMap((r) => Object.keys(dimOf(r))))].sort();
    chart("chart-dims", dims.map(dimTitle), D.runs.map((r, i) => ({ label: r.name, backgroundColor: PALETTE[i % 8],
      data: dims.map((d) => (dimOf(r)[d] == null ? null : 100 * dimOf(r)[d])) })), "Pass rate per dimension, all tasks (%)", { y: { min: 0, max: 100 } });
  }

  // -- gallery -----------------------------------------------------------------------------------
  const imgHtml = (im, cls, caption) => im.th
    ? `<figure class="${cls}"><img loading="lazy" decoding="async" src="${esc(im.th)}" data-full="${esc(im.full || im.th)}" data-th="${esc(im.th)}" alt="${esc(caption)}"` +
      `${im.note ? ` title="${esc(im.note)}"` : ""}><figcaption>${esc(caption)}</figcaption>${im.note ? `<div class="note">${esc(im.note)}</div>` : ""}</figure>`
    : `<figure class="${cls}"><div class="missing">${esc(im.note || "no image")}</div><figcaption>${esc(caption)}</figcaption></figure>`;
  function refsHtml(shared) {
    if (!shared) return "";
    if (shared.refs_note) return `<div class="missing" title="${esc(shared.refs_note)}">no references</div>`;
    return (shared.refs || []).map((im) => imgHtml(im, "ref", im.label)).join("");
  }
  function gensHtml(card, label) {
    if (!card.imgs.length) return `<figure class="gen"><div class="missing">${esc(card.fail ? "no image: generation failed" : "no image")}</div><figcaption>${esc(label)}</figcaption></figure>`;
    return card.imgs.map((im) => imgHtml(im, "gen", `${label}${im.label ? " " + im.label : ""}`)).join("");
  }
  // Checkpoint lists are built when opened (or printed): every card is in the DOM from the start, but
  // ~15 list items per card and side would triple the page's elements and its opening time.
  const CARDS = D.runs.map((r) => { const m = {}; r.cards.forEach((c) => (m[c.k] = c)); return m; });
  function cpsItems(card, flips) {
    const cps = (D.tasks[card.t] || {}).cps || {};
    return card.v.map((v) => {
      const info = cps[v.id] || [];
      const flip = flips && flips.has(v.id);
      return `<li class="cp ${flip ? "flip" : ""}" data-cp="${esc(v.id)}" data-st="${esc(v.st)}"><span class="st st-${esc(v.st)}">${esc(v.st)}</span>` +
        `${v.val != null ? ` <b>${num(v.val)}</b>` : ""} <b>${esc(v.id)}</b>${info[0] ? ` <span class="tag">[${esc(info[0])}]</span>` : ""}` +
        `${info[2] ? ` <span class="hard">hard</span>` : ""}${v.sv ? ` <span class="salv">salvaged</span>` : ""}` +
        `${info[1] ? ` <span class="q">${esc(info[1])}</span>` : ""}${v.r ? `<div class="why">${esc(v.r)}</div>` : ""}${v.e ? `<div class="note">${esc(v.e)}</div>` : ""}</li>`;
    }).join("");
  }
  function cpsHtml(card, run, flips) {
    if (!card.v.length) return "";
    const counts = {};
    card.v.forEach((v) => (counts[v.st] = (counts[v.st] || 0) + 1));
    const summary = Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ");
    const bad = card.v.filter((v) => v.st !== "pass" && v.st !== "scored").map((v) => v.id);
    return `<details class="cpl" data-run="${run}" data-k="${esc(card.k)}"${flips ? ` data-flips="${esc([...flips].join(" "))}"` : ""}>` +
      `<summary>Checkpoints: ${esc(summary)}${bad.length ? ` <span class="tag">(not passed: ${esc(bad.join(", "))})</span>` : ""}</summary></details>`;
  }
  function fillCps(det) {
    if (det.dataset.filled) return;
    const card = CARDS[Number(det.dataset.run)][det.dataset.k];
    const flips = det.dataset.flips ? new Set(det.dataset.flips.split(" ")) : null;
    det.insertAdjacentHTML("beforeend", `<ul class="cps">${cpsItems(card, flips)}</ul>`);
    det.dataset.filled = "1";
  }
  document.addEventListener("toggle", (ev) => { if (ev.target.matches && ev.target.matches("details.cpl") && ev.target.open) fillCps(ev.target); }, true);
  function extrasHtml(card) {
    let h = "";
    if (card.fail) h += `<p class="fail-reason">${esc(card.fail)}</p>`;
    h += card.notes.map((n) => `<p class="note">${esc(n)}</p>`).join("");
    if (card.caps && card.caps.length) h += `<p class="hard">Hard cap: ${card.caps.map((c) => `${esc(c.id)} failed, ${esc(c.caps)} capped at 0.4`).join("; ")}</p>`;
    if (card.ans) h += `<p>Story answer-set score: <b>${card.ans.status === "error" ? "unreadable (error)" : num(card.ans.score, 1) + " / 10"}</b>${card.ans.reason ? ` <span class="why">${esc(card.ans.reason)}</span>` : ""}</p>`;
    if (card.why) h += `<p class="why">Judge: ${esc(card.why)}</p>`;
    if (card.flags) h += `<p class="tag">flags: ${esc(JSON.stringify(card.flags))}</p>`;
    if (card.maps) h += card.maps.unavailable ? `<p class="tag">DAR maps unavailable: ${esc(card.maps.unavailable)}</p>`
      : `<div class="imgs">${card.maps.maps.map((m) => imgHtml(m, "ref", `DAR ${m.label}${m.grid ? ` (${m.grid.join("×")})` : ""}`)).join("")}</div>`;
    return h;
  }
  function cardHtml(card, run) {
    const sh = D.cases[card.k] || {};
    const bad = card.fail ? "failed" : card.ne > 0 || card.clean === false ? "errors" : card.s == null ? "unscored" : "clean";
    return `<article class="card" data-run="${run}" data-task="${esc(card.t)}" data-id="${esc(card.id)}" data-score="${card.s ?? ""}" data-fd=" ${esc(card.fd.join(" "))} " data-status="${bad}">` +
      `<header><span class="cid">${esc(card.id)}</span><span class="tag">${esc(taskTitle(card.t))}</span><span class="tag">${esc(D.runs[run].name)}</span><span class="score">${num(card.s, 1)}</span></header>` +
      `<div class="imgs"><div class="refs">${refsHtml(sh)}</div><span class="arrow">→</span><div class="gens">${gensHtml(card, "generated")}</div></div>` +
      (sh.refs_note ? `<p class="note">${esc(sh.refs_note)}</p>` : "") +
      `<p class="prompt">${esc(sh.prompt || "")}</p>${sh.goal ? `<p class="tag">Goal: ${esc(sh.goal)}</p>` : ""}` +
      extrasHtml(card) + cpsHtml(card, run) + `</article>`;
  }
  const cardsEl = $("cards");
  cardsEl.innerHTML = D.runs.map((r, i) => r.cards.map((c) => cardHtml(c, i)).join("")).join("");
  const allCards = Array.from(cardsEl.children);
  mark("gallery");
  const opts = (el, items) => (el.innerHTML += items.map(([v, t]) => `<option value="${esc(v)}">${esc(t)}</option>`).join(""));
  opts($("f-run"), D.runs.length > 1 ? [["", "all runs"], ...D.runs.map((r, i) => [String(i), r.name])] : [["", D.runs[0].name]]);
  opts($("f-task"), Object.keys(D.tasks).map((t) => [t, taskTitle(t)]));
  opts($("f-dim"), [...new Set(Object.values(D.tasks).flatMap((t) => t.dims || []))].sort().map((d) => [d, dimTitle(d)]));
  function applyFilters() {
    const run = $("f-run").value, task = $("f-task").value, dim = $("f-dim").value, st = $("f-status").value;
    const lo = $("f-min").value === "" ? -Infinity : Number($("f-min").value), hi = $("f-max").value === "" ? Infinity : Number($("f-max").value);
    const q = $("f-search").value.trim().toLowerCase();
    let shown = 0;
    for (const el of allCards) {
      const d = el.dataset, s = d.score === "" ? null : Number(d.score);
      const ok = (!run || d.run === run) && (!task || d.task === task) && (!dim || d.fd.includes(` ${dim} `)) &&
        (!st || (st === "bad" ? d.status !== "clean" : d.status === st)) &&
        ((lo === -Infinity && hi === Infinity) || (s !== null && s >= lo && s <= hi)) && (!q || d.id.toLowerCase().includes(q));
      el.hidden = !ok;
      if (ok) shown++;
    }
    $("f-count").textContent = `${shown} of ${allCards.length} cards shown`;
  }
  for (const id of ["f-run", "f-task", "f-dim", "f-status", "f-min", "f-max", "f-search"]) $(id).addEventListener("input", applyFilters);

  // -- run against run ---------------------------------------------------------------------------
  let cmpCharts = [];
  function compareView() {
    const c = D.compare[Number($("c-pair").value || 0)];
    if (!c) return;
    const A = D.runs[c.a], B = D.runs[c.b];
    const sign = (x) => (x == null ? "" : x > 0 ? "pos" : x < 0 ? "neg" : "");
    const dl = (x, d = 2) => (x == null ? "-" : (x > 0 ? "+" : "") + x.toFixed(d));
    const diff = c.same_cases ? `Both runs hold the same ${c.n_common} cases.`
      : `Compared on the ${c.n_common} cases both runs hold; ${c.only_a.length} only in ${esc(A.name)}${c.only_a.length ? ` (e.g. ${esc(c.only_a.slice(0, 3).join(", "))})` : ""}, ` +
        `${c.only_b.length} only in ${esc(B.name)}${c.only_b.length ? ` (e.g. ${esc(c.only_b.slice(0, 3).join(", "))})` : ""}. Means below are over the common cases.`;
    const trow = (name, v) => `<tr><td>${esc(name)}</td><td>${v.n}</td><td>${num(v.a)}</td><td>${num(v.b)}</td><td class="delta ${sign(v.delta)}" data-value="${esc(v.delta)}">${dl(v.delta)}</td></tr>`;
    $("compare-summary").innerHTML = `<p id="compare-cases">${diff}</p><p>${esc(B.name)} against ${esc(A.name)}: ${c.n_improved} cases better, ${c.n_worse} worse, ${c.n_flipped} checkpoint verdicts flipped.</p>` +
      `<table id="compare-tasks"><tr><th>Task</th><th>Cases</th><th>${esc(A.name)}</th><th>${esc(B.name)}</th><th>Δ</th></tr>${Object.entries(c.tasks).map(([t, v]) => trow(taskTitle(t), v)).join("")}${trow("All (case-weighted)", c.overall)}</table>` +
      `<table id="compare-dims"><tr><th>Dimension</th><th>Cases</th><th>${esc(A.name)}</th><th>${esc(B.name)}</th><th>Δ</th></tr>${Object.entries(c.dims).map(([d, v]) => trow(dimTitle(d), { ...v, a: v.a * 100, b: v.b * 100, delta: v.delta * 100 })).join("")}</table>`;
    cmpCharts.forEach((ch) => ch.destroy());
    const before = charts.length;
    const col = (vals) => vals.map((v) => (v >= 0 ? css("--gain") : css("--loss")));
    const tv = Object.values(c.tasks).map((v) => v.delta), dv = Object.values(c.dims).map((v) => v.delta * 100);
    chart("chart-dtasks", Object.keys(c.tasks).map(taskTitle), [{ label: "Δ score", data: tv, backgroundColor: col(tv) }], `Score change per task (${B.name} − ${A.name})`);
    chart("chart-ddims", Object.keys(c.dims).map(dimTitle), [{ label: "Δ pass rate", data: dv, backgroundColor: col(dv) }], "Pass-rate change per dimension (points)");
    cmpCharts = charts.splice(before);
    renderRows(c, A, B);
  }
  // The run-against-run list sits below every gallery card: its first rows are built at once, the rest
  // in the background right after (a new order or comparison restarts it). body[data-compare-done] says when.
  const CHUNK = 150;
  let rowsToken = 0;
  function renderRows(c, A, B) {
    const order = $("c-order").value, onlyFlip = $("c-flipped").checked;
    const key = { gain: (r) => -(r.delta ?? -Infinity), loss: (r) => r.delta ?? Infinity, abs: (r) => -Math.abs(r.delta ?? 0) }[order];
    const rows = (order === "gain" ? c.rows : [...c.rows].sort((x, y) => key(x) - key(y))).filter((r) => !onlyFlip || r.flips.length);
    const ca = CARDS[c.a], cb = CARDS[c.b];
    const sign = (x) => (x == null ? "" : x > 0 ? "pos" : x < 0 ? "neg" : "");
    const rowHtml = (r) => {
      const flips = new Set(r.flips.map((f) => f[0]));
      const side = (run, ri, card) => `<div class="side"><h4>${esc(run.name)}: ${num(card.s, 1)}</h4><div class="imgs">${gensHtml(card, run.name)}</div>${card.fail ? `<p class="fail-reason">${esc(card.fail)}</p>` : ""}` +
        `${card.ans ? `<p class="tag">answer-set score: ${card.ans.status === "error" ? "unreadable" : num(card.ans.score, 1) + " / 10"}</p>` : ""}${cpsHtml(card, ri, flips)}</div>`;
      return `<article class="cmp" data-k="${esc(r.k)}" data-delta="${r.delta ?? ""}"><header><span class="cid">${esc(r.id)}</span><span class="tag">${esc(taskTitle(r.t))}</span>` +
        `<span class="score delta ${sign(r.delta)}">${r.delta == null ? "-" : (r.delta > 0 ? "+" : "") + r.delta.toFixed(1)}</span></header>` +
        `<div class="imgs">${refsHtml(D.cases[r.k])}</div>` +
        (r.flips.length ? `<p class="flip">Flipped: ${r.flips.map((f) => `${esc(f[0])} ${esc(f[1] ?? "none")} → ${esc(f[2] ?? "none")}`).join("; ")}</p>` : "") +
        `<div class="pair">${side(A, c.a, ca[r.k])}${side(B, c.b, cb[r.k])}</div></article>`;
    };
    const token = ++rowsToken, list = $("compare-list");
    delete document.body.dataset.compareDone;
    list.innerHTML = rows.slice(0, CHUNK).map(rowHtml).join("");
    let i = CHUNK;
    const more = () => {
      if (token !== rowsToken) return;
      if (i < rows.length) {
        list.insertAdjacentHTML("beforeend", rows.slice(i, i + CHUNK).map(rowHtml).join(""));
        i += CHUNK;
        setTimeout(more);
      } else document.body.dataset.compareDone = String(rows.length);
    };
    more();
  }
  if (D.compare.length) {
    $("compare").hidden = false;
    $("nav-compare").hidden = false;
    opts($("c-pair"), D.compare.map((c, i) => [String(i), `${D.runs[c.b].name} against ${D.runs[c.a].name}`]));
    for (const id of ["c-pair", "c-order", "c-flipped"]) $(id).addEventListener("input", compareView);
  }

  // -- full-size viewer --------------------------------------------------------------------------
  document.addEventListener("click", (ev) => {
    const img = ev.target.closest("img[data-full]");
    if (!img) return;
    const v = $("viewer-img");
    v.onerror = () => { v.onerror = null; v.src = img.dataset.th; $("viewer-caption").textContent += " (original not found; thumbnail shown)"; };
    v.src = img.dataset.full;
    const card = img.closest("[data-id],[data-k]");
    $("viewer-caption").textContent = `${card ? card.dataset.id || card.dataset.k : ""} · ${img.alt}`;
    $("viewer").showModal();
  });

  // -- print: open the checkpoint lists of shown cards, size charts for paper --------------------
  let opened = [];
  window.addEventListener("beforeprint", () => {
    opened = Array.from(document.querySelectorAll(".card:not([hidden]) details.cpl:not([open]), .cmp:not([hidden]) details.cpl:not([open])"));
    opened.forEach((d) => { fillCps(d); d.open = true; });
    charts.concat(cmpCharts).forEach((c) => c.resize());
  });
  window.addEventListener("afterprint", () => { opened.forEach((d) => (d.open = false)); charts.concat(cmpCharts).forEach((c) => c.resize()); });
  const redraw = () => { charts.concat(cmpCharts).forEach((c) => c.destroy()); charts.length = 0; cmpCharts = []; scoreCharts(); if (D.compare.length) compareView(); };
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redraw);

  scoreCharts();
  mark("charts");
  if (D.compare.length) compareView();
  mark("compare");
  applyFilters();
  document.body.dataset.ready = "1";
  // the first frame painted after every card was added (what the scale benchmark times)
  requestAnimationFrame(() => setTimeout(() => (document.body.dataset.painted = performance.now().toFixed(0))));
})();
