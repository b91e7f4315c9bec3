// The OpenAPI document in Swagger UI, served by the platform (installed from npm by `make`); requests made
// from it carry the signed-in key.

import { session } from "../api.js";
import { el } from "../dom.js";

const VENDOR = "/console/vendor/swagger-ui";

function load(tag, attributes) {
  return new Promise((resolve, reject) => {
    if (document.querySelector(`[data-vendor="${attributes.src || attributes.href}"]`)) return resolve();
    const node = el(tag, { ...attributes, "data-vendor": attributes.src || attributes.href });
    node.addEventListener("load", resolve);
    node.addEventListener("error", () => reject(new Error(`Swagger UI is not installed: run \`make run\` (${attributes.src || attributes.href}).`)));
    document.head.append(node);
  });
}

export async function render(view) {
  const target = el("div", { id: "swagger" });
  view.append(
    el("h1", {}, "API"),
    el("p", { class: "muted" }, "Every route of this platform, from its OpenAPI document at ", el("a", { href: "/openapi.json" }, "/openapi.json"), ". “Try it out” sends requests with your key."),
    target,
  );
  await Promise.all([
    load("link", { rel: "stylesheet", href: `${VENDOR}/swagger-ui.css` }),
    load("script", { src: `${VENDOR}/swagger-ui-bundle.js` }),
  ]);
  window.SwaggerUIBundle({
    url: "/openapi.json",
    domNode: target,
    deepLinking: false,
    defaultModelsExpandDepth: -1, // the schemas stay reachable from each operation
    validatorUrl: null, // else Swagger UI asks validator.swagger.io about the document
    requestInterceptor: (request) => {
      if (session.key) request.headers.Authorization = `Bearer ${session.key}`;
      return request;
    },
  });
}
