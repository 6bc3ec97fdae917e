// The examiner's page: one query image (dropped, pasted or chosen), an optional crop of it,
// the word element and filters → POST /v1/search → a grid of similar marks.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { image: null, crop: null, drag: null, keys: false, seq: 0, rerankChosen: false };

function apiKey() { return $("api-key").value.trim(); }
function headers() { return state.keys && apiKey() ? { "X-API-Key": apiKey() } : {}; }

async function loadStatus() {
  try {
    const r = await fetch("/readyz");
    const s = await r.json();
    state.keys = s.api_keys;
    $("key-box").hidden = !s.api_keys;
    $("index-info").textContent = s.ready
      ? `index ${s.index_version} · ${s.index_size.toLocaleString()} marks · ${s.backend} · ${s.runtime}`
      : `loading… ${s.error || ""}`;
    if (!s.ready) setTimeout(loadStatus, 1000);
  } catch (e) {
    $("index-info").textContent = "service unreachable";
    setTimeout(loadStatus, 2000);
  }
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

// -- the query image ---------------------------------------------------------------------
function setImage(file) {
  if (!file || !file.type.startsWith("image/")) { showError("That is not an image."); return; }
  const url = URL.createObjectURL(file);
  const img = new Image();
  img.onload = () => {
    state.image = img; state.crop = null;
    $("drop-hint").hidden = true; $("preview").hidden = false; $("crop-hint").hidden = false;
    $("search").disabled = false;
    draw(); search();
  };
  img.onerror = () => showError("The browser cannot read that image.");
  img.src = url;
}

function scale() {
  const c = $("preview");
  return Math.min(c.width / state.image.width, c.height / state.image.height);
}

function draw() {
  const c = $("preview"), ctx = c.getContext("2d"), img = state.image;
  const s = scale(), w = img.width * s, h = img.height * s;
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, c.width, c.height);
  ctx.drawImage(img, 0, 0, w, h);
  const box = state.drag || state.crop;
  if (box) {
    ctx.fillStyle = "rgba(29,34,48,.45)";
    ctx.fillRect(0, 0, w, h);
    ctx.drawImage(img, box.x / s, box.y / s, box.w / s, box.h / s, box.x, box.y, box.w, box.h);
    ctx.strokeStyle = "#2f6fed"; ctx.lineWidth = 2; ctx.strokeRect(box.x, box.y, box.w, box.h);
  }
  $("clear-crop").disabled = !state.crop;
}

function point(ev) {
  const c = $("preview"), r = c.getBoundingClientRect();
  return { x: (ev.clientX - r.left) * c.width / r.width, y: (ev.clientY - r.top) * c.height / r.height };
}

function box(a, b) {
  const s = scale(), maxX = state.image.width * s, maxY = state.image.height * s;
  const x0 = Math.max(0, Math.min(a.x, b.x)), y0 = Math.max(0, Math.min(a.y, b.y));
  const x1 = Math.min(maxX, Math.max(a.x, b.x)), y1 = Math.min(maxY, Math.max(a.y, b.y));
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

$("preview").addEventListener("pointerdown", (ev) => {
  if (!state.image) return;
  $("preview").setPointerCapture(ev.pointerId);
  state.start = point(ev); state.drag = null;
});
$("preview").addEventListener("pointermove", (ev) => {
  if (!state.start) return;
  state.drag = box(state.start, point(ev)); draw();
});
$("preview").addEventListener("pointerup", (ev) => {
  if (!state.start) return;
  const b = box(state.start, point(ev));
  state.start = null; state.drag = null;
  if (b.w >= 8 && b.h >= 8) { state.crop = b; search(); }
  draw();
});
$("clear-crop").addEventListener("click", () => { state.crop = null; draw(); search(); });

// the image to send: the whole upload, or the selected part at its full resolution
function queryBlob() {
  const img = state.image, s = scale(), b = state.crop;
  const sx = b ? b.x / s : 0, sy = b ? b.y / s : 0;
  const sw = b ? b.w / s : img.width, sh = b ? b.h / s : img.height;
  const c = document.createElement("canvas");
  c.width = Math.max(1, Math.round(sw)); c.height = Math.max(1, Math.round(sh));
  const ctx = c.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, c.width, c.height);
  ctx.drawImage(img, sx, sy, sw, sh, 0, 0, c.width, c.height);
  return new Promise((done) => c.toBlob(done, "image/png"));
}

