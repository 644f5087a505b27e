// The explorer's state: a small plain object, its defaults for a checkpoint, the changes made to it
// (a code set, everything sampled, an image read back) and its URL form.
//
// state = {checkpoint, seed, lock, categorical: [index...], continuous: [value...], vary, rows, compare, to}
// `vary` is the code the traversal panel sweeps: {kind: "categorical" | "continuous", index}.
// `compare` names a second checkpoint drawn beside the first with the same inputs (or null), and
// `to` the seed an interpolation runs to (null: the next seed).
// Everything a user sets lives here, so a link (the query string) reproduces the same image.

export const LIMIT = 2; // sliders run over -2..2, the paper's traversal range
export const STEP = 0.05;

/** A value on the slider grid: -2..2 in steps of 0.05, without float noise such as 0.15000000000000002. */
export function snap(value) {
  const clamped = Math.min(LIMIT, Math.max(-LIMIT, value));
  return Math.round(clamped / STEP) / Math.round(1 / STEP) || 0; // `|| 0` turns -0 into 0
}

/** The state a checkpoint starts in: seed 0, first categories, codes at 0 (the API's defaults);
 * `keep` carries seed, lock and rows over from another state. */
export function defaults(info, limits, keep = {}) {
  const { categorical, continuous } = info.latent;
  return {
    checkpoint: info.name,
    seed: keep.seed ?? 0,
    lock: keep.lock ?? false,
    categorical: categorical.map(() => 0),
    continuous: continuous.map(() => 0),
    vary: continuous.length ? { kind: "continuous", index: 0 } : { kind: "categorical", index: 0 },
    rows: keep.rows ?? Math.min(5, limits.max_grid),
    compare: null,
    to: keep.to ?? null,
  };
}

/** Whether two checkpoints take the same inputs, so that one state draws in both. */
export function compatible(a, b) {
  const shape = (info) =>
    JSON.stringify([info.latent.noise_dim, info.latent.categorical.map((c) => c.categories), info.latent.continuous.length]);
  return a.name !== b.name && shape(a) === shape(b);
}

/** The seed an interpolation ends at: the one chosen, else the next. */
export function interpolationEnd(state, limits) {
  return state.to ?? Math.min(state.seed + 1, limits.max_seed);
}

/** `state` with code `index` of `kind` ("categorical" or "continuous") set to `value`. */
export function withCode(state, kind, index, value) {
  const codes = [...state[kind]];
  codes[index] = value;
  return { ...state, [kind]: codes };
}

/** "Sample everything": codes drawn from their priors, and a new seed unless the noise is locked. */
export function sampled(state, info, limits) {
  const { categorical, continuous } = info.latent;
  return {
    ...state,
    seed: state.lock ? state.seed : randomSeed(limits),
    categorical: categorical.map((code) => Math.floor(Math.random() * code.categories)),
    continuous: continuous.map((code) => snap(drawFrom(code))),
  };
}

export function randomSeed(limits) {
  return Math.floor(Math.random() * Math.min(limits.max_seed, 1_000_000)); // short enough to read aloud
}

function drawFrom(code) {
  if (code.prior === "normal") {
    const u = 1 - Math.random(); // Box-Muller
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
  }
  const [low, high] = code.train_range;
  return low + Math.random() * (high - low);
}

/** The codes Q read from an image (`POST /encode`'s answer), on the sliders' grid. */
export function estimated(state, estimate) {
  return {
    ...state,
    categorical: estimate.categorical.map((code) => code.argmax),
    continuous: estimate.continuous.map((code) => snap(code.mean)),
  };
}

export function codeName(info, kind, index) {
  const code = info.latent[kind][index];
  return code?.name || `${kind === "categorical" ? "category" : "c"}${index + 1}`;
}

/** The label of category `c` of code `index`: the learned digit when the checkpoint knows it. */
export function categoryLabel(info, index, c) {
  const labels = index === 0 ? info.category_labels : null; // the labels describe the first code
  return labels && labels.length === info.latent.categorical[0].categories ? String(labels[c]) : String(c);
}

/** The categories of code `index` in the order to show them: by learned digit when the
 * checkpoint knows them (0..9, as the paper's figures run), else by index. */
export function categoryOrder(info, index) {
  const { categories } = info.latent.categorical[index];
  const labels = [...Array(categories).keys()].map((c) => categoryLabel(info, index, c));
  const order = [...labels.keys()];
  if (labels.every((label) => /^\d+$/.test(label))) order.sort((a, b) => Number(labels[a]) - Number(labels[b]));
  return order;
}

/** The labels that name one category each of a checkpoint with a single, labelled categorical
 * code (label -> category), or null: then links name categories by index. */
export function labelled(info) {
  const labels = info.category_labels;
  if (info.latent.categorical.length !== 1 || !labels) return null;
  const unique = labels.filter((label) => label !== "?" && labels.indexOf(label) === labels.lastIndexOf(label));
  return new Map(unique.map((label) => [label, labels.indexOf(label)]));
}

/** The query string of a state: `?checkpoint=mnist&seed=7&label=3&continuous=0.5,-1&vary=continuous-0&rows=5`,
 * with `categorical=` indices instead of `label=` where the checkpoint has no labels for them. */
