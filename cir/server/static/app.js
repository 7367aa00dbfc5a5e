// The cir page: a reference (uploaded, or any result), a modification text, parsed edits as chips, results as a grid,
// and a trail of references that refining builds (undo walks it back). Talks only to this server's API.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  key: sessionStorage.getItem("cir-api-key"),
  keyRequired: false,
  trail: [],        // steps, oldest first: {ref: {kind: "upload", file, url, name} | {kind: "item", id, path, name},
                    //   text, results, explanation} (a step keeps the results and explanation its last search gave)
  strategies: {},   // name -> its declaration from /info: description, needs_image, needs_text, params
  rerankers: {},    // name -> its declaration from /info: description, params
  results: [],
  explanation: null, // the explanation of the search the results came from
  defaultHelp: "",  // what "default" means for this store (from /info)
  parseTimer: null,
  parseSeq: 0,
};

// --- talking to the API -----------------------------------------------------------------------------------------
function headers() {
  return state.key ? { "X-API-Key": state.key } : {};
}

// What an error kind means on this page (the server's own messages speak to the CLI and the API: --image, item_id=).
const PAGE_ERRORS = {
  unauthorized: "This server needs an API key: enter it above.",
  unknown_item: "That image is no longer in the store (it was re-indexed): pick another result or upload an image.",
  image_unavailable: "That image's file is gone from the server's disk.",
  image_too_large: "That image is too large for this server: try a smaller one.",
  payload_too_large: "That file is too large for this server: try a smaller image.",
  unsupported_media_type: "That file is not an image this page can use: pick a JPEG, PNG, WebP, GIF, BMP or TIFF.",
  invalid_image: "That image could not be read: it may be empty, truncated or corrupt.",
  strategy_unavailable: "This store cannot run that strategy (it needs trained weights for the store's model): pick another.",
  store_unavailable: "The store is busy being updated: search again in a moment.",
  internal_error: "Something went wrong on the server (its log has the details).",
};

function pageMessage(kind, message) {
  if (kind === "invalid_query") {
    if (/reference image/i.test(message)) return "This strategy needs a reference image: drop, paste or pick one, or choose the text strategy.";
    if (/modification text/i.test(message)) return "This strategy needs a modification text: type one, or choose the image strategy.";
    if (/nothing to search for/i.test(message)) return "Nothing to search for yet: add a reference image and/or type a modification.";
  }
  if (kind === "invalid_request" && /parameter|must lie in|must be/i.test(message)) {
    return `A composition setting is out of range: ${message.replace(/--[\w-]+\s*\/?\s*|\b\w+=/g, "")}`;
  }
  if (PAGE_ERRORS[kind]) return PAGE_ERRORS[kind];
  return message.replace(/\s*\((?:--[\w-]+[^)]*)\)/g, "").replace(/--[\w-]+/g, "").trim(); // no CLI flags here
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  if (!response.ok) {
    let kind = "", message = `${response.status} ${response.statusText}`;
    try { const body = await response.json(); kind = body.error || ""; message = body.message || message; } catch (_) { /* not JSON */ }
    if (response.status === 401) askForKey();
    const error = new Error(pageMessage(kind, message));
    error.kind = kind;
    error.serverMessage = message; // kept for the console and the tooltip
    throw error;
  }
  return response;
}

// Thumbnails: a plain URL without a key; with a key, fetched with the header and shown from a blob URL.
async function thumbnailUrl(id, size = 256) {
  const url = `/items/${id}/thumbnail?size=${size}`;
  if (!state.keyRequired) return url;
  const response = await api(url);
  return URL.createObjectURL(await response.blob());
}

function setImage(img, id, size) {
  thumbnailUrl(id, size).then((url) => { img.src = url; }).catch(showError);
}

// The original file at full size (with a key: fetched with the header).
async function imageUrl(id) {
  const url = `/items/${id}/image`;
  if (!state.keyRequired) return url;
  return URL.createObjectURL(await (await api(url)).blob());
}

function fileName(path) { return path.split(/[\\/]/).pop(); }

// --- status and errors ------------------------------------------------------------------------------------------
function showError(error) {
  $("error").textContent = error.message || String(error);
  $("error").title = error.serverMessage || "";
  $("error").hidden = false;
  $("status").textContent = "";
  $("explanation").hidden = true; // an explanation of an earlier search would now be stale
  $("explanation").textContent = "";
}

