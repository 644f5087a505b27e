// The state's URL in the browser's history: a click is one back-button step, and so is a whole
// drag, whose URL follows it at the pace browsers allow.

// Browsers throttle (and warn about) more than a few history updates per second, and a drag
// fires 60 input events a second: steps in between update the URL at most every URL_MS.
const URL_MS = 250;
// Key presses on one control this close together are one step: ten presses of an arrow key, one Back.
const NUDGE_MS = 1000;

export class UrlHistory {
  #timer = 0;
  #written = 0; // when the URL was last written
  #pending = null; // a URL waiting for its turn
  #gesture = false; // a drag (or typing) is under way: its steps share one history entry
  #nudged = null; // the control the last key press moved, and when
  #nudgedAt = 0;

  /** How a slider or field event writes history: the first input of a drag pushes an entry,
   * the steps in between replace it now and then, the final change replaces it at once. */
  stepOf(final) {
    const how = final ? "replace" : this.#gesture ? "replace-later" : "push";
    this.#gesture = !final;
    this.#nudged = null;
    return how;
  }

  /** How a key press on `control` writes history: the first of a run of presses pushes an entry,
   * presses within NUDGE_MS of the one before replace it. */
  nudge(control) {
    const now = performance.now();
    const grouped = control === this.#nudged && now - this.#nudgedAt < NUDGE_MS;
    this.#nudged = control;
    this.#nudgedAt = now;
    this.#gesture = false;
    return grouped ? "replace" : "push";
  }

  /** Back or forward was pressed: a drag under way is over. */
  endGesture() {
    this.#gesture = false;
    this.#nudged = null;
  }

  /** Writes `url` (a query string): `how` is "push" (a new back-button step), "replace" (the
   * same step), "replace-later" (the same step, throttled) or "none" (back/forward got here). */
  write(url, how) {
    clearTimeout(this.#timer);
    if (how === "replace-later" && performance.now() - this.#written < URL_MS) {
      this.#pending = url;
      this.#timer = setTimeout(() => this.#replace(url), URL_MS);
      return;
    }
    if (how === "push") {
      if (this.#pending) history.replaceState(null, "", this.#pending); // the entry left behind keeps its last state
      if (url !== location.search) history.pushState(null, "", url);
      this.#written = performance.now();
    } else if (how !== "none") {
      this.#replace(url);
    }
    this.#pending = null;
  }

  #replace(url) {
    history.replaceState(null, "", url);
    this.#written = performance.now();
    this.#pending = null;
  }
}
