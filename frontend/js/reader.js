// Reading a drawing or an image: the pad's strokes, and images dropped on it or chosen, go to
// `POST /encode`, and Q's estimate of their codes comes back.

import * as api from "./api.js";
import { DrawingPad } from "./draw.js";

const ENCODE_DELAY_MS = 200; // a pause after a stroke before the drawing is read

export class Reader {
  #timer = 0;
  #controller = null;

  /** `checkpoint()` names the checkpoint to ask; `onEstimate(estimate)` gets Q's answer, unless
   * the checkpoint changed while it was on its way; `onError(error)` gets what went wrong. */
  constructor(canvas, { checkpoint, onEstimate, onError }) {
    Object.assign(this, { checkpoint, onEstimate, onError });
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
    try {
      const estimate = await api.encode(blob, checkpoint, this.#controller.signal);
      if (checkpoint === this.checkpoint()) this.onEstimate(estimate);
    } catch (error) {
      if (!api.isAbort(error)) this.onError(error);
    }
  }
}
