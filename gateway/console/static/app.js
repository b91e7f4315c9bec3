// The console's shell: sign-in, the navigation and a hash router; each page is a module under pages/.

import { ApiError, api, session } from "./api.js";
import { el, errorBox } from "./dom.js";

const PAGES = {
  playground: () => import("./pages/playground.js"),
  models: () => import("./pages/models.js"),
  files: () => import("./pages/files.js"),
  "fine-tuning": () => import("./pages/fine_tuning.js"),
  job: () => import("./pages/job.js"),
  api: () => import("./pages/api_reference.js"),
};

const main = document.getElementById("main");
let leavePage = null;

// "#/fine-tuning/ftjob-1?x=y" -> {page: "job", id: "ftjob-1", params: URLSearchParams}
function route() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const [first, ...rest] = path.split("/").map(decodeURIComponent);
  const id = rest.join("/") || null;
  const page = first === "fine-tuning" && id ? "job" : PAGES[first] ? first : "playground";
  return { page, id, params: new URLSearchParams(query || "") };
}

async function show() {
  if (leavePage) leavePage();
  leavePage = null;
  const { page, id, params } = route();
  for (const link of document.querySelectorAll("#nav a")) {
    const target = link.getAttribute("href").slice(2);
    link.classList.toggle("active", target === page || (page === "job" && target === "fine-tuning"));
  }
  main.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  try {
    const module = await PAGES[page]();
    const view = el("section", { class: `page ${page}` });
    leavePage = (await module.render(view, { id, params })) || null;
    main.replaceChildren(view);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return signIn(error.message);
    main.replaceChildren(errorBox(error));
  }
}

function signedIn(open) {
  document.getElementById("nav").hidden = false;
  document.getElementById("who").textContent = open ? "open platform" : `key ${session.key.slice(0, 6)}…`;
  document.getElementById("sign-out").hidden = open;
  window.addEventListener("hashchange", show);
  show();
}

function signIn(message) {
  window.removeEventListener("hashchange", show);
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  const key = el("input", { type: "password", name: "key", placeholder: "sk-…", autocomplete: "off", required: true });
  const problem = el("p", { class: "error", role: "alert", hidden: !message }, message || "");
  const form = el(
    "form",
    { class: "sign-in card" },
    el("h1", {}, "Sign in"),
    el("p", { class: "muted" }, "This platform needs an API key. It stays in this browser tab only."),
    el("label", {}, "API key", key),
    problem,
    el("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    session.key = key.value.trim();
    try {
      await api("/v1/models");
      signedIn(false);
    } catch (error) {
      session.key = "";
      problem.textContent = error.message;
      problem.hidden = false;
    }
  });
  main.replaceChildren(form);
  key.focus();
}

document.getElementById("sign-out").addEventListener("click", () => {
  session.key = "";
  if (leavePage) leavePage();
  leavePage = null;
  signIn();
});

// An open platform answers without a key; a stored key is checked once per load.
(async () => {
  try {
    await api("/v1/models");
    signedIn(!session.key);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      const hadKey = Boolean(session.key);
      session.key = "";
      signIn(hadKey ? error.message : "");
    } else main.replaceChildren(errorBox(error));
  }
})();