export function toQuery(state, info) {
  const params = new URLSearchParams({ checkpoint: state.checkpoint, seed: String(state.seed) });
  const label = info.category_labels?.[state.categorical[0]];
  if (labelled(info)?.get(label) === state.categorical[0]) params.set("label", label);
  else if (state.categorical.length) params.set("categorical", state.categorical.join(","));
  if (state.continuous.length) params.set("continuous", state.continuous.join(","));
  if (state.lock) params.set("lock", "1");
  params.set("vary", `${state.vary.kind}-${state.vary.index}`);
  params.set("rows", String(state.rows));
  if (state.compare) params.set("compare", state.compare);
  if (state.to !== null) params.set("to", String(state.to));
  return `?${params}`.replaceAll("%2C", ","); // commas need no escaping in a query: readable links
}

/** The state a query string names, checked against the checkpoints and the service's limits;
 * `problems` says what was wrong with the link (each then falls back to its default). */
export function fromQuery(search, checkpoints, limits) {
  const params = new URLSearchParams(search);
  const problems = [];
  const wanted = params.get("checkpoint");
  let info = checkpoints.find((c) => c.name === wanted);
  if (!info) {
    info = checkpoints[0];
    if (wanted !== null) problems.push(`checkpoint "${wanted}" is not loaded; showing "${info.name}"`);
  }
  const state = defaults(info, limits);
  const { categorical, continuous } = info.latent;

  for (const key of ["seed", "to"]) {
    const text = params.get(key);
    if (text === null) continue;
    const n = Number(text);
    if (/^\d+$/.test(text) && n <= limits.max_seed) state[key] = n;
    else problems.push(`${key} must be a whole number in 0..${limits.max_seed}, got "${text}"`);
  }
  const compare = params.get("compare");
  if (compare !== null) {
    const other = checkpoints.find((c) => c.name === compare);
    if (other && compatible(info, other)) state.compare = compare;
    else problems.push(`compare must name another loaded checkpoint with the same codes, got "${compare}"`);
  }
  state.lock = params.get("lock") === "1";

  const label = params.get("label");
  if (label !== null) {
    const known = labelled(info);
    if (known?.has(label)) state.categorical[0] = known.get(label);
    else if (known) problems.push(`label must be one of ${[...known.keys()].sort().join(", ")}, got "${label}"`);
    else problems.push(`"${info.name}" has no category labels; give categorical (indices) instead of label`);
  }
  const cats = label === null ? list(params.get("categorical")) : null;
  if (cats) {
    if (cats.length !== categorical.length) {
      problems.push(`categorical needs ${categorical.length} values, got ${cats.length}`);
    }
    cats.slice(0, categorical.length).forEach((text, i) => {
      const n = Number(text);
      if (Number.isInteger(n) && n >= 0 && n < categorical[i].categories) state.categorical[i] = n;
      else problems.push(`categorical[${i}] must be in 0..${categorical[i].categories - 1}, got "${text}"`);
    });
  }
  const conts = list(params.get("continuous"));
  if (conts) {
    if (conts.length !== continuous.length) {
      problems.push(`continuous needs ${continuous.length} values, got ${conts.length}`);
    }
    conts.slice(0, continuous.length).forEach((text, i) => {
      const x = Number(text);
      if (text !== "" && Number.isFinite(x) && Math.abs(x) <= LIMIT) state.continuous[i] = snap(x);
      else problems.push(`continuous[${i}] must be in -${LIMIT}..${LIMIT}, got "${text}"`);
    });
  }
  const vary = /^(categorical|continuous)-(\d+)$/.exec(params.get("vary") ?? "");
  if (vary && Number(vary[2]) < info.latent[vary[1]].length) state.vary = { kind: vary[1], index: Number(vary[2]) };
  else if (params.has("vary")) problems.push(`vary must name a code of "${info.name}", got "${params.get("vary")}"`);
  const rows = Number(params.get("rows"));
  if (params.has("rows") && Number.isInteger(rows) && rows >= 1 && rows <= limits.max_grid) state.rows = rows;
  else if (params.has("rows")) problems.push(`rows must be in 1..${limits.max_grid}, got "${params.get("rows")}"`);
  return { state, info, problems };
}

/** The query of `GET /generate` for a state drawn by checkpoint `info` (the state's own unless
 * another is given): lists as repeated parameters, as the API reads them, and the file's
 * version last, so a cached picture is never shown for a replaced file. */
export function generateQuery(state, info, scale = 1) {
  const params = new URLSearchParams({ checkpoint: info.name, seed: String(state.seed) });
  for (const c of state.categorical) params.append("categorical", String(c));
  for (const x of state.continuous) params.append("continuous", String(x));
  params.set("scale", String(scale));
  params.set("sha256", info.sha256.slice(0, 16));
  return params.toString();
}

/** The fixed part of a grid or GIF request body: checkpoint, codes and the swept code. The swept
 * code's own value is replaced by every value of the sweep, so it is sent as 0: moving it (the
 * animation does) leaves the body, and the picture, the same. */
export function sweepBody(state, info) {
  const { kind, index } = state.vary;
  const codes = { categorical: [...state.categorical], continuous: [...state.continuous] };
  codes[kind][index] = 0;
  const body = { checkpoint: state.checkpoint, ...codes, vary: state.vary };
  if (kind === "continuous") return { ...body, start: -LIMIT, stop: LIMIT };
  return { ...body, values: categoryOrder(info, index) };
}

/** The values a sweep visits, for axis labels and the animation: -2..2 or every category. */
export function sweepValues(state, info, steps) {
  if (state.vary.kind === "categorical") return categoryOrder(info, state.vary.index);
  return [...Array(steps).keys()].map((i) => snap(-LIMIT + (2 * LIMIT * i) / (steps - 1)));
}

function list(text) {
  return text === null ? null : text.split(",");
}
