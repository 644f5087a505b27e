// The REST API client (docs/design.md, "REST API") and the live image feed that slider drags drive.

/** An answer other than 2xx, or no answer at all (status 0); `message` is the service's own words. */
export class ApiError extends Error {
  constructor(status, message) {
    super(status ? `the service answered ${status}: ${message}` : message);
    this.status = status;
  }
}

export function isAbort(error) {
  return error?.name === "AbortError";
}

async function call(url, options = {}) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    if (isAbort(error)) throw error;
    throw new ApiError(0, "the service cannot be reached; is it running?");
  }
  if (!response.ok) throw new ApiError(response.status, await detail(response));
  return response;
}

/** FastAPI's `detail`: a string, or a list of {loc, msg} for invalid fields. */
async function detail(response) {
  let body;
  try {
    body = await response.json();
  } catch {
    return response.statusText || "no details";
  }
  if (typeof body?.detail === "string") return body.detail;
  if (Array.isArray(body?.detail)) return body.detail.map((item) => item.msg).join("; ");
  return JSON.stringify(body);
}

function post(body) {
  return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
}

export async function checkpoints() {
  return (await call("/api/checkpoints")).json();
}

/** Whether an error means the service is away (not running, restarting, busy or without a
 * model): worth waiting for, unlike a request it refused. */
export function isUnavailable(error) {
  return error instanceof ApiError && (error.status === 0 || error.status === 502 || error.status === 503);
}

/** Resolves once `GET /healthz` answers 200, asking every `everyMs` (first after `everyMs`: a
 * busy service answers 503 while healthy, and asks for a pause). */
export async function serviceBack(everyMs = 2000) {
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, everyMs));
    try {
      if ((await fetch("/healthz", { cache: "no-store" })).ok) return;
    } catch {
      // not up yet
    }
  }
}

/** What a request may ask: grid rows and columns, scales, frames, the largest seed... */
export async function limits() {
  return (await call("/api/limits")).json();
}

/** The training runs (GET /api/runs). */
export async function runs() {
  return (await call("/api/runs")).json();
}

/** The URL path of a run: its name's parts, each encoded. */
export function runPath(name) {
  return `/api/runs/${name.split("/").map(encodeURIComponent).join("/")}`;
}

/** A run's log records after `step`. */
export async function runLog(name, step) {
  return (await call(`${runPath(name)}/log?after=${step}`)).json();
}

/** `GET /generate?query`: a URL, so the browser's HTTP cache answers a state seen before. */
export async function image(query, signal) {
  return (await call(`/generate?${query}`, { signal })).blob();
}

export async function grid(body, signal) {
  return (await call("/generate/grid", { ...post(body), signal })).blob();
}

export async function interpolation(body, signal) {
  return (await call("/generate/interpolation", { ...post(body), signal })).blob();
}

export async function gif(body, signal) {
  return (await call("/generate/gif", { ...post(body), signal })).blob();
}

/** Q's estimate of an image's codes; the image goes as the raw body with its own type. With
 * `fit`, also the noise and codes with which G redraws it (`fit` in the answer; slower). */
export async function encode(blob, checkpoint, signal, { fit = false, seed = 0 } = {}) {
  const options = { method: "POST", headers: { "Content-Type": blob.type }, body: blob, signal };
  const query = new URLSearchParams({ checkpoint, ...(fit ? { fit: "true", seed: String(seed) } : {}) });
  return (await call(`/encode?${query}`, options)).json();
}

/** `POST /generate`: for bodies a URL cannot carry well, such as an explicit noise vector. */
export async function generate(body, signal) {
  return (await call("/generate", { ...post(body), signal })).blob();
}

/**
 * The main image: at most one request in flight, and the newest wanted state always ends up shown.
 *
 * `want(query)` while a request runs only remembers the query; when the running one has been
 * shown, the newest remembered query goes next and those in between are skipped. So a fast drag
 * shows a frame per round trip instead of queueing every input event, and the last position
 * always wins. `want(query, {now: true})` (a click, a link, an encoded drawing) aborts the
 * running request instead: its answer would be stale by the time it came. `show(url, info)`
 * must resolve once the new picture is on screen; the old one stays until then (no flicker),
 * and the feed revokes the object URL of the picture it replaces.
 */
export class ImageFeed {
  #wanted = null;
  #settled = null; // the query last shown or failed: nothing to do while it is the wanted one
  #controller = null;
  #running = false;
  #requests = 0;
  #shownUrl = null;

  constructor({ show, onState, onError, onSuccess }) {
    Object.assign(this, { show, onState, onError, onSuccess });
  }

  /** Asks again for the wanted picture, after it failed. */
  retry() {
    this.#settled = null;
    if (!this.#running) this.#run();
  }

  want(query, { now = false } = {}) {
    this.#wanted = query;
    if (query === this.#settled && !this.#running) return;
    if (now) this.#controller?.abort();
    if (!this.#running) this.#run();
  }

  async #run() {
    this.#running = true;
    while (this.#wanted !== this.#settled) {
      const query = this.#wanted;
      const id = ++this.#requests;
      this.#controller = new AbortController();
      this.onState("loading");
      const started = performance.now();
      try {
        const blob = await image(query, this.#controller.signal);
        const url = URL.createObjectURL(blob);
        try {
          await this.show(url, { id, query, started });
        } catch (error) {
          URL.revokeObjectURL(url);
          throw error;
        }
        if (this.#shownUrl) URL.revokeObjectURL(this.#shownUrl);
        this.#shownUrl = url;
        this.#settled = query;
        this.onSuccess();
      } catch (error) {
        if (isAbort(error)) continue; // a newer state took over; the loop fetches it
        this.#settled = query; // no retry loop; the next change tries again
        this.onError(error);
        this.#running = false;
        this.onState("error");
        return;
      }
    }
    this.#running = false;
    this.onState("ready");
  }
}
