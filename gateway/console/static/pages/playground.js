// Chat with any model, streaming; with "compare", the same conversation goes to two models side by side.

import { models, streamChat } from "../api.js";
import { el, errorBox } from "../dom.js";

function modelSelect(name, ids, selected, allowNone) {
  const options = ids.map((id) => el("option", { value: id, selected: id === selected }, id));
  if (allowNone) options.unshift(el("option", { value: "", selected: !selected }, "— none —"));
  return el("select", { name }, options);
}

class Column {
  constructor(model) {
    this.model = model;
    this.history = [];
    this.log = el("div", { class: "transcript", "aria-live": "polite" });
    this.stats = el("p", { class: "muted stats" });
    this.node = el("div", { class: "column card", "data-model": model }, el("h2", {}, model), this.log, this.stats);
  }

  add(role, text) {
    const bubble = el("div", { class: `message ${role}` }, el("span", { class: "role" }, role), el("p", {}, text));
    this.log.append(bubble);
    return bubble.querySelector("p");
  }

  async reply(settings, signal) {
    const output = this.add("assistant", "");
    output.parentElement.classList.add("streaming");
    const started = performance.now();
    let text = "";
    let usage = null;
    let first = null;
    try {
      const messages = settings.system ? [{ role: "system", content: settings.system }, ...this.history] : this.history;
      const payload = { model: this.model, messages, temperature: settings.temperature, max_tokens: settings.maxTokens };
      for await (const chunk of streamChat(payload, signal)) {
        const delta = chunk.choices?.[0]?.delta?.content;
        if (delta) {
          first ??= performance.now();
          text += delta;
          output.textContent = text;
          this.log.scrollTop = this.log.scrollHeight;
        }
        if (chunk.usage) usage = chunk.usage;
      }
      this.history.push({ role: "assistant", content: text });
      const seconds = (performance.now() - started) / 1000;
      const tokens = usage?.completion_tokens ?? 0;
      this.stats.textContent =
        `${tokens} tokens in ${seconds.toFixed(1)} s` + (first ? ` · first token ${Math.round(first - started)} ms` : "");
    } catch (error) {
      this.history.pop(); // the user's turn that got no answer
      output.replaceWith(errorBox(signal.aborted ? "Stopped." : error));
    } finally {
      output.parentElement?.classList.remove("streaming");
    }
  }
}

export async function render(view, { params }) {
  const ids = (await models()).map((model) => model.id);
  const first = params.get("model") && ids.includes(params.get("model")) ? params.get("model") : ids[0];
  const compare = params.get("compare") && ids.includes(params.get("compare")) ? params.get("compare") : "";
  const modelA = modelSelect("model", ids, first, false);
  const modelB = modelSelect("compare", ids, compare, true);
  const system = el("textarea", { name: "system", rows: 2, placeholder: "You are a helpful assistant." });
  const temperature = el("input", { type: "number", name: "temperature", min: 0, max: 2, step: 0.1, value: "0.7" });
  const maxTokens = el("input", { type: "number", name: "max_tokens", min: 1, step: 1, value: "256" });
  const prompt = el("textarea", { name: "prompt", rows: 3, placeholder: "Send a message (Ctrl+Enter)", required: true });
  const send = el("button", { type: "submit" }, "Send");
  const stop = el("button", { type: "button", class: "secondary", disabled: true }, "Stop");
  const clear = el("button", { type: "button", class: "secondary" }, "New chat");
  const columns = el("div", { class: "columns" });
  let chats = [];
  let controller = null;

  function reset() {
    chats = [modelA.value, modelB.value].filter(Boolean).map((model) => new Column(model));
    columns.replaceChildren(...chats.map((chat) => chat.node));
    columns.classList.toggle("two", chats.length === 2);
  }

  async function submit(event) {
    event.preventDefault();
    const text = prompt.value.trim();
    if (!text || controller) return;
    prompt.value = "";
    controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    const settings = {
      system: system.value.trim(),
      temperature: Number(temperature.value),
      maxTokens: Number(maxTokens.value),
    };
    for (const chat of chats) {
      chat.history.push({ role: "user", content: text });
      chat.add("user", text);
    }
    await Promise.all(chats.map((chat) => chat.reply(settings, controller.signal)));
    controller = null;
    send.disabled = false;
    stop.disabled = true;
    prompt.focus();
  }

  modelA.addEventListener("change", reset);
  modelB.addEventListener("change", reset);
  clear.addEventListener("click", reset);
  stop.addEventListener("click", () => controller?.abort());
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
  const form = el(
    "form",
    { class: "chat-input", onsubmit: submit },
    prompt,
    el("div", { class: "actions" }, send, stop, clear),
  );
  view.append(
    el("h1", {}, "Playground"),
    el(
      "div",
      { class: "settings card" },
      el("label", {}, "Model", modelA),
      el("label", {}, "Compare with", modelB),
      el("label", { class: "wide" }, "System prompt", system),
      el("label", {}, "Temperature", temperature),
      el("label", {}, "Max tokens", maxTokens),
    ),
    columns,
    form,
  );
  reset();
  return () => controller?.abort();
}
