// Wiring: checkpoints from the service, the state and its history entries, the view's requests,
// the live image feed, the traversal grid and the drawing pad.

import * as api from "./api.js";
import { DrawingPad } from "./draw.js";
import {
  LIMIT,
  MAX_SEED,
  defaults,
  codeName,
  categoryLabel,
  fromQuery,
  generateQuery,
  snap,
  sweepBody,
  sweepValues,
  toQuery,
} from "./state.js";
import { View } from "./view.js";

const GRID_DELAY_MS = 250; // the grid waits for a drag to pause: it costs rows x columns images
const GRID_STEPS = 9; // -2..2 in 0.5
const GRID_SCALE = 2;
const GIF_STEPS = 33; // -2..2 in 0.125
const FRAME_MS = 90; // the animation's pace; slower when the service is
const PLAY_STEPS = 17; // -2..2 in 0.25
const ENCODE_DELAY_MS = 200; // a pause after a stroke before the drawing is read

let checkpoints = [];
let info = null; // the /api/checkpoints entry of state.checkpoint
let state = null;
let gesture = false; // a drag (or typing) is under way: its steps share one history entry

const view = new View({
  onCheckpoint(name) {
    const next = checkpoints.find((c) => c.name === name);
    stopPlaying();
    commit(defaults(next, state), { history: "push", now: true });
  },
  onCategory(i, c) {
    stopPlaying();
    commit(withList(state, "categorical", i, c), { history: "push", now: true });
  },
  onContinuous(i, value, final) {
    stopPlaying();
    commit(withList(state, "continuous", i, value), { history: stepOf(final) });
  },
  onSeed(seed, final) {
    if (state.lock) return;
    commit({ ...state, seed }, { history: stepOf(final) });
  },
  onRandomSeed() {
    if (!state.lock) commit({ ...state, seed: randomSeed() }, { history: "push", now: true });
  },
  onLock(lock) {
    commit({ ...state, lock }, { history: "push" });
  },
  onSurprise() {
    stopPlaying();
    const { categorical, continuous } = info.latent;
    commit(
      {
        ...state,
        seed: state.lock ? state.seed : randomSeed(),
        categorical: categorical.map((code) => Math.floor(Math.random() * code.categories)),
        continuous: continuous.map((code) => snap(drawFrom(code))),
      },
      { history: "push", now: true },
    );
  },
  onVary(vary) {
    stopPlaying();
    commit({ ...state, vary }, { history: "push" });
  },
  onRows(rows) {
    commit({ ...state, rows }, { history: "push" });
  },
  onPlay() {
    if (playing) stopPlaying();
    else startPlaying();
  },
  onGif: downloadGif,
  onClear() {
    pad.clear();
    view.clearEncoded();
    view.setMessage("encode", null);
  },
  async onUpload(file) {
    await showAndEncode(file);
  },
});

const feed = new api.ImageFeed({
  show: (url, details) => view.showImage(url, details),
  onState: (s) => view.setImageState(s),
  onError: (error) => view.setMessage("image", `Image: ${error.message}`),
  onSuccess: () => view.setMessage("image", null),
});

const pad = new DrawingPad(document.getElementById("pad"), {
  onStroke: () => {
    clearTimeout(encodeTimer);
    encodeTimer = setTimeout(encodeDrawing, ENCODE_DELAY_MS);
  },
  onDrop: (file) => showAndEncode(file),
});

// ---- state changes ----

/** Makes `next` the state: controls, URL, image and grid follow. `history` is "push" (a new
 * back-button step), "replace" (the same step, e.g. during a drag) or "none" (back/forward). */
function commit(next, { history: how = "push", now = false } = {}) {
  if (next.checkpoint !== state?.checkpoint) {
    info = checkpoints.find((c) => c.name === next.checkpoint);
    view.build(info);
    gridKey = null;
  }
  state = next;
  view.render(state);
  writeUrl(how);
  feed.want(generateQuery(state), { now });
  scheduleGrid();
}

