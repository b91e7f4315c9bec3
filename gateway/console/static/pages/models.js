// Every model the caller can use: the base models, adapters, fine-tuned models and their checkpoints.

import { api, models } from "../api.js";
import { el, reporting, table, when } from "../dom.js";

export function kindOf(model) {
  if (model.id.includes(":ckpt-step-")) return "checkpoint";
  if (model.id.startsWith("ft:")) return "fine-tuned";
  return model.parent ? "adapter" : "base";
}

// The playground on `model`, beside `compare` where given.
export function playgroundLink(model, compare) {
  const params = new URLSearchParams({ model });
  if (compare) params.set("compare", compare);
  return `#/playground?${params}`;
}

export async function render(view) {
  const problem = el("div");
  const list = el("div");

  async function refresh() {
    const rows = (await models()).map((model) => {
      const kind = kindOf(model);
      const remove =
        kind === "fine-tuned" || kind === "checkpoint"
          ? el("button", { class: "danger small", onclick: () => removeModel(model.id) }, "Delete")
          : null;
      return el(
        "tr",
        { "data-model": model.id },
        el("td", { class: "id" }, model.id),
        el("td", {}, kind),
        el("td", { class: "id" }, model.parent || ""),
        el("td", {}, model.owned_by),
        el("td", {}, when(model.created)),
        el("td", { class: "actions" }, el("a", { href: playgroundLink(model.id, model.parent), class: "button small" }, "Try"), remove),
      );
    });
    list.replaceChildren(table(["Model", "Kind", "Parent", "Owner", "Created", ""], rows));
  }

  async function removeModel(id) {
    if (!confirm(`Delete ${id}? Its weights go too, unless another model shares them.`)) return;
    await reporting(problem, async () => {
      await api(`/v1/models/${id.split("/").map(encodeURIComponent).join("/")}`, { method: "DELETE" });
      await refresh();
    });
  }

  view.append(el("h1", {}, "Models"), problem, list);
  await refresh();
}
