// The compare card: the state drawn by a second checkpoint beside the first (as the paper's
// figure 2 sets a model trained with the information term beside one trained without), and a
// strip of pictures whose noise moves from the state's seed to another seed, the codes fixed.

import * as api from "./api.js";
import { interpolationEnd } from "./state.js";

const STRIP_STEPS = 9;
const STRIP_SCALE = 2;
const STRIP_DELAY_MS = 250; // like the grid, the strip waits for a drag to pause

export class Comparison {
  #timer = 0;
  #key = null; // the request body of the strip shown or on its way
  #controller = null;
  #url = null; // the object URL of the strip shown

  /** `onUnavailable()`: the strip failed because the service is away. */
  constructor(view, limits, { onUnavailable }) {
    Object.assign(this, { view, limits, onUnavailable });
    this.steps = Math.min(STRIP_STEPS, limits.max_grid);
  }

  /** Follows a new state: the pair at once (plain image URLs, cached), the strip after a pause. */
  update(state) {
    this.view.showComparison(state);
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#updateStrip(state), STRIP_DELAY_MS);
  }

  /** Asks again for the strip, after it failed. */
  retry(state) {
    this.#key = null;
    this.update(state);
  }

  async #updateStrip(state) {
    const seeds = [state.seed, interpolationEnd(state, this.limits)];
    const { checkpoint, categorical, continuous } = state;
    const body = { checkpoint, seeds, steps: this.steps, categorical, continuous, scale: STRIP_SCALE };
    const key = JSON.stringify(body);
    if (key === this.#key) return;
    this.#key = key;
    this.#controller?.abort();
    this.#controller = new AbortController();
    try {
      const url = URL.createObjectURL(await api.interpolation(body, this.#controller.signal));
      this.view.showInterpolation(url, { seeds, steps: this.steps });
      if (this.#url) URL.revokeObjectURL(this.#url);
      this.#url = url;
      this.view.setMessage("interpolation", null);
    } catch (error) {
      if (api.isAbort(error)) return;
      this.#key = null;
      this.view.setMessage("interpolation", `Interpolation: ${error.message}`);
      if (api.isUnavailable(error)) this.onUnavailable();
    }
  }
}