const drop = $("drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault(); drop.classList.remove("over");
  setImage(ev.dataTransfer.files[0]);
});
$("file").addEventListener("change", (ev) => setImage(ev.target.files[0]));
document.addEventListener("paste", (ev) => {
  const item = [...(ev.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
  if (item) setImage(item.getAsFile());
});

// -- searching ---------------------------------------------------------------------------
async function search() {
  if (!state.image) return;
  const seq = ++state.seq;
  const form = new FormData();
  form.append("image", await queryBlob(), state.crop ? "crop.png" : "query.png");
  form.append("k", $("k").value);
  // until the user sets the box, the service decides (on when a word element is given)
  if (state.rerankChosen) form.append("rerank", $("rerank").checked ? "true" : "false");
  for (const [id, field] of [["text", "text"], ["vienna", "vienna"], ["year-min", "year_min"], ["year-max", "year_max"]]) {
    if ($(id).value.trim()) form.append(field, $(id).value.trim());
  }
  $("status").textContent = "searching…";
  try {
    const r = await fetch("/v1/search", { method: "POST", body: form, headers: headers() });
    const body = await r.json();
    if (seq !== state.seq) return;  // a newer search is under way
    if (!r.ok) {
      showError(`${body.reason}: ${typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)}`);
      $("status").textContent = "";
      return;
    }
    showError("");
    render(body);
  } catch (e) {
    showError(`the service did not answer (${e})`);
  }
}

const TERMS = [["global", "global"], ["spatial", "shape"], ["text", "word"], ["colour", "colour"]];

function fmt(v) { return v === null || v === undefined ? "–" : v.toFixed(3); }

async function thumbnail(img, url) {
  const r = await fetch(url, { headers: headers() });
  if (r.ok) img.src = URL.createObjectURL(await r.blob());
}

function render(body) {
  const list = $("results");
  list.replaceChildren();
  const rr = body.rerank || { on: false, terms_used: [], absent: {} };
  if (!state.rerankChosen) $("rerank").checked = rr.on;  // the box shows what ran
  $("status").textContent =
    `${body.results.length} marks · ${body.took_ms} ms · index ${body.index_version}` +
    (state.crop ? " · searching the selected part" : "") +
    (rr.on ? ` · re-ranked by ${rr.terms_used.join(" + ")}` : "");
  // why a term took no part (no feature-map output, no word element…): shown, not hidden
  const why = rr.on ? Object.entries(rr.absent).filter(([t, r]) => r !== "weight 0") : [];
  $("absent").hidden = !why.length;
  $("absent").textContent = why.map(([t, r]) => `${t}: ${r}`).join(" · ");
  for (const hit of body.results) {
    const li = document.createElement("li");
    li.className = "result";
    li.dataset.id = hit.id;
    const img = document.createElement("img");
    img.alt = hit.id;
    thumbnail(img, hit.thumbnail_url);
    const c = hit.components, m = hit.metadata;
    // the composite's terms, each as the hit carries it ("–" = absent for this hit)
    const parts = TERMS.filter(([key]) => rr.on || key === "global")
      .map(([key, label]) => `<span class="term" data-term="${key}">${label} ${fmt(c[key])}</span>`);
    li.innerHTML = `<span class="rank">#${hit.rank}</span>`;
    li.append(img);
    const info = document.createElement("div");
    info.innerHTML =
      `<div class="id"></div><div class="score">${fmt(hit.score)}</div>` +
      `<div class="parts">${parts.join("")}</div><div class="meta"></div>`;
    info.querySelector(".id").textContent = hit.id;
    info.querySelector(".meta").textContent =
      [(m.vienna_codes || []).join(", "), m.year || "", m.text || ""].filter(Boolean).join(" · ");
    li.append(info);
    li.addEventListener("click", () => openMark(hit));
    list.append(li);
  }
}

async function openMark(hit) {
  const r = await fetch(`/v1/marks/${hit.id.split("/").map(encodeURIComponent).join("/")}`, { headers: headers() });
  const mark = r.ok ? await r.json() : { id: hit.id, metadata: hit.metadata };
  $("modal-id").textContent = mark.id;
  $("modal-image").removeAttribute("src");
  thumbnail($("modal-image"), `${hit.thumbnail_url}?size=512`);
  const dl = $("modal-meta");
  dl.replaceChildren();
  // the terms under their page names, so the mark's own "text" (its word element) stays
  const rows = { score: fmt(hit.score), ...Object.fromEntries(
    TERMS.map(([k, label]) => [`${label} term`, fmt(hit.components[k])])), ...mark.metadata };
  for (const [k, v] of Object.entries(rows)) {
    if (v === null || v === undefined || v === "") continue;
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k; dd.textContent = Array.isArray(v) ? v.join(", ") : String(v);
    dl.append(dt, dd);
  }
  $("modal").showModal();
}

$("options").addEventListener("submit", (ev) => { ev.preventDefault(); search(); });
$("rerank").addEventListener("change", () => { state.rerankChosen = true; });
for (const id of ["k", "rerank", "text", "vienna", "year-min", "year-max"]) $(id).addEventListener("change", search);
$("api-key").value = localStorage.getItem("logosim-api-key") || "";
$("api-key").addEventListener("change", () => { localStorage.setItem("logosim-api-key", apiKey()); search(); });
loadStatus();
