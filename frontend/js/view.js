// The view: owns the DOM. It builds the controls from a checkpoint's latent spec, shows a state,
// and reports what the user asks for through `handlers`; it never fetches or decides.

import {
  LIMIT,
  STEP,
  categoryLabel,
  categoryOrder,
  codeName,
  compatible,
  generateQuery,
  interpolationEnd,
  snap,
} from "./state.js";

const $ = (id) => document.getElementById(id);
const TICKS = [-2, -1, 0, 1, 2];
const SAVE_SCALE = 8; // "Save PNG": 224 px for a 28 px image
const PLACEHOLDER = "Q reads the drawing; G redraws it from fitted noise and codes.";

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") for (const [name, v] of Object.entries(value)) node.style.setProperty(name, v);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

const NUDGE_KEYS = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End"]);

/** The whole number `text` spells, if it is one in low..high; else null ("2.5", "1e40", "-1"). */
function wholeNumber(text, low, high) {
  if (!/^\d+$/.test(text.trim())) return null;
  const n = Number(text);
  return n >= low && n <= high ? n : null;
}

/** A message under a field: kind "error" refuses the value (the field is marked invalid),
 * "note" says how it was taken; null removes it. */
function fieldNote(field, message, kind = "error") {
  const id = `${field.id}-note`;
  let note = document.getElementById(id);
  if (!note) {
    note = element("span", { id, class: "field-note", role: "status" });
    field.after(note);
    field.setAttribute("aria-describedby", `${field.getAttribute("aria-describedby") ?? ""} ${id}`.trim());
  }
  note.textContent = message ?? "";
  note.className = `field-note ${kind}`;
  note.hidden = !message;
  field.setCustomValidity(message && kind === "error" ? message : "");
  field.setAttribute("aria-invalid", String(Boolean(message) && kind === "error"));
}

/** Shows the state's `value` in a field, unless it is being typed in; a changed value ends its note. */
function showValue(field, value) {
  if (document.activeElement === field || Number(field.value) === value && field.value !== "") return;
  field.value = value;
  if (document.getElementById(`${field.id}-note`)) fieldNote(field, null);
}

/** Where value `x` of -2..2 sits along a slider, 0..1. */
const along = (x) => (x + LIMIT) / (2 * LIMIT);

export class View {
  constructor(handlers) {
    this.handlers = handlers;
    this.image = $("image");
    this.grid = $("grid");
    this.sliders = [];
    this.numbers = [];
    this.groups = [];
    this.#wireStatic();
  }

  // ---- building ----

  /** The service's limits (GET /api/limits): what the seed and rows fields accept. */
  setLimits(limits) {
    this.limits = limits;
    $("seed").max = limits.max_seed;
    $("rows").max = limits.max_grid;
  }

  setCheckpoints(list) {
    this.checkpoints = list;
    const select = $("checkpoint");
    select.replaceChildren(...list.map((info) => element("option", { value: info.name }, info.name)));
    select.disabled = list.length < 2;
  }

