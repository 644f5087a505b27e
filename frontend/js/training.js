// The Training view: the runs under the service's runs folder (GET /api/runs), and for the one
// chosen its loss and accuracy curves against training time, its newest sample grid, its
// progress and, for a population, each member. It asks again every few seconds while a run
// trains; the log comes in pieces, each asking only for the records after the last one seen.
// Curves are plain SVG polylines: four series and a few hundred points need no library.

import * as api from "./api.js";

const EVERY_MS = 3000;
const LOSSES = { loss_d: "D", loss_g: "G", info_cat: "L_I categorical", info_cont: "L_I continuous" };
const COLOURS = ["#7cb0ff", "#ffb15c", "#7ee0a1", "#e98bd0"];
const SVG = "http://www.w3.org/2000/svg";

export class Training {
  #runs = [];
  #chosen = null; // the run's name
  #records = []; // its log so far
  #timer = 0;

  /** `explore(checkpointName)` switches the explorer to a run's checkpoint. */
  constructor(root, { explore }) {
    this.root = root;
    this.explore = explore;
    this.$ = (selector) => root.querySelector(selector);
    this.$("#run").addEventListener("change", (event) => this.#choose(event.target.value));
    this.$("#explore-run").addEventListener("click", () => this.explore(`run:${this.#chosen}`));
  }

  start() {
    this.#tick();
  }

  async #tick() {
    clearTimeout(this.#timer);
    try {
      this.#runs = await api.runs();
      this.#showRuns();
      if (this.#chosen) await this.#follow();
    } catch {
      // the service is away: the image feed says so; try again later
    }
    this.#timer = setTimeout(() => this.#tick(), EVERY_MS);
  }

  #showRuns() {
    this.root.hidden = this.#runs.length === 0;
    const select = this.$("#run");
    const options = this.#runs.map((run) => new Option(`${run.name} (${run.state})`, run.name));
    select.replaceChildren(...options);
    if (!this.#runs.some((run) => run.name === this.#chosen)) {
      const running = this.#runs.find((run) => run.state === "running");
      this.#chosen = null;
      if (this.#runs.length) this.#choose((running ?? this.#runs.at(-1)).name);
    }
    select.value = this.#chosen ?? "";
  }

  #choose(name) {
    this.#chosen = name;
    this.#records = [];
    this.#follow();
  }

  async #follow() {
    const name = this.#chosen;
    const after = this.#records.at(-1)?.step ?? -1;
    const more = await api.runLog(name, after);
    if (name !== this.#chosen) return; // another run was chosen meanwhile
    this.#records.push(...more);
    const run = this.#runs.find((r) => r.name === name);
    if (!run) return;
    this.#showProgress(run);
    const sample = this.$("#run-sample");
    sample.hidden = !run.sample;
    if (run.sample) sample.src = `${api.runPath(name)}/samples/latest?file=${run.sample}`; // a new file, a new URL
    this.#showCurves(run);
    this.#showMembers(run);
  }

  #showProgress(run) {
    const done = run.total_steps ? run.step / run.total_steps : 0;
    this.$("#run-progress").value = done;
    const perStep = run.train_seconds && run.step ? run.train_seconds / run.step : null;
    const left = perStep && run.total_steps ? ((run.total_steps - run.step) * perStep) / 60 : null;
    const parts = [`${run.state}`, `step ${run.step}${run.total_steps ? ` of ${run.total_steps}` : ""}`];
    if (run.images_per_s) parts.push(`${Math.round(run.images_per_s)} images/s`);
    if (run.state === "running" && left !== null) parts.push(`about ${Math.ceil(left)} min left`);
    if (run.categorical_accuracy != null) parts.push(`accuracy ${(run.categorical_accuracy * 100).toFixed(1)}%`);
    this.$("#run-status").textContent = parts.join(" · ");
    this.$("#explore-run").disabled = !run.step;
  }

  #showCurves(run) {
    // in a population, the first member still training: halving may have stopped member 0
    const headline = run.members.find((m) => m.stopped_at == null)?.member ?? 0;
    const first = this.#records.filter((r) => (r.member ?? 0) === headline);
    const losses = Object.entries(LOSSES).map(([key, label], i) => ({
      label,
      colour: COLOURS[i],
      points: first.filter((r) => key in r).map((r) => [r.train_s, r[key]]),
    }));
    const accuracy = [
      {
        label: "categorical accuracy",
        colour: COLOURS[0],
        points: first.filter((r) => "categorical_accuracy" in r).map((r) => [r.train_s, r.categorical_accuracy]),
      },
    ];
    this.$("#loss-chart").replaceChildren(chart(losses, "training seconds"));
    this.$("#accuracy-chart").replaceChildren(chart(accuracy, "training seconds"));
  }

  #showMembers(run) {
    const rows = run.members.map((m) => {
      const row = document.createElement("tr");
      const chosen = run.chosen_member === m.member ? " (chosen)" : "";
      const stopped = m.stopped_at == null ? "" : ` (stopped at step ${m.stopped_at})`;
      const accuracy = m.categorical_accuracy == null ? "–" : (m.categorical_accuracy * 100).toFixed(1) + "%";
      const information = m.information == null ? "–" : m.information.toFixed(3);
      const flips = m.jitter_flips == null ? "–" : (m.jitter_flips * 100).toFixed(1) + "%";
      const cells = [`${m.member}${chosen}${stopped}`, accuracy, information, flips, m.losses.loss_d?.toFixed(3) ?? "–"];
      for (const text of cells) {
        row.append(Object.assign(document.createElement("td"), { textContent: text }));
      }
      return row;
    });
    this.$("#members").hidden = rows.length === 0;
    this.$("#members tbody").replaceChildren(...rows);
  }
}

/** A line chart of `series` ({label, colour, points: [[x, y]...]}) as an SVG element. */
function chart(series, xLabel) {
  const width = 480;
  const height = 190;
  const pad = { left: 44, right: 8, top: 8, bottom: 42 }; // below the plot: the time axis's label, then the legend
  const all = series.flatMap((s) => s.points);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${series.map((s) => s.label).join(", ")} against ${xLabel}`);
  if (!all.length) return svg;
  const [x0, x1] = extent(all.map((p) => p[0]));
  const [y0, y1] = extent(all.map((p) => p[1]));
  const x = (v) => pad.left + ((v - x0) / (x1 - x0 || 1)) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - ((v - y0) / (y1 - y0 || 1)) * (height - pad.top - pad.bottom);
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
  };
  add("line", { x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom, class: "axis" });
  add("line", { x1: pad.left, y1: pad.top, x2: pad.left, y2: height - pad.bottom, class: "axis" });
  add("text", { x: pad.left - 4, y: pad.top + 8, "text-anchor": "end" }, round(y1));
  add("text", { x: pad.left - 4, y: height - pad.bottom, "text-anchor": "end" }, round(y0));
  add("text", { x: width - pad.right, y: height - pad.bottom + 14, "text-anchor": "end" }, `${round(x1)} ${xLabel}`);
  series.forEach((s, i) => {
    const points = s.points.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(" ");
    add("polyline", { points, stroke: s.colour, fill: "none", "data-series": s.label });
    add("text", { x: pad.left + 8 + i * 110, y: height - 6, fill: s.colour }, s.label);
  });
  return svg;
}

function extent(values) {
  return [Math.min(...values), Math.max(...values)];
}

function round(value) {
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}