function clearError() { $("error").hidden = true; }

function askForKey() {
  $("key-form").hidden = false;
  $("api-key").focus();
}

// --- the reference and the trail --------------------------------------------------------------------------------
function current() { return state.trail.length ? state.trail[state.trail.length - 1] : null; }

function startFromFile(file) {
  if (!file || !file.type.startsWith("image/")) { showError(new Error("that is not an image file")); return; }
  clearError();
  state.trail = [{ ref: { kind: "upload", file, url: URL.createObjectURL(file), name: file.name }, text: null,
                   results: [], explanation: null }];
  state.results = [];
  renderReference(); renderTrail(); renderResults(); renderExplanation(null);
  $("status").textContent = `reference: ${file.name}; type a modification and search`;
  $("text").focus();
}

function refineFrom(hit) {
  const text = $("text").value;
  state.trail.push({ ref: { kind: "item", id: hit.id, path: hit.path, name: fileName(hit.path) }, text,
                    results: state.results, explanation: state.explanation });
  renderReference(); renderTrail();
  $("status").textContent = `refining from ${fileName(hit.path)}; change the modification and search`;
  $("text").select();
  $("text").focus();
}

function undo() {
  if (state.trail.length < 2) return;
  const removed = state.trail.pop();
  if (removed.text !== null) $("text").value = removed.text;
  restoreStep(current());
  renderReference(); renderTrail(); schedulePreview();
  $("status").textContent = `undone: back to ${current().ref.name}, with the results it had`;
}

function jumpTo(index) {
  state.trail = state.trail.slice(0, index + 1);
  restoreStep(current());
  renderReference(); renderTrail();
  $("text").focus();
}

// The results and the explanation that belonged to a step (what its last search showed).
function restoreStep(step) {
  state.results = step.results || [];
  state.explanation = step.explanation || null;
  clearError();
  renderResults();
  renderExplanation(state.explanation);
}

function renderReference() {
  const step = current();
  const img = $("reference-img");
  if (!step) { img.hidden = true; return; }
  img.hidden = false;
  if (step.ref.kind === "upload") img.src = step.ref.url;
  else setImage(img, step.ref.id, 256);
  img.alt = `reference: ${step.ref.name}`;
  img.title = step.ref.path || step.ref.name;
}

function renderTrail() {
  const list = $("trail-list");
  list.replaceChildren();
  state.trail.forEach((step, index) => {
    const li = document.createElement("li");
    if (index === state.trail.length - 1) li.className = "current";
    const button = document.createElement("button");
    button.type = "button";
    const img = document.createElement("img");
    img.alt = "";
    if (step.ref.kind === "upload") img.src = step.ref.url; else setImage(img, step.ref.id, 96);
    const label = document.createElement("span");
    const name = step.ref.name;
    label.textContent = index === 0 ? `${name}` : `${name} ← “${step.text || ""}”`;
    button.append(img, label);
    button.setAttribute("aria-label", `step ${index + 1}: ${label.textContent}`);
    button.addEventListener("click", () => jumpTo(index));
    li.append(button);
    list.append(li);
  });
  $("undo").disabled = state.trail.length < 2;
}

// --- parsed edits (chips) -----------------------------------------------------------------------------------------
function schedulePreview() {
  clearTimeout(state.parseTimer);
  state.parseTimer = setTimeout(previewEdits, 150);
}

async function previewEdits() {
  const text = $("text").value.trim();
  const seq = ++state.parseSeq;
  const chips = $("chips");
  if (!text) { chips.replaceChildren(); return; }
  try {
    const edits = await (await api(`/parse?text=${encodeURIComponent(text)}`)).json();
    if (seq !== state.parseSeq) return; // a newer keystroke already asked
    chips.replaceChildren();
    for (const [kind, sign] of [["add", "+"], ["remove", "−"]]) {
      for (const name of edits[kind]) {
        const chip = document.createElement("span");
        chip.className = `chip ${kind}`;
        chip.dataset.kind = kind;
        chip.textContent = `${sign} ${name}`;
        chip.setAttribute("aria-label", `${kind} ${name}`);
        chips.append(chip);
      }
    }
    if (!chips.children.length) {
      const none = document.createElement("span");
      none.className = "muted";
      none.textContent = "no objects to add or remove recognised";
      chips.append(none);
    }
  } catch (error) { showError(error); }
}

