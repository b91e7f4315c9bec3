// Fine-tuning: create a job from an uploaded file, and the list of jobs (refreshed while any is active).

import { api, models } from "../api.js";
import { el, errorBox, reporting, statusPill, table, when } from "../dom.js";
import { kindOf } from "./models.js";

export const ACTIVE = ["validating_files", "queued", "running", "paused"];
const REFRESH_MS = 3000;

function numberField(name, label, attributes = {}) {
  return el("label", {}, label, el("input", { type: "number", name, placeholder: "auto", ...attributes }));
}

function hyperparameters(form, method) {
  const values = {};
  const names = ["n_epochs", "batch_size", "learning_rate_multiplier", ...(method === "dpo" ? ["beta"] : [])];
  for (const name of names) {
    const raw = form.elements[name].value.trim();
    if (raw) values[name] = Number(raw);
  }
  return values;
}

export async function render(view) {
  const [available, files] = await Promise.all([models(), api("/v1/files?purpose=fine-tune&limit=200")]);
  const trainable = available.filter((m) => ["base", "fine-tuned", "checkpoint"].includes(kindOf(m)));
  const usable = files.data.filter((file) => file.status !== "error");
  const fileOptions = (none) => [
    ...(none ? [el("option", { value: "" }, "— none —")] : []),
    ...usable.map((file) => el("option", { value: file.id }, `${file.filename} (${file.id})`)),
  ];
  const method = el(
    "select",
    { name: "method" },
    el("option", { value: "supervised" }, "supervised"),
    el("option", { value: "dpo" }, "dpo (preference pairs)"),
  );
  const beta = numberField("beta", "Beta", { step: "any", min: 0 });
  beta.hidden = true;
  method.addEventListener("change", () => (beta.hidden = method.value !== "dpo"));
  const problem = el("div");
  const form = el(
    "form",
    { class: "create card" },
    el("h2", {}, "New job"),
    el("label", {}, "Model", el("select", { name: "model" }, trainable.map((m) => el("option", { value: m.id }, m.id)))),
    el("label", {}, "Training file", el("select", { name: "training_file", required: true }, fileOptions(false))),
    el("label", {}, "Validation file", el("select", { name: "validation_file" }, fileOptions(true))),
    el("label", {}, "Method", method),
    numberField("n_epochs", "Epochs", { min: 1, step: 1 }),
    numberField("batch_size", "Batch size", { min: 1, step: 1 }),
    numberField("learning_rate_multiplier", "Learning rate multiplier", { min: 0, step: "any" }),
    beta,
    el("label", {}, "Suffix", el("input", { name: "suffix", maxlength: 64, placeholder: "optional" })),
    el("label", {}, "Seed", el("input", { type: "number", name: "seed", step: 1, placeholder: "random" })),
    el("div", { class: "actions" }, el("button", { type: "submit", disabled: !usable.length }, "Create job")),
    usable.length ? null : el("p", { class: "muted" }, "Upload a training file on the Files page first."),
    problem,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = form.elements;
    const type = method.value;
    const payload = {
      model: fields.model.value,
      training_file: fields.training_file.value,
      method: { type, [type]: { hyperparameters: hyperparameters(form, type) } },
    };
    if (fields.validation_file.value) payload.validation_file = fields.validation_file.value;
    if (fields.suffix.value.trim()) payload.suffix = fields.suffix.value.trim();
    if (fields.seed.value.trim()) payload.seed = Number(fields.seed.value);
    await reporting(problem, async () => {
      const job = await api("/v1/fine_tuning/jobs", { method: "POST", json: payload });
      location.hash = `#/fine-tuning/${encodeURIComponent(job.id)}`;
    });
  });

  const list = el("div");
  let timer = null;
  async function refresh() {
    const jobs = (await api("/v1/fine_tuning/jobs?limit=100")).data;
    const rows = jobs.map((job) =>
      el(
        "tr",
        { "data-job": job.id },
        el("td", { class: "id" }, el("a", { href: `#/fine-tuning/${encodeURIComponent(job.id)}` }, job.id)),
        el("td", { class: "id" }, job.model),
        el("td", {}, statusPill(job.status)),
        el("td", { class: "id" }, job.fine_tuned_model || ""),
        el("td", {}, when(job.created_at)),
      ),
    );
    list.replaceChildren(table(["Job", "Model", "Status", "Fine-tuned model", "Created"], rows, "No jobs yet."));
    if (jobs.some((job) => ACTIVE.includes(job.status))) timer = setTimeout(poll, REFRESH_MS);
  }
  function poll() {
    refresh().catch((error) => list.replaceChildren(errorBox(error)));
  }

  view.append(el("h1", {}, "Fine-tuning"), form, el("h2", {}, "Jobs"), list);
  await refresh();
  return () => clearTimeout(timer);
}
