// The console's one way to the platform: the public OpenAI-compatible API, with the key kept in this
// browser tab's session storage only.

const KEY = "llm-platform-key";

export const session = {
  get key() {
    return sessionStorage.getItem(KEY) || "";
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || (typeof body === "string" && body) || `The platform answered ${status}.`);
    this.status = status;
    this.body = body;
  }
}

function headers(extra = {}) {
  return session.key ? { ...extra, Authorization: `Bearer ${session.key}` } : extra;
}

// An answer's body: its JSON, else its text (a proxy's error page, say).
function decode(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

async function parse(response) {
  return decode(await response.text());
}

export async function api(path, { method = "GET", json } = {}) {
  const init = { method, headers: headers(json === undefined ? {} : { "Content-Type": "application/json" }) };
  if (json !== undefined) init.body = JSON.stringify(json);
  const response = await fetch(path, init);
  const body = await parse(response);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// Server-sent events of a streamed chat completion, chunk by chunk.
export async function* streamChat(payload, signal) {
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify({ ...payload, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  if (!response.ok) throw new ApiError(response.status, await parse(response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of block.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(500, chunk);
        yield chunk;
      }
    }
  }
}

// fetch() reports no upload progress; XMLHttpRequest does.
export function uploadFile(file, purpose, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/v1/files");
    if (session.key) request.setRequestHeader("Authorization", `Bearer ${session.key}`);
    request.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
    request.onload = () => {
      const body = decode(request.responseText);
      if (request.status >= 200 && request.status < 300) resolve(body);
      else reject(new ApiError(request.status, body));
    };
    request.onerror = () => reject(new ApiError(0, "The upload failed: the platform could not be reached."));
    const form = new FormData();
    form.append("purpose", purpose);
    form.append("file", file);
    request.send(form);
  });
}

// The first lines of a file's content, reading no more of it than they need.
export async function firstLines(fileId, count = 20, maxBytes = 65536) {
  const response = await fetch(`/v1/files/${encodeURIComponent(fileId)}/content`, { headers: headers() });
  if (!response.ok) throw new ApiError(response.status, await parse(response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (text.split("\n").length <= count && text.length < maxBytes) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  reader.cancel().catch(() => {});
  return text.split("\n").slice(0, count);
}

export async function models() {
  return (await api("/v1/models")).data;
}
