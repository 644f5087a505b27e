// The drawing pad: white strokes on black, as MNIST's digits are, by mouse, pen or touch
// (pointer events), and images dropped on it or chosen with a file input.

const STROKE = 0.08; // of the pad's side: about MNIST's 2-3 pixel strokes in 28 after its 20/28 crop

export class DrawingPad {
  #last = null; // the previous point of the stroke being drawn
  #blank = true;

  constructor(canvas, { onStroke, onDrop }) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.onStroke = onStroke; // a stroke ended: the drawing is worth encoding
    this.onDrop = onDrop; // (file): an image was dropped on the pad
    this.clear();
    canvas.addEventListener("pointerdown", (event) => this.#down(event));
    canvas.addEventListener("pointermove", (event) => this.#move(event));
    canvas.addEventListener("pointerup", (event) => this.#up(event));
    canvas.addEventListener("pointercancel", (event) => this.#up(event));
    canvas.addEventListener("dragover", (event) => {
      event.preventDefault(); // allows the drop
      canvas.classList.add("dropping");
    });
    canvas.addEventListener("dragleave", () => canvas.classList.remove("dropping"));
    canvas.addEventListener("drop", (event) => {
      event.preventDefault();
      canvas.classList.remove("dropping");
      const file = event.dataTransfer?.files?.[0];
      if (file) this.onDrop(file);
    });
  }

  get blank() {
    return this.#blank;
  }

  clear() {
    const { width, height } = this.canvas;
    this.context.fillStyle = "#000";
    this.context.fillRect(0, 0, width, height);
    this.#blank = true;
  }

  /** Shows a dropped or chosen image on the pad, fitted inside it (a preview of what is encoded). */
  async showImage(blob) {
    const bitmap = await createImageBitmap(blob);
    const { width, height } = this.canvas;
    const factor = Math.min(width / bitmap.width, height / bitmap.height);
    const w = bitmap.width * factor;
    const h = bitmap.height * factor;
    this.clear();
    this.context.drawImage(bitmap, (width - w) / 2, (height - h) / 2, w, h);
    bitmap.close();
    this.#blank = false;
  }

  /** The drawing as a PNG blob, opaque black and white, as `POST /encode` reads it. */
  toBlob() {
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
  }

  #point(event) {
    const box = this.canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) * this.canvas.width) / box.width,
      y: ((event.clientY - box.top) * this.canvas.height) / box.height,
    };
  }

  #down(event) {
    if (event.button !== 0) return;
    event.preventDefault();
    this.canvas.setPointerCapture(event.pointerId);
    this.#last = this.#point(event);
    this.#line(this.#last, this.#last); // a tap draws a dot
  }

  #move(event) {
    if (!this.#last) return;
    // Coalesced events hold the points between two frames: smooth curves from fast strokes.
    for (const sample of event.getCoalescedEvents?.() ?? [event]) {
      const point = this.#point(sample);
      this.#line(this.#last, point);
      this.#last = point;
    }
  }

  #up(event) {
    if (!this.#last) return;
    this.#last = null;
    if (this.canvas.hasPointerCapture(event.pointerId)) this.canvas.releasePointerCapture(event.pointerId);
    this.onStroke();
  }

  #line(from, to) {
    const c = this.context;
    c.strokeStyle = "#fff";
    c.lineWidth = this.canvas.width * STROKE;
    c.lineCap = "round";
    c.lineJoin = "round";
    c.beginPath();
    c.moveTo(from.x, from.y);
    c.lineTo(to.x, to.y);
    c.stroke();
    this.#blank = false;
  }
}
