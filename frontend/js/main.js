// Wiring: the service's limits and checkpoints, the state, and what follows each change of it:
// the view, the URL, the live image, the traversal panel. The drawing reader sets the codes too.

import * as api from "./api.js";
import { UrlHistory } from "./history.js";
import { Comparison } from "./compare.js";
import { Reader } from "./reader.js";
import { defaults, estimated, fromQuery, generateQuery, randomSeed, sampled, toQuery, withCode } from "./state.js";
import { Training } from "./training.js";
import { Traversal } from "./traversal.js";
import { View } from "./view.js";

let limits = null; // GET /api/limits
let checkpoints = [];
let info = null; // the /api/checkpoints entry of state.checkpoint
let state = null;
let traversal = null; // made once the limits are known
let comparison = null; // likewise

const urls = new UrlHistory();

const view = new View({
  onCheckpoint(name) {
    traversal.stop();
    const next = checkpoints.find((c) => c.name === name);
    commit(defaults(next, limits, state), { history: "push", now: true });
  },
  onCategory(i, c, { nudge = false } = {}) {
    traversal.stop();
    const history = nudge ? urls.nudge(`categorical-${i}`) : "push";
    commit(withCode(state, "categorical", i, c), { history, now: true });
  },
  /** `step`: "drag" (a slider moving, or typing), "final" (let go, or committed), "nudge" (a key). */
  onContinuous(i, value, step) {
    traversal.stop();
    const history = step === "nudge" ? urls.nudge(`continuous-${i}`) : urls.stepOf(step === "final");
    commit(withCode(state, "continuous", i, value), { history });
  },
  onSeed(seed, final) {
    if (state.lock) return;
    commit({ ...state, seed }, { history: urls.stepOf(final) });
  },
  onRandomSeed() {
    if (!state.lock) commit({ ...state, seed: randomSeed(limits) }, { history: "push", now: true });
  },
  onLock(lock) {
    commit({ ...state, lock }, { history: "push" });
  },
  onSurprise() {
    traversal.stop();
    commit(sampled(state, info, limits), { history: "push", now: true });
  },
  onVary(vary) {
    traversal.stop();
    commit({ ...state, vary }, { history: "push" });
  },
  onRows(rows) {
    commit({ ...state, rows }, { history: "push" });
  },
  onCompare(compare) {
    commit({ ...state, compare }, { history: "push" });
  },
  onTo(to, final) {
    commit({ ...state, to }, { history: urls.stepOf(final) });
  },
  onPlay: () => traversal.togglePlay(),
  onGif: () => traversal.downloadGif(),
  onClear() {
    reader.clear();
    view.clearEncoded();
    view.setMessage("encode", null);
  },
  onUpload: (file) => reader.readFile(file),
});

const feed = new api.ImageFeed({
  show: (url, details) => view.showImage(url, details),
  onState: (s) => view.setImageState(s),
  onError(error) {
    view.setMessage("image", `Image: ${error.message}`);
    if (api.isUnavailable(error)) whenServiceIsBack();
    if (/unknown checkpoint/.test(error.message)) followCheckpoints(); // its file went: follow at once
  },
  onSuccess: () => view.clearErrors(), // the service answers: its errors are over
});

let waiting = null; // while the service is away: the wait for it to come back

/** Waits for the service, then asks again for what failed meanwhile. */
function whenServiceIsBack() {
  waiting ??= api.serviceBack().then(() => {
    waiting = null;
    feed.retry();
    traversal.retry();
    comparison.retry(state);
  });
}

const reader = new Reader(document.getElementById("pad"), {
  checkpoint: () => state.checkpoint,
  seed: () => state.seed,
  onEstimate(estimate) {
    traversal.stop();
    commit(estimated(state, estimate), { history: "push", now: true });
    view.showEstimate(estimate, info);
    view.setMessage("encode", null);
  },
  async onFit(fit, checkpoint) {
    const picture = await api.generate({ checkpoint, noise: fit.noise, categorical: fit.categorical, continuous: fit.continuous });
    view.showFitted(URL.createObjectURL(picture), fit);
  },
  onError: (error) => view.setMessage("encode", `Reading the drawing: ${error.message}`),
});