  /** Rebuilds every code control for a checkpoint's spec. */
  build(info) {
    this.info = info;
    $("checkpoint").value = info.name;
    $("checkpoint-info").textContent = describe(info);
    const { categorical, continuous } = info.latent;
    this.groups = categorical.map((code, i) => this.#categorical(info, i));
    $("categorical").replaceChildren(...this.groups.map((group) => group.fieldset));
    const rows = continuous.map((code, i) => this.#continuous(info, i));
    this.sliders = rows.map((row) => row.slider);
    this.numbers = rows.map((row) => row.number);
    this.badges = rows.map((row) => row.badge);
    $("continuous").replaceChildren(...rows.map((row) => row.node));
    $("continuous-hint").hidden = continuous.length === 0;
    const options = ["continuous", "categorical"].flatMap((kind) =>
      info.latent[kind].map((code, i) => element("option", { value: `${kind}-${i}` }, codeName(info, kind, i))),
    );
    $("vary").replaceChildren(...options);
    $("play").disabled = $("gif").disabled = options.length === 0;
    const others = this.checkpoints.filter((other) => compatible(info, other));
    $("compare").replaceChildren(
      element("option", { value: "" }, others.length ? "none" : "no other checkpoint has these codes"),
      ...others.map((other) => element("option", { value: other.name }, other.name)),
    );
    $("compare").disabled = others.length === 0;
  }

  #categorical(info, i) {
    const code = info.latent.categorical[i];
    const name = codeName(info, "categorical", i);
    const labels = [...Array(code.categories).keys()].map((c) => categoryLabel(info, i, c));
    // Learned digits are shown in digit order; each button keeps its category index.
    const buttons = categoryOrder(info, i).map((c) =>
      element(
        "button",
        { type: "button", class: "choice", "aria-pressed": "false", title: `category ${c}`, dataset: { category: c } },
        labels[c],
      ),
    );
    const row = element("div", { class: "choices" }, ...buttons);
    row.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (button) this.handlers.onCategory(i, Number(button.dataset.category));
    });
    row.addEventListener("keydown", (event) => {
      // Arrow keys move along the row and choose, as in a radio group; Tab still visits each.
      const moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
      const at = buttons.indexOf(document.activeElement);
      if (at < 0) return;
      let next = at + (moves[event.key] ?? 0);
      if (event.key === "Home") next = 0;
      if (event.key === "End") next = buttons.length - 1;
      if (next === at || next < 0 || next >= buttons.length) return;
      event.preventDefault();
      buttons[next].focus();
      this.handlers.onCategory(i, Number(buttons[next].dataset.category), { nudge: true });
    });
    const hint = info.category_labels && i === 0 ? " (the digit each category learned)" : "";
    const legend = element("legend", {}, name, element("span", { class: "muted" }, hint));
    const fieldset = element("fieldset", { class: "code categorical", dataset: { index: i } }, legend, row);
    return { fieldset, buttons };
  }

  #continuous(info, i) {
    const code = info.latent.continuous[i];
    const name = codeName(info, "continuous", i);
    const id = `continuous-${i}`;
    const [low, high] = code.train_range;
    const range = code.prior === "normal" ? "typical range (N(0, 1), ±1σ)" : `training range ${low}..${high}`;
    const slider = element("input", {
      type: "range",
      id,
      min: -LIMIT,
      max: LIMIT,
      step: STEP,
      value: 0,
      title: `${range}; double-click resets to 0`,
      "aria-describedby": `${id}-effect continuous-hint`,
    });
    const number = element("input", {
      type: "number",
      id: `${id}-value`,
      class: "value",
      min: -LIMIT,
      max: LIMIT,
      step: STEP,
      value: 0,
      inputmode: "decimal",
    });
    const badge = element("span", { class: "badge", hidden: "" }, "extrapolating");
    // What the code measurably does (GET /api/checkpoints' continuous_effects), so "c1" means something.
    const measured = info.continuous_effects?.[i];
    const effect = element("p", { class: "code-effect muted", id: `${id}-effect` }, effectText(measured));
    const ticks = element(
      "div",
      { class: "ticks", "aria-hidden": "true" },
      ...TICKS.map((t) => element("span", { style: { "--at": along(t) } }, String(t))),
    );
    const node = element(
      "div",
      {
        class: "code continuous",
        dataset: { index: i, low, high },
        style: { "--lo": along(Math.max(low, -LIMIT)), "--hi": along(Math.min(high, LIMIT)) },
      },
      element("div", { class: "code-name" }, element("label", { for: id }, name), " ", badge),
      element("div", { class: "track" }, slider, ticks),
      element("label", { for: `${id}-value`, class: "visually-hidden" }, `${name} value`),
      number,
      effect,
    );
    // Arrow keys on a slider are nudges: presses in a row share one history step.
    let keys = false;
    slider.addEventListener("keydown", (event) => (keys = NUDGE_KEYS.has(event.key)));
    slider.addEventListener("pointerdown", () => (keys = false));
    const moved = (final) => this.handlers.onContinuous(i, Number(slider.value), keys ? "nudge" : final ? "final" : "drag");
    slider.addEventListener("input", () => moved(false));
    slider.addEventListener("change", () => moved(true));
    slider.addEventListener("dblclick", () => this.handlers.onContinuous(i, 0, "final"));
    number.addEventListener("dblclick", () => this.handlers.onContinuous(i, 0, "final"));
    const typed = (final) => {
      const x = number.value.trim() === "" || number.validity.badInput ? NaN : Number(number.value);
      if (!Number.isFinite(x)) {
        if (final || number.value !== "") fieldNote(number, `${name}: type a number from -${LIMIT} to ${LIMIT}`);
        return; // refused: nothing is sent
      }
      const value = snap(x);
      fieldNote(number, value === x ? null : `${name}: ${number.value} uses ${value} (steps of ${STEP} from -${LIMIT} to ${LIMIT})`, "note");
      if (final) number.value = value; // the field shows what the image uses, and the note says why
      this.handlers.onContinuous(i, value, final ? "final" : "drag");
    };
    number.addEventListener("input", () => typed(false));
    number.addEventListener("change", () => typed(true));
    return { node, slider, number, badge };
  }

  /** A seed field: a whole number in range goes to `onValue(seed, final)` as it is typed;
   * anything else is refused with a message and never sent. */
  #wireSeedField(field, onValue) {
    const typed = (final) => {
      const n = wholeNumber(field.value, 0, this.limits.max_seed);
      const refused = n === null && (final || field.value !== "");
      fieldNote(field, refused ? `a seed is a whole number from 0 to ${this.limits.max_seed}` : null);
      if (n !== null) onValue(n, final);
    };
    field.addEventListener("input", () => typed(false));
    field.addEventListener("change", () => typed(true));
  }

  #wireStatic() {
    const h = this.handlers;
    $("checkpoint").addEventListener("change", (event) => h.onCheckpoint(event.target.value));
    this.#wireSeedField($("seed"), h.onSeed);
    $("random-seed").addEventListener("click", () => h.onRandomSeed());
    $("compare").addEventListener("change", (event) => h.onCompare(event.target.value || null));
    this.#wireSeedField($("to-seed"), h.onTo);
    $("lock").addEventListener("change", (event) => h.onLock(event.target.checked));
    $("surprise").addEventListener("click", () => h.onSurprise());
    $("vary").addEventListener("change", (event) => {
      const [kind, index] = event.target.value.split("-");
      h.onVary({ kind, index: Number(index) });
    });
    $("rows").addEventListener("change", (event) => {
      const rows = wholeNumber(event.target.value, 1, this.limits.max_grid);
      fieldNote(event.target, rows === null ? `rows: a whole number from 1 to ${this.limits.max_grid}` : null);
      if (rows !== null) h.onRows(rows);
    });
    $("play").addEventListener("click", () => h.onPlay());
    $("gif").addEventListener("click", () => h.onGif());
    $("clear").addEventListener("click", () => h.onClear());
    $("upload").addEventListener("change", (event) => {
      const file = event.target.files?.[0];
      event.target.value = ""; // choosing the same file again fires again
      if (file) h.onUpload(file);
    });
  }

  // ---- showing a state ----

  render(state) {
    this.state = state;
    this.groups.forEach((group, i) => {
      for (const button of group.buttons) {
        button.setAttribute("aria-pressed", String(Number(button.dataset.category) === state.categorical[i]));
      }
    });
    state.continuous.forEach((value, i) => {
      this.sliders[i].value = value;
      // A field being typed in keeps the typed text until it is committed (change event).
      showValue(this.numbers[i], value);
      const { low, high } = this.sliders[i].closest(".code").dataset;
      this.badges[i].hidden = value >= Number(low) && value <= Number(high);
    });
    showValue($("seed"), state.seed);
    $("seed").readOnly = state.lock;
    $("random-seed").disabled = state.lock;
    $("lock").checked = state.lock;
    $("vary").value = `${state.vary.kind}-${state.vary.index}`;
    showValue($("rows"), state.rows);
    $("compare").value = state.compare ?? "";
    showValue($("to-seed"), interpolationEnd(state, this.limits));
    this.image.alt = `generated image: ${describeState(state, this.info)}`;
  }

  /** Puts a new picture on screen once it is decoded: the old one stays up until then. */
  async showImage(url, { id, query, started }) {
    const next = new Image();
    next.src = url;
    await next.decode();
    this.image.src = url; // already decoded: painted in the next frame, with no blank frame between
    this.image.dataset.requestId = id;
    this.image.dataset.query = query;
    const ms = performance.now() - started;
    $("latency").textContent = `rendered in ${Math.round(ms)} ms`;
    const scale = Math.min(SAVE_SCALE, this.limits.max_scale);
    $("save-image").href = `/generate?${query.replace(/scale=\d+/, `scale=${scale}`)}`;
    $("save-image").download = imageFile(this.state, this.info);
    this.image.dispatchEvent(new CustomEvent("rendered", { detail: { id, query, ms } }));
  }

  setImageState(state) {
    this.image.dataset.state = state;
  }

  setPlaying(playing) {
    $("play").setAttribute("aria-pressed", String(playing));
    $("play").textContent = playing ? "Pause" : "Play";
  }

  setBusy(id, busy) {
    $(id).disabled = busy;
    $(id).setAttribute("aria-busy", String(busy));
  }

  /** One message per source (image, grid, encode, link...); `text` null removes it. */
  setMessage(source, text, kind = "error") {
    const box = $("messages");
    let item = box.querySelector(`[data-source="${source}"]`);
    if (text === null) {
      item?.remove();
      return;
    }
    if (!item) {
      const dismiss = element("button", { type: "button", class: "dismiss", "aria-label": "Dismiss" }, "×");
      item = element("p", { dataset: { source } }, element("span", { class: "text" }), dismiss);
      dismiss.addEventListener("click", () => item.remove());
      box.append(item);
    }
    item.className = kind;
    item.querySelector(".text").textContent = text;
  }

  /** Removes the error messages (the service answered again); warnings stay until dismissed. */
  clearErrors() {
    for (const item of $("messages").querySelectorAll(".error")) item.remove();
  }

  setGridState(state) {
    this.grid.dataset.state = state;
  }

  /** The traversal grid, its column values above it (`out` marks extrapolated ones) and its
   * rows' seeds beside it; `file` names its download. */
  showGrid(url, { columns, seeds, name, cell, pad, file }) {
    this.grid.src = url;
    this.grid.hidden = false;
    $("grid-png").href = url;
    $("grid-png").download = file;
    $("grid-png").removeAttribute("aria-disabled");
    const width = columns.length * (cell + pad) + pad;
    const height = seeds.length * (cell + pad) + pad;
    const centre = (i, length) => (pad + i * (cell + pad) + cell / 2) / length;
    $("grid-columns").replaceChildren(
      ...columns.map((column, j) =>
        element("span", { class: column.out ? "out" : "", style: { "--at": centre(j, width) } }, column.label),
      ),
    );
    $("grid-rows").replaceChildren(
      ...seeds.map((seed, r) => element("span", { style: { "--at": centre(r, height) } }, `seed ${seed}`)),
    );
    this.gridLayout = { values: columns.map((column) => column.value), cell, pad, width };
    const range = seeds.length === 1 ? `seed ${seeds[0]}` : `seeds ${seeds[0]}–${seeds.at(-1)}`;
    const hatch = columns.some((column) => column.out) ? " (orange: beyond the training range)" : "";
    $("grid-caption").textContent = `Rows: ${range}. Columns: ${name}${hatch}.`;
  }

  /** Marks the grid's column of `value`, the swept code's value in the main picture (none if
   * no column has it). */
  markColumn(value) {
    const at = this.gridLayout?.values.indexOf(value) ?? -1;
    $("grid-columns").querySelectorAll("span").forEach((span, j) => span.classList.toggle("current", j === at));
    const cursor = $("grid-cursor");
    cursor.hidden = at < 0 || this.grid.hidden;
    if (at < 0) return;
    const { cell, pad, width } = this.gridLayout;
    cursor.style.setProperty("--left", (pad / 2 + at * (cell + pad)) / width);
    cursor.style.setProperty("--width", (cell + pad) / width);
  }

  /** The state drawn by this checkpoint and by `state.compare` side by side, when one is chosen. */
  showComparison(state) {
    $("pair").hidden = !state.compare;
    $("compare-hint").hidden = Boolean(state.compare);
    if (!state.compare) return;
    const other = this.checkpoints.find((info) => info.name === state.compare);
    $("compare-this").src = `/generate?${generateQuery(state, this.info, 4)}`;
    $("compare-other").src = `/generate?${generateQuery(state, other, 4)}`;
    $("compare-this-name").textContent = state.checkpoint;
    $("compare-other-name").textContent = state.compare;
  }

  /** The strip of pictures from one seed's noise to another's. */
  showInterpolation(url, { seeds, steps }) {
    const strip = $("interpolation");
    strip.src = url;
    strip.hidden = false;
    $("interpolation-caption").textContent = `Noise from seed ${seeds[0]} to seed ${seeds[1]} in ${steps} steps; codes as set.`;
  }

  /** Q's reading of a drawing: every category's probability as a bar, and the continuous codes. */
  showEstimate(estimate, info) {
    const bars = estimate.categorical.map((code, i) => {
      const rows = categoryOrder(info, i).map((c) => {
        const percent = Math.round(code.probabilities[c] * 100);
        const top = c === code.argmax ? " top" : "";
        return element(
          "div",
          { class: `prob-row${top}`, style: { "--p": code.probabilities[c] } },
          element("span", { class: "prob-label" }, categoryLabel(info, i, c)),
          element("span", { class: "prob-meter", role: "presentation" }),
          element("span", { class: "prob-value" }, `${percent}%`),
        );
      });
      const title = `Q's ${codeName(info, "categorical", i)}: ${categoryLabel(info, i, code.argmax)}`;
      return element("figure", { class: "probs", "aria-label": title }, element("figcaption", {}, title), ...rows);
    });
    const codes = estimate.continuous.map((code, i) => `${codeName(info, "continuous", i)} ${code.mean.toFixed(2)}`);
    $("estimate").replaceChildren(...bars, element("p", {}, codes.length ? `Q reads ${codes.join(" · ")}` : ""));
    $("encoded-image").hidden = true;
    $("encoded-placeholder").hidden = false;
    $("encoded-placeholder").textContent = "Fitting the noise…";
  }

  /** G's picture of the fitted noise and codes beside the drawing, and how close it came. */
  showFitted(url, fit) {
    const image = $("encoded-image");
    if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
    image.src = url;
    image.hidden = false;
    $("encoded-placeholder").hidden = true;
    const before = fit.pixel_error_before.toFixed(1);
    const after = fit.pixel_error_after.toFixed(1);
    $("fit-error").textContent = `Pixel error ${after} (Q's codes alone: ${before}), grey levels of 255.`;
    image.dispatchEvent(new CustomEvent("fitted", { detail: fit }));
  }

  clearEncoded() {
    $("encoded-image").hidden = true;
    $("encoded-placeholder").hidden = false;
    $("encoded-placeholder").textContent = PLACEHOLDER;
    $("estimate").replaceChildren();
    $("fit-error").textContent = "";
  }
}

