// The traversal panel: a grid of seeds x values of one code (the paper's figure 2), the
// animation that sweeps that code in the main picture, and the GIF of the sweep.

import * as api from "./api.js";
import { LIMIT, categoryLabel, codeName, sweepBody, sweepValues } from "./state.js";

const GRID_DELAY_MS = 250; // the grid waits for a drag to pause: it costs rows x columns images
const GRID_STEPS = 9; // -2..2 in 0.5
const GRID_SCALE = 2;
const GIF_STEPS = 33; // -2..2 in 0.125
const GIF_SCALE = 8;
const FRAME_MS = 90; // the animation's pace; slower when the service is
const PLAY_STEPS = 17; // -2..2 in 0.25

export class Traversal {
  #state = null;
  #info = null; // the /api/checkpoints entry of the state's checkpoint
  #timer = 0;
  #key = null; // the request body of the grid shown or on its way
  #controller = null;
  #url = null; // the object URL of the grid shown
  #playing = null; // the interval timer while playing

  /** `limits`: GET /api/limits. `onFrame(kind, index, value)`: the animation moved a code.
   * `onUnavailable()`: a request failed because the service is away. */
  constructor(view, limits, { onFrame, onUnavailable }) {
    this.view = view;
    this.limits = limits;
    this.onFrame = onFrame;
    this.onUnavailable = onUnavailable;
    // The page's choices, within what the service allows.
    this.gridSteps = Math.min(GRID_STEPS, limits.max_grid);
    this.gridScale = Math.min(GRID_SCALE, limits.max_scale);
    this.gifSteps = Math.min(GIF_STEPS, limits.max_frames);
    this.gifScale = Math.min(GIF_SCALE, limits.max_scale);
  }

  /** Follows a new state: the grid is fetched again once the changes pause. */
  update(state, info) {
    if (info !== this.#info) this.#key = null; // another checkpoint: always a new grid
    this.#state = state;
    this.#info = info;
    this.#markColumn();
    this.#schedule();
  }

  /** The grid's column that the main picture shows, marked (Play moves it along). */
  #markColumn() {
    const { kind, index } = this.#state.vary;
    this.view.markColumn(this.#state[kind][index]);
  }

  /** Asks again for the grid, after it failed. */
  retry() {
    this.#key = null;
    this.#schedule();
  }

  togglePlay() {
    if (this.#playing) this.stop();
    else this.#play();
  }

  stop() {
    if (!this.#playing) return;
    clearInterval(this.#playing);
    this.#playing = null;
    this.view.setPlaying(false);
    this.#schedule();
  }

  async downloadGif() {
    const state = this.#state;
    const info = this.#info;
    this.view.setBusy("gif", true);
    try {
      const { seeds } = this.#gridBody(state, info); // the grid's rows, side by side in each frame
      const side = seeds.length * (info.image.width + this.limits.grid_pad) + this.limits.grid_pad;
      const scale = Math.max(1, Math.min(this.gifScale, Math.floor(this.limits.max_side / side)));
      const bounce = state.vary.kind === "continuous"; // -2..2 and back; categories loop 0..9
      const body = { ...sweepBody(state, info), seeds, scale, duration_ms: 80, bounce };
      const blob = await api.gif(state.vary.kind === "continuous" ? { ...body, steps: this.gifSteps } : body);
      download(blob, `${fileStem(state, info, seeds)}.gif`);
      this.view.setMessage("gif", null);
    } catch (error) {
      this.view.setMessage("gif", `GIF: ${error.message}`);
    } finally {
      this.view.setBusy("gif", false);
    }
  }

  // ---- the animation ----

  #play() {
    const state = this.#state;
    const values = sweepValues(state, this.#info, PLAY_STEPS);
    // There and back again, without repeating the ends, so the loop has no jump.
    const loop = state.vary.kind === "continuous" ? [...values, ...values.slice(1, -1).reverse()] : values;
    const { kind, index } = state.vary;
    let frame = Math.max(0, loop.indexOf(state[kind][index]));
    this.#playing = setInterval(() => {
      frame = (frame + 1) % loop.length;
      this.onFrame(kind, index, loop[frame]);
    }, FRAME_MS);
    this.view.setPlaying(true);
  }

  // ---- the grid ----

  #schedule() {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#updateGrid(), this.#playing ? GRID_DELAY_MS * 4 : GRID_DELAY_MS);
  }

  #gridBody(state, info) {
    const seeds = [...Array(state.rows).keys()].map((r) => Math.min(state.seed + r, this.limits.max_seed));
    const body = { ...sweepBody(state, info), seeds, scale: this.gridScale };
    return state.vary.kind === "continuous" ? { ...body, steps: this.gridSteps } : body;
  }

  async #updateGrid() {
    if (this.#playing) return; // the animation has the service's attention; the grid waits for the pause
    const state = this.#state;
    const info = this.#info;
    if (!info.latent[state.vary.kind].length) return; // a spec without codes has nothing to sweep
    const body = this.#gridBody(state, info);
    const key = JSON.stringify(body);
    if (key === this.#key) return;
    this.#key = key;
    this.#controller?.abort();
    this.#controller = new AbortController();
    this.view.setGridState("loading");
    try {
      const blob = await api.grid(body, this.#controller.signal);
      const url = URL.createObjectURL(blob);
      this.view.showGrid(url, {
        columns: sweepValues(state, info, this.gridSteps).map((value) => column(state, info, value)),
        seeds: body.seeds,
        name: sweepName(state, info),
        cell: info.image.width,
        pad: this.limits.grid_pad,
        file: `${fileStem(state, info, body.seeds)}.png`,
      });
      this.#markColumn();
      if (this.#url) URL.revokeObjectURL(this.#url);
      this.#url = url;
      this.view.setGridState("ready");
      this.view.setMessage("grid", null);
    } catch (error) {
      if (api.isAbort(error)) return;
      this.#key = null; // try again on the next change
      this.view.setGridState("error");
      this.view.setMessage("grid", `Traversal grid: ${error.message}`);
      if (api.isUnavailable(error)) this.onUnavailable();
    }
  }
}

/** A grid column's heading; `out` marks a value beyond the code's training range. */
function column(state, info, value) {
  const { kind, index } = state.vary;
  if (kind === "categorical") return { value, label: categoryLabel(info, index, value), out: false };
  const [low, high] = info.latent.continuous[index].train_range;
  return { value, label: String(value), out: value < low || value > high };
}

/** Download names say what is in them: `infogan-mnist-c1-seeds3-7`. */
function fileStem(state, info, seeds) {
  const code = codeName(info, state.vary.kind, state.vary.index);
  const range = seeds.length === 1 ? `seed${seeds[0]}` : `seeds${seeds[0]}-${seeds.at(-1)}`;
  return `infogan-${state.checkpoint}-${code}-${range}`.replace(/[^\w.-]+/g, "_");
}

function sweepName(state, info) {
  const name = codeName(info, state.vary.kind, state.vary.index);
  return state.vary.kind === "continuous" ? `${name} from -${LIMIT} to ${LIMIT}` : `every category of ${name}`;
}

function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000); // the download reads it after the click
}