/** Makes `next` the state: controls, URL, image and grid follow. `history` is "push" (a new
 * back-button step), "replace" (the same step), "replace-later" (the same step, throttled: a
 * drag) or "none" (back/forward). `now` aborts an image request on its way (see ImageFeed). */
function commit(next, { history = "push", now = false } = {}) {
  if (next.checkpoint !== state?.checkpoint) {
    info = checkpoints.find((c) => c.name === next.checkpoint);
    view.build(info);
  }
  state = next;
  view.render(state);
  urls.write(toQuery(state, info), history);
  feed.want(generateQuery(state, info), { now });
  traversal.update(state, info);
  comparison.update(state);
}

const CHECKPOINTS_EVERY_MS = 5000; // the service itself looks at its files every INFOGAN_POLL_S

/** Keeps the checkpoints in step with the service's: new ones join the picker, a replaced one is
 * drawn anew (its version is in the picture's URL), a removed one gives way to the default. */
async function followCheckpoints() {
  let list;
  try {
    list = await api.checkpoints();
  } catch {
    return; // an absent service is the image feed's to report
  }
  const versions = (all) => JSON.stringify(all.map((c) => [c.name, c.sha256]));
  if (!list.length || versions(list) === versions(checkpoints)) return;
  checkpoints = list;
  view.setCheckpoints(list);
  const current = list.find((c) => c.name === state.checkpoint);
  if (!current) {
    view.setMessage("checkpoints", `Checkpoint "${state.checkpoint}" is gone; showing "${list[0].name}".`, "warning");
    commit(defaults(list[0], limits, state), { history: "push", now: true });
    return;
  }
  const sameCodes = JSON.stringify(current.latent) === JSON.stringify(info.latent);
  const compare = list.some((c) => c.name === state.compare) ? state.compare : null;
  info = current;
  view.build(info);
  commit(sameCodes ? { ...state, compare } : defaults(current, limits, state), { history: "replace", now: true });
}

window.addEventListener("popstate", () => {
  traversal.stop();
  urls.endGesture();
  const { state: next, problems } = fromQuery(location.search, checkpoints, limits);
  showLinkProblems(problems);
  commit(next, { history: "none", now: true });
});

function showLinkProblems(problems) {
  view.setMessage("link", problems.length ? `This link was partly invalid: ${problems.join("; ")}.` : null, "warning");
}

async function start() {
  try {
    [limits, checkpoints] = await Promise.all([api.limits(), api.checkpoints()]);
  } catch (error) {
    view.setMessage("checkpoints", `Cannot list the checkpoints: ${error.message}; trying again when it answers.`);
    view.setImageState("error");
    await api.serviceBack();
    view.setMessage("checkpoints", null);
    return start();
  }
  if (!checkpoints.length) {
    view.setMessage("checkpoints", "The service has no checkpoint loaded; GET /healthz says why.");
    view.setImageState("error");
    return;
  }
  view.setLimits(limits);
  view.setCheckpoints(checkpoints);
  traversal = new Traversal(view, limits, {
    onFrame: (kind, index, value) => commit(withCode(state, kind, index, value), { history: "replace-later" }),
    onUnavailable: whenServiceIsBack,
  });
  comparison = new Comparison(view, limits, { onUnavailable: whenServiceIsBack });
  const { state: first, problems } = fromQuery(location.search, checkpoints, limits);
  showLinkProblems(problems);
  commit(first, { history: "replace" });
  setInterval(followCheckpoints, CHECKPOINTS_EVERY_MS);
  new Training(document.getElementById("training"), { explore: exploreRun }).start();
}

/** "Explore this checkpoint": the explorer switches to a run's checkpoint once the service serves it. */
async function exploreRun(name) {
  await followCheckpoints();
  if (!checkpoints.some((c) => c.name === name)) {
    view.setMessage("training", `The service does not serve "${name}" yet; try again in a moment.`, "warning");
    return;
  }
  view.setMessage("training", null);
  commit(defaults(checkpoints.find((c) => c.name === name), limits, state), { history: "push", now: true });
  window.scrollTo({ top: 0 });
}

start();
