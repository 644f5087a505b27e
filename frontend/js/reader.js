// Reading a drawing or an image: the pad's strokes, and images dropped on it or chosen, go to
// `POST /encode`, and Q's estimate of their codes comes back at once; then the same image with
// `fit=true`, whose noise and codes G redraws it with.

import * as api from "./api.js";
import { DrawingPad } from "./draw.js";

const ENCODE_DELAY_MS = 200; // a pause after a stroke before the drawing is read

export class Reader {
  #timer = 0;
  #controller = null;

  /** `checkpoint()` names the checkpoint to ask and `seed()` the noise a fit is compared with;
   * `onEstimate(estimate)` gets Q's answer and `onFit(fit, checkpoint)` the fit, unless the
   * checkpoint changed while they were on their way; `onError(error)` gets what went wrong. */
  constructor(canvas, { checkpoint, seed, onEstimate, onFit, onError }) {
    Object.assign(this, { checkpoint, seed, onEstimate, onFit, onError });
    this.pad = new DrawingPad(canvas, {
      onStroke: () => {
        clearTimeout(this.#timer);
        this.#timer = setTimeout(() => this.#readDrawing(), ENCODE_DELAY_MS);
      },
      onDrop: (file) => this.readFile(file),
    });
  }

  clear() {
    this.pad.clear();
  }

  /** Shows an image on the pad and reads it. */
  async readFile(file) {
    try {
      await this.pad.showImage(file);
    } catch {
      // Not an image the browser can show; the service says whether it can read it.
    }
    await this.#read(file);
  }

  async #readDrawing() {
    if (this.pad.blank) return;
    await this.#read(await this.pad.toBlob());
  }

  async #read(blob) {
    this.#controller?.abort();
    this.#controller = new AbortController();
    const checkpoint = this.checkpoint();
    const { signal } = this.#controller;
    try {
      const estimate = await api.encode(blob, checkpoint, signal);
      if (checkpoint !== this.checkpoint()) return;
      this.onEstimate(estimate);
      const { fit } = await api.encode(blob, checkpoint, signal, { fit: true, seed: this.seed() });
      if (checkpoint === this.checkpoint()) await this.onFit(fit, checkpoint);
    } catch (error) {
      if (!api.isAbort(error)) this.onError(error);
    }
  }
}