/** The history step of a slider or field event: the first input of a drag pushes an entry,
 * the steps in between replace it now and then, the final change replaces it at once. */
function stepOf(final) {
  const how = final ? "replace" : gesture ? "replace-later" : "push";
  gesture = !final;
  return how;
}

// Browsers throttle (and warn about) more than a few history updates per second, and a drag
// fires 60 input events a second: steps in between update the URL at most every URL_MS.
const URL_MS = 250;
let urlTimer = 0;
let urlWritten = 0;
let urlPending = null; // a URL waiting for its turn

function writeUrl(how) {
  clearTimeout(urlTimer);
  const url = toQuery(state);
  if (how === "replace-later" && performance.now() - urlWritten < URL_MS) {
    urlPending = url;
    urlTimer = setTimeout(() => replaceUrl(urlPending), URL_MS);
    return;
  }
  if (how === "push") {
    if (urlPending) history.replaceState(null, "", urlPending); // the entry left behind keeps its last state
    if (url !== location.search) history.pushState(null, "", url);
    urlWritten = performance.now();
  } else if (how !== "none") {
    replaceUrl(url);
  }
  urlPending = null;
}

function replaceUrl(url) {
  history.replaceState(null, "", url);
  urlWritten = performance.now();
  urlPending = null;
}

function withList(s, key, i, value) {
  const list = [...s[key]];
  list[i] = value;
  return { ...s, [key]: list };
}

function randomSeed() {
  return Math.floor(Math.random() * Math.min(MAX_SEED, 1_000_000)); // short enough to read aloud
}

function drawFrom(code) {
  if (code.prior === "normal") {
    const u = 1 - Math.random(); // Box-Muller
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
  }
  const [low, high] = code.train_range;
  return low + Math.random() * (high - low);
}

window.addEventListener("popstate", () => {
  stopPlaying();
  gesture = false;
  const { state: next, problems } = fromQuery(location.search, checkpoints);
  showLinkProblems(problems);
  commit(next, { history: "none", now: true });
});

function showLinkProblems(problems) {
  view.setMessage("link", problems.length ? `This link was partly invalid: ${problems.join("; ")}.` : null, "warning");
}

// ---- traversal grid ----

let gridTimer = 0;
let gridKey = null;
let gridController = null;
let gridUrl = null;

function scheduleGrid() {
  clearTimeout(gridTimer);
  gridTimer = setTimeout(updateGrid, playing ? GRID_DELAY_MS * 4 : GRID_DELAY_MS);
}

function gridBody() {
  const seeds = [...Array(state.rows).keys()].map((r) => Math.min(state.seed + r, MAX_SEED));
  const body = { ...sweepBody(state, info), seeds, scale: GRID_SCALE };
  return state.vary.kind === "continuous" ? { ...body, steps: GRID_STEPS } : body;
}

async function updateGrid() {
  if (playing) return; // the animation has the service's attention; the grid waits for the pause
  if (!info.latent[state.vary.kind].length) return; // a spec without codes has nothing to sweep
  const body = gridBody();
  const key = JSON.stringify(body);
  if (key === gridKey) return;
  gridKey = key;
  gridController?.abort();
  gridController = new AbortController();
  view.setGridState("loading");
  const s = state;
  try {
    const blob = await api.grid(body, gridController.signal);
    const url = URL.createObjectURL(blob);
    view.showGrid(url, {
      columns: sweepValues(s, info, GRID_STEPS).map((value) => columnOf(s, value)),
      rows: s.rows,
      seed: s.seed,
      name: sweepName(s),
      cell: info.image.width,
      pad: 2,
    });
    if (gridUrl) URL.revokeObjectURL(gridUrl);
    gridUrl = url;
    view.setGridState("ready");
    view.setMessage("grid", null);
  } catch (error) {
    if (api.isAbort(error)) return;
    gridKey = null; // try again on the next change
    view.setGridState("error");
    view.setMessage("grid", `Traversal grid: ${error.message}`);
  }
}