// --- search -------------------------------------------------------------------------------------------------------
// The parameter controls come from /info: one input per declared parameter (its bounds, default and help), shown
// while its strategy is selected. Nothing here knows a strategy or a parameter by name.
function humanize(name) {
  const words = name.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function buildControls(strategies, boxId = "params", prefix = "param") {
  const box = $(boxId);
  box.replaceChildren();
  for (const strategy of strategies) {
    for (const p of strategy.params) {
      const label = document.createElement("label");
      label.className = "param";
      label.dataset.strategy = strategy.name;
      const input = document.createElement("input");
      input.id = `${prefix}-${strategy.name}-${p.name}`;
      input.dataset.param = p.name;
      input.dataset.type = p.type;
      if (p.type === "bool") {
        input.type = "checkbox";
        input.checked = Boolean(p.default);
      } else if (p.type === "str") {
        input.type = "text";
        input.value = p.default;
      } else {
        input.type = "number";
        input.step = p.type === "int" ? "1" : "any";
        input.value = String(p.default);
        if (p.min !== null) input.min = String(p.min);
        if (p.max !== null) input.max = String(p.max);
      }
      const range = p.min !== null || p.max !== null ? ` (${p.min ?? "−∞"} to ${p.max ?? "∞"}, default ${p.default})` : ` (default ${p.default})`;
      label.title = `${strategy.name}: ${p.help}${range}`;
      input.setAttribute("aria-label", `${humanize(p.name)}: ${p.help}`);
      label.append(`${humanize(p.name)} `, input);
      box.append(label);
    }
  }
}

function strategyControls() {
  const strategy = $("strategy").value;
  for (const label of document.querySelectorAll("#params label.param")) label.hidden = label.dataset.strategy !== strategy;
  const declared = state.strategies[strategy];
  $("strategy-help").textContent = declared ? `${strategy}: ${declared.description}` : `default: ${state.defaultHelp}`;
  for (const li of document.querySelectorAll("#strategy-lines li")) li.classList.toggle("current", li.dataset.strategy === strategy);
}

// One line per strategy (its declaration in /info), so the choice is explained before it is made.
function buildStrategyLines(strategies) {
  const list = $("strategy-lines");
  list.replaceChildren(...strategies.map((s) => {
    const li = document.createElement("li");
    li.dataset.strategy = s.name;
    const name = document.createElement("b");
    name.textContent = s.name;
    const needs = [s.needs_image ? "a reference image" : "", s.needs_text ? "a text" : ""].filter(Boolean).join(" and ");
    li.append(name, ` ${s.description}${needs ? ` (needs ${needs})` : ""}`);
    return li;
  }));
}

// The re-ranker control, like the strategy's: its choices and parameters come from /info's rerankers.
function rerankControls() {
  const name = $("rerank").value;
  for (const label of document.querySelectorAll("#rerank-params label.param")) label.hidden = label.dataset.strategy !== name;
  const declared = state.rerankers[name];
  $("rerank-help").textContent = declared ? `${name}: ${declared.description}` : "no re-ranking: the first stage's order";
}

function appendRerank(form) {
  const name = $("rerank").value;
  if (!name || name === "none") return;
  form.append("rerank", name);
  appendParams(form, name, "rerank-params");
}

function rerankLine(query) {
  const stage = query && query.stages && query.stages.rerank;
  if (!stage || stage.name === "none") return "";
  const fusion = stage.fusion ? `${stage.fusion.method}, weight ${stage.fusion.weight}` : "";
  return `re-ranked by ${stage.name} over the top ${stage.k}${fusion ? ` (${fusion})` : ""}; each result shows the fused score, then the first stage's and the re-ranker's on their fixed scales`;
}

function stageText(hit) {
  const s = hit.stage_scores;
  if (!s) return "";
  return `first stage ${s.first_stage_calibrated.toFixed(3)} (cosine ${s.first_stage.toFixed(3)}) · re-ranker ${s.rerank_calibrated.toFixed(3)}`;
}

function appendParams(form, strategy, boxId = "params") {
  for (const input of document.querySelectorAll(`#${boxId} label.param[data-strategy="${strategy}"] input`)) {
    if (input.dataset.type === "bool") form.append(input.dataset.param, input.checked ? "true" : "false");
    else if (input.value !== "") form.append(input.dataset.param, input.value); // empty: the strategy's default
  }
}

async function search(event) {
  if (event) event.preventDefault();
  clearError();
  const step = current();
  const strategy = $("strategy").value;
  const text = $("text").value.trim();
  const form = new FormData();
  if (step && step.ref.kind === "upload") form.append("image", step.ref.file, step.ref.name);
  else if (step) form.append("item_id", String(step.ref.id));
  if (text) form.append("text", text);
  if (strategy) form.append("strategy", strategy); // none: the store's default for what was given
  form.append("k", $("k").value || "12");
  const folder = $("folder").value.trim();
  if (folder) form.append("folder", folder); // only images under it (exact top-k among them)
  appendParams(form, strategy);
  appendRerank(form);
  $("status").textContent = "searching…";
  $("search-btn").disabled = true;
  try {
    const body = await (await api("/search", { method: "POST", body: form })).json();
    state.results = body.results;
    state.explanation = body.explanation;
    if (step) { step.results = body.results; step.explanation = body.explanation; }
    renderExplanation(body.explanation, body.query);
    renderResults();
    $("status").textContent = `${body.results.length} results`;
  } catch (error) {
    showError(error);
  } finally {
    $("search-btn").disabled = false;
  }
}

function renderExplanation(explanation, query) {
  const box = $("explanation");
  if (!explanation) { box.hidden = true; box.textContent = ""; return; }
  const weights = Object.entries(explanation.weights || {}).map(([k, v]) => `${k} ${v}`).join(", ");
  const parts = [`strategy ${explanation.strategy}`];
  if (weights) parts.push(`weights ${weights}`);
  if (explanation.add.length) parts.push(`add ${explanation.add.join(", ")}`);
  if (explanation.remove.length) parts.push(`remove ${explanation.remove.join(", ")}`);
  if (explanation.parser) parts.push(`read by ${explanation.parser}${explanation.edits_used ? "" : " (shown, not used by this strategy)"}`);
  if (explanation.default_strategy) parts.push(`chosen because ${explanation.default_strategy}`);
  box.textContent = parts.join(" · ");
  const reranked = rerankLine(query);
  if (reranked) {
    const line = document.createElement("p");
    line.className = "rerank";
    line.textContent = reranked;
    box.append(line);
  }
  for (const warning of explanation.warnings || []) {
    const line = document.createElement("p");
    line.className = "warning";
    line.textContent = `note: ${warning}`;
    box.append(line);
  }
  box.hidden = false;
}

function renderResults() {
  const grid = $("results");
  grid.replaceChildren();
  state.results.forEach((hit, rank) => {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "result";
    button.dataset.id = String(hit.id);
    const name = fileName(hit.path);
    button.setAttribute("aria-label", `result ${rank + 1}: ${name}, score ${hit.score.toFixed(3)}; refine from it`);
    const img = document.createElement("img");
    img.alt = "";
    img.loading = "lazy";
    setImage(img, hit.id, 256);
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = hit.score.toFixed(3);
    if (hit.stage_scores) {  // both stages' scores, beside the fused one
      const stages = document.createElement("span");
      stages.className = "stages";
      stages.textContent = stageText(hit);
      score.append(" ", stages);
    }
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = `#${rank + 1} ${name}`;
    label.title = hit.path;
    button.append(img, score, label);
    if (hit.caption) {  // a webdataset sample's caption (its .txt)
      const caption = document.createElement("span");
      caption.className = "caption";
      caption.textContent = hit.caption;
      caption.title = hit.caption;
      button.append(caption);
      button.setAttribute("aria-label", `result ${rank + 1}: ${name}, “${hit.caption}”, score ${hit.score.toFixed(3)}; refine from it`);
    }
    button.addEventListener("click", () => refineFrom(hit));
    button.addEventListener("keydown", (event) => moveInGrid(event, rank));
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.textContent = "⤢";
    open.title = "open at full size";
    open.setAttribute("aria-label", `open ${name} at full size`);
    open.addEventListener("click", () => openViewer(hit));
    li.append(button, open);
    grid.append(li);
  });
}

// --- the full-size view -------------------------------------------------------------------------------------------
async function openViewer(hit) {
  const dialog = $("viewer");
  $("viewer-path").textContent = hit.path;
  $("viewer-score").textContent = `score ${hit.score.toFixed(3)}${hit.stage_scores ? ` · ${stageText(hit)}` : ""}`;
  $("viewer-caption").textContent = hit.caption || "";
  $("viewer-caption").hidden = !hit.caption;
  $("viewer-metadata").textContent = hit.metadata ? JSON.stringify(hit.metadata, null, 2) : "";  // its .json
  $("viewer-metadata").hidden = !hit.metadata;
  const img = $("viewer-img");
  img.alt = fileName(hit.path);
  img.removeAttribute("src");
  $("viewer-refine").onclick = () => { dialog.close(); refineFrom(hit); };
  dialog.showModal();
  try { img.src = await imageUrl(hit.id); } catch (error) { dialog.close(); showError(error); }
}

function moveInGrid(event, rank) {
  const buttons = [...document.querySelectorAll("#results button.result")];
  if (!buttons.length) return;
  const columns = Math.max(1, Math.round($("results").clientWidth / buttons[0].getBoundingClientRect().width));
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns }[event.key];
  if (step === undefined) return;
  event.preventDefault();
  const next = buttons[Math.min(buttons.length - 1, Math.max(0, rank + step))];
  next.focus();
}

