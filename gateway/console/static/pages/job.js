// One fine-tuning job, live: status, events as they arrive, training and validation loss on one chart,
// checkpoints with their metrics, cancel / pause / resume, and "try it" on the fine-tuned model.

import { api } from "../api.js";
import { lineChart } from "../chart.js";
import { el, errorBox, reporting, statusPill, table, when } from "../dom.js";
import { ACTIVE } from "./fine_tuning.js";
import { playgroundLink } from "./models.js";

const POLL_MS = 1500;
const CHECKPOINTS_MS = 5000;
const PAGE = 100;

function jobPath(id, tail = "") {
  return `/v1/fine_tuning/jobs/${encodeURIComponent(id)}${tail}`;
}

function loss(value) {
  return typeof value === "number" ? value.toFixed(4) : "";
}

function chartOf(events) {
  const metrics = events.filter((e) => e.type === "metrics" && e.data).map((e) => e.data);
  metrics.sort((a, b) => a.step - b.step);
  const series = (key) => metrics.filter((m) => typeof m[key] === "number").map((m) => [m.step, m[key]]);
  const total = metrics.length ? metrics[metrics.length - 1].total_steps : undefined;
  return lineChart(
    [
      { name: "training loss", className: "train", points: series("train_loss") },
      { name: "validation loss", className: "valid", points: series("valid_loss") },
      { name: "full validation loss", className: "full-valid", points: series("full_valid_loss"), dots: true },
    ],
    { xMax: total },
  );
}

function describe(job) {
  const type = job.method?.type || "supervised";
  const hyper = job.method?.[type]?.hyperparameters || job.hyperparameters || {};
  const facts = [
    ["Status", statusPill(job.status)],
    ["Model", job.model],
    ["Method", type],
    ["Fine-tuned model", job.fine_tuned_model || "—"],
    ["Training file", job.training_file],
    ["Validation file", job.validation_file || "—"],
    ["Hyperparameters", Object.entries(hyper).map(([k, v]) => `${k}=${v}`).join(", ")],
    ["Trained tokens", job.trained_tokens ?? "—"],
    ["Created", when(job.created_at)],
    ["Finished", when(job.finished_at) || "—"],
  ];
  return el("dl", { class: "facts" }, facts.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
}

export async function render(view, { id }) {
  const events = [];
  const seen = new Set();
  const header = el("div");
  const actions = el("div");
  const chart = el("div", { class: "chart-box card" });
  const checkpoints = el("div");
  const log = el("ol", { class: "events" });
  const problem = el("div");
  let timer = null;
  let gone = false;
  let checkpointsSeenAt = { events: -1, time: 0 };

  // Newest first, as the API lists them: the first load pages back through all, later ones take the newest page.
  async function loadEvents(all) {
    let after = null;
    const fresh = [];
    for (let page = 0; page < (all ? 50 : 1); page += 1) {
      const query = new URLSearchParams({ limit: PAGE, ...(after ? { after } : {}) });
      const answer = await api(`${jobPath(id, "/events")}?${query}`);
      const unseen = answer.data.filter((event) => !seen.has(event.id));
      unseen.forEach((event) => seen.add(event.id));
      fresh.push(...unseen);
      if (!answer.has_more || !answer.data.length || !unseen.length) break;
      after = answer.data[answer.data.length - 1].id;
    }
    events.unshift(...fresh);
  }

  function button(label, path, enabled, className = "secondary") {
    return el(
      "button",
      {
        class: className,
        disabled: !enabled,
        onclick: () =>
          reporting(problem, async () => {
            await api(jobPath(id, path), { method: "POST" });
            await refresh();
          }),
      },
      label,
    );
  }

  async function refresh() {
    const job = await api(jobPath(id));
    await loadEvents(events.length === 0);
    const ordered = events;
    header.replaceChildren(el("div", {}, el("h1", {}, job.id), describe(job), job.error?.message ? errorBox(job.error) : null));
    actions.replaceChildren(
      el(
        "div",
        { class: "actions" },
        button("Cancel", "/cancel", ACTIVE.includes(job.status), "danger"),
        button("Pause", "/pause", ["validating_files", "queued", "running"].includes(job.status)),
        button("Resume", "/resume", job.status === "paused"),
        job.fine_tuned_model
          ? el("a", { class: "button", href: playgroundLink(job.fine_tuned_model, job.model) }, "Try it")
          : null,
      ),
    );
    chart.replaceChildren(chartOf(ordered));
    log.replaceChildren(
      ...ordered.map((event) =>
        el(
          "li",
          { class: `event ${event.level} ${event.type || "message"}` },
          el("time", {}, when(event.created_at)),
          " ",
          event.message,
        ),
      ),
    );
    // Checkpoints come with training steps: looked up again when steps arrived, at most every few seconds.
    const stale = events.length !== checkpointsSeenAt.events && Date.now() - checkpointsSeenAt.time > CHECKPOINTS_MS;
    if (stale || !ACTIVE.includes(job.status)) {
      checkpointsSeenAt = { events: events.length, time: Date.now() };
      const answer = await api(`${jobPath(id, "/checkpoints")}?limit=100`);
      checkpoints.replaceChildren(
        table(
          ["Step", "Checkpoint model", "Training loss", "Validation loss", ""],
          answer.data.map((c) =>
            el(
              "tr",
              {},
              el("td", {}, String(c.step_number)),
              el("td", { class: "id" }, c.fine_tuned_model_checkpoint),
              el("td", {}, loss(c.metrics?.train_loss)),
              el("td", {}, loss(c.metrics?.full_valid_loss ?? c.metrics?.valid_loss)),
              el("td", {}, el("a", { class: "button small", href: playgroundLink(c.fine_tuned_model_checkpoint, job.model) }, "Try")),
            ),
          ),
          "No checkpoints yet.",
        ),
      );
    }
    if (ACTIVE.includes(job.status) && !gone) timer = setTimeout(poll, POLL_MS);
  }

  function poll() {
    refresh().catch((error) => {
      problem.replaceChildren(errorBox(error));
      if (!gone) timer = setTimeout(poll, POLL_MS * 2);
    });
  }

  view.append(
    el("p", {}, el("a", { href: "#/fine-tuning" }, "← All jobs")),
    header,
    actions,
    problem,
    el("h2", {}, "Loss"),
    chart,
    el("h2", {}, "Checkpoints"),
    checkpoints,
    el("h2", {}, "Events"),
    log,
  );
  await refresh();
  return () => {
    gone = true;
    clearTimeout(timer);
  };
}