/** A code's measured effect as shown under its name: "Thickens the strokes as it grows (...)." */
function effectText(measured) {
  if (!measured || measured.effect === "unmeasured") return "Effect not measured: drag it and see.";
  const text = measured.description;
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

/** "Save PNG"'s file name: checkpoint, seed and codes, `infogan-mnist-seed3-digit7-c1_0.5-c2_-1.png`. */
function imageFile(state, info) {
  const codes = state.categorical.map((c, i) => `${codeName(info, "categorical", i)}${categoryLabel(info, i, c)}`);
  state.continuous.forEach((x, i) => codes.push(`${codeName(info, "continuous", i)}_${x}`));
  return `infogan-${state.checkpoint}-seed${state.seed}-${codes.join("-")}.png`.replace(/[^\w.-]+/g, "_");
}

function describeState(state, info) {
  const parts = state.categorical.map((c, i) => `${codeName(info, "categorical", i)} ${categoryLabel(info, i, c)}`);
  state.continuous.forEach((x, i) => parts.push(`${codeName(info, "continuous", i)} ${x}`));
  return [...parts, `seed ${state.seed}`].join(", ");
}

function describe(info) {
  const parts = [info.dataset, info.step != null ? `step ${info.step}` : null];
  const accuracy = info.metrics?.categorical_accuracy;
  if (typeof accuracy === "number") parts.push(`categorical accuracy ${(accuracy * 100).toFixed(1)}%`);
  const { noise_dim, categorical, continuous } = info.latent;
  parts.push(`${noise_dim} noise, ${categorical.length} categorical, ${continuous.length} continuous`);
  return parts.filter(Boolean).join(" · ");
}