// --- wiring -------------------------------------------------------------------------------------------------------
async function loadInfo() {
  const health = await (await fetch("/health")).json();
  state.keyRequired = health.api_key_required;
  if (state.keyRequired && !state.key) { askForKey(); return; }
  const info = await (await api("/info")).json();
  state.strategies = Object.fromEntries(info.strategies.map((s) => [s.name, s]));
  state.defaultHelp = `${info.default_strategy} for an image and a text (${info.default_strategy_reason}); ` +
    "text for a text alone, image for an image alone";
  const select = $("strategy");
  const automatic = new Option(`default (${info.default_strategy})`, "", true, true);
  automatic.title = state.defaultHelp;
  select.replaceChildren(automatic, ...info.strategies.map((s) => {
    const option = new Option(s.name, s.name, false, false);
    option.title = s.description;
    return option;
  }));
  buildStrategyLines(info.strategies);
  buildControls(info.strategies);
  $("k").max = String(Math.min(200, info.limits.max_k));
  strategyControls();
  const rerankers = info.rerankers || [];
  state.rerankers = Object.fromEntries(rerankers.map((r) => [r.name, r]));
  $("rerank").replaceChildren(...rerankers.map((r) => {
    const option = new Option(r.name, r.name, r.name === "none", r.name === "none");
    option.title = r.description;
    return option;
  }));
  buildControls(rerankers, "rerank-params", "rerank-param");
  rerankControls();
  $("store-info").textContent = `${info.items} images · ${info.backbone}`;
}

function wire() {
  const zone = $("reference-zone");
  const input = $("file-input");
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
  });
  input.addEventListener("change", () => { if (input.files.length) startFromFile(input.files[0]); input.value = ""; });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files.length) startFromFile(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const file = [...(event.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (file) startFromFile(file);
  });
  $("search-form").addEventListener("submit", search);
  $("text").addEventListener("input", schedulePreview);
  $("strategy").addEventListener("change", strategyControls);
  $("rerank").addEventListener("change", rerankControls);
  $("undo").addEventListener("click", undo);
  $("viewer-close").addEventListener("click", () => $("viewer").close());
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("api-key").value;
    sessionStorage.setItem("cir-api-key", state.key);
    $("key-form").hidden = true;
    clearError();
    loadInfo().catch(showError);
  });
  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement?.tagName);
    if (event.key === "/" && !typing) { event.preventDefault(); $("text").focus(); }
    if (event.altKey && (event.key === "z" || event.key === "Z")) { event.preventDefault(); undo(); }
  });
  loadInfo().catch(showError);
}

document.addEventListener("DOMContentLoaded", wire);