function columnOf(s, value) {
  if (s.vary.kind === "categorical") return { label: categoryLabel(info, s.vary.index, value), out: false };
  const [low, high] = info.latent.continuous[s.vary.index].train_range;
  return { label: String(value), out: value < low || value > high };
}

function sweepName(s) {
  const name = codeName(info, s.vary.kind, s.vary.index);
  return s.vary.kind === "continuous" ? `${name} from -${LIMIT} to ${LIMIT}` : `every category of ${name}`;
}

async function downloadGif() {
  view.setBusy("gif", true);
  const s = state;
  try {
    const body = { ...sweepBody(s, info), seed: s.seed, scale: 8, duration_ms: 80 };
    const blob = await api.gif(s.vary.kind === "continuous" ? { ...body, steps: GIF_STEPS } : body);
    const url = URL.createObjectURL(blob);
    const link = Object.assign(document.createElement("a"), {
      href: url,
      download: `infogan-${s.checkpoint}-seed${s.seed}-${codeName(info, s.vary.kind, s.vary.index)}.gif`,
    });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000); // the download reads it after the click
    view.setMessage("gif", null);
  } catch (error) {
    view.setMessage("gif", `GIF: ${error.message}`);
  } finally {
    view.setBusy("gif", false);
  }
}

// ---- animation across the chosen code ----

let playing = null; // the interval timer while playing

function startPlaying() {
  const values = sweepValues(state, info, PLAY_STEPS);
  // There and back again, without repeating the ends, so the loop has no jump.
  const loop = state.vary.kind === "continuous" ? [...values, ...values.slice(1, -1).reverse()] : values;
  const key = state.vary.kind;
  const { index } = state.vary;
  let frame = Math.max(0, loop.indexOf(state[key][index]));
  playing = setInterval(() => {
    frame = (frame + 1) % loop.length;
    commit(withList(state, key, index, loop[frame]), { history: "replace-later" });
  }, FRAME_MS);
  view.setPlaying(true);
}

function stopPlaying() {
  if (!playing) return;
  clearInterval(playing);
  playing = null;
  view.setPlaying(false);
  scheduleGrid();
}

// ---- drawing and dropped images ----

let encodeTimer = 0;
let encodeController = null;

async function encodeDrawing() {
  if (pad.blank) return;
  await encodeBlob(await pad.toBlob());
}

async function showAndEncode(file) {
  try {
    await pad.showImage(file);
  } catch {
    // Not an image the browser can show; the service says whether it can read it.
  }
  await encodeBlob(file);
}

async function encodeBlob(blob) {
  encodeController?.abort();
  encodeController = new AbortController();
  const checkpoint = state.checkpoint;
  try {
    const estimate = await api.encode(blob, checkpoint, encodeController.signal);
    if (checkpoint !== state.checkpoint) return;
    stopPlaying();
    const next = {
      ...state,
      categorical: estimate.categorical.map((code) => code.argmax),
      continuous: estimate.continuous.map((code) => snap(code.mean)),
    };
    commit(next, { history: "push", now: true });
    view.showEncoded(generateQuery(next), estimate, info);
    view.setMessage("encode", null);
  } catch (error) {
    if (!api.isAbort(error)) view.setMessage("encode", `Reading the drawing: ${error.message}`);
  }
}

// ---- start ----

async function start() {
  try {
    checkpoints = await api.checkpoints();
  } catch (error) {
    view.setMessage("checkpoints", `Cannot list the checkpoints: ${error.message}`);
    view.setImageState("error");
    return;
  }
  if (!checkpoints.length) {
    view.setMessage("checkpoints", "The service has no checkpoint loaded; GET /healthz says why.");
    view.setImageState("error");
    return;
  }
  view.setCheckpoints(checkpoints);
  const { state: first, problems } = fromQuery(location.search, checkpoints);
  showLinkProblems(problems);
  commit(first, { history: "replace" });
}

start();
