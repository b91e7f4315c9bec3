// Files: upload with progress, list, preview the first lines, delete; a training file's problems show as
// soon as it is uploaded (the platform checks fine-tune files at upload), before any job is created.

import { api, firstLines, uploadFile } from "../api.js";
import { bytes, el, errorBox, reporting, statusPill, table, when } from "../dom.js";

const PURPOSES = ["fine-tune", "assistants", "batch", "user_data", "evals", "vision"];

export async function render(view) {
  const problem = el("div");
  const list = el("div");
  const picker = el("input", { type: "file", name: "file", required: true });
  const purpose = el("select", { name: "purpose" }, PURPOSES.map((p) => el("option", { value: p }, p)));
  const progress = el("progress", { max: 1, value: 0, hidden: true });
  const outcome = el("div", { class: "outcome" });
  const submit = el("button", { type: "submit" }, "Upload");

  async function refresh() {
    const files = (await api("/v1/files?limit=200")).data;
    const rows = files.map((file) => {
      const preview = el("tr", { class: "preview", hidden: true }, el("td", { colspan: 7 }, el("pre", {}, "")));
      const row = el(
        "tr",
        { "data-file": file.id },
        el("td", { class: "id" }, file.id),
        el("td", {}, file.filename),
        el("td", {}, file.purpose),
        el("td", {}, bytes(file.bytes)),
        el("td", {}, when(file.created_at)),
        el("td", {}, statusPill(file.status), file.status_details ? el("p", { class: "error small" }, file.status_details) : null),
        el(
          "td",
          { class: "actions" },
          el("button", { class: "secondary small", onclick: () => togglePreview(file.id, preview) }, "Preview"),
          el("button", { class: "danger small", onclick: () => removeFile(file.id) }, "Delete"),
        ),
      );
      return [row, preview];
    });
    list.replaceChildren(table(["File", "Name", "Purpose", "Size", "Created", "Status", ""], rows.flat(), "No files yet."));
  }

  async function togglePreview(id, row) {
    row.hidden = !row.hidden;
    if (row.hidden) return;
    const pre = row.querySelector("pre");
    try {
      pre.textContent = (await firstLines(id)).join("\n") || "(empty)";
    } catch (error) {
      pre.textContent = error.message;
    }
  }

  async function removeFile(id) {
    if (!confirm(`Delete ${id}?`)) return;
    await reporting(problem, async () => {
      await api(`/v1/files/${encodeURIComponent(id)}`, { method: "DELETE" });
      await refresh();
    });
  }

  async function upload(event) {
    event.preventDefault();
    const file = picker.files[0];
    if (!file) return;
    submit.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    outcome.replaceChildren();
    try {
      const uploaded = await uploadFile(file, purpose.value, (done) => (progress.value = done));
      progress.value = 1;
      outcome.replaceChildren(
        uploaded.status === "error"
          ? el("p", { class: "error", role: "alert" }, `${uploaded.filename} can't be used to fine-tune: ${uploaded.status_details}`)
          : el("p", { class: "ok" }, `Uploaded ${uploaded.filename} as ${uploaded.id}.`),
      );
      form.reset();
      await refresh();
    } catch (error) {
      outcome.replaceChildren(errorBox(error));
    } finally {
      submit.disabled = false;
    }
  }

  const form = el(
    "form",
    { class: "upload card", onsubmit: upload },
    el("label", {}, "File", picker),
    el("label", {}, "Purpose", purpose),
    el("div", { class: "actions" }, submit, progress),
    outcome,
  );
  view.append(el("h1", {}, "Files"), form, problem, list);
  await refresh();
}
