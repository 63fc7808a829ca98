// promptlane's web UI: the editor's live preview, and a run's progress. No framework, no network but this server.
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function element(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function setupPreview(editor) {
  const variables = document.getElementById("variables");
  const inputs = document.getElementById("variable-inputs");
  const output = document.getElementById("preview-output");
  const problem = document.getElementById("preview-error");
  let timer = null;
  let sequence = 0;

  function ensureInputs(list) {
    for (const variable of list) {
      const name = "var." + variable.name;
      if (variables.elements.namedItem(name)) continue;
      const label = element("label", {}, variable.name + " (" + variable.type + ") ");
      const placeholder = variable.default === "null" ? "" : "default " + variable.default;
      label.appendChild(element("input", { name: name, placeholder: placeholder, "data-variable": variable.name }));
      inputs.appendChild(label);
    }
  }

  function showMessages(messages) {
    output.replaceChildren();
    for (const message of messages) {
      const box = element("div", { class: "rendered " + message.role });
      box.appendChild(element("div", { class: "role" }, message.role));
      box.appendChild(element("pre", {}, message.content));
      output.appendChild(box);
    }
  }

  function markField(field, text) {
    for (const marked of editor.querySelectorAll(".has-error")) marked.classList.remove("has-error");
    problem.hidden = !text;
    problem.textContent = text || "";
    if (field) {
      const input = editor.elements.namedItem(field);
      if (input && input.classList) input.classList.add("has-error");
    }
  }

  async function refresh() {
    const mine = ++sequence;
    const body = new FormData(editor);
    for (const [key, value] of new FormData(variables)) body.append(key, value);
    const response = await fetch(editor.dataset.preview, {
      method: "POST",
      body: body,
      headers: { "X-CSRF-Token": csrfToken() },
      credentials: "same-origin",
    });
    if (mine !== sequence) return; // a newer preview is on its way
    if (!response.ok) {
      markField(null, "preview failed: " + response.status);
      return;
    }
    const answer = await response.json();
    if (answer.variables) ensureInputs(answer.variables);
    if (answer.error) {
      const where = answer.line ? "line " + answer.line + ": " : "";
      markField(answer.field, (answer.label ? answer.label + ", " : "") + where + answer.error);
      if (!answer.missing) output.replaceChildren();
      return;
    }
    markField(null, "");
    showMessages(answer.messages);
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  }
  variables.addEventListener("submit", (event) => event.preventDefault()); // the variables only feed the preview
  editor.addEventListener("input", later);
  variables.addEventListener("input", later);
  refresh();
}

function setupProgress(box) {
  async function poll() {
    const response = await fetch(box.dataset.progress, { credentials: "same-origin" });
    if (!response.ok) return;
    const state = await response.json();
    const bar = box.querySelector("progress");
    bar.max = Math.max(state.total, 1);
    bar.value = state.done;
    box.querySelector(".count").textContent = state.done + " / " + state.total + " cases";
    if (state.finished) window.location.reload();
    else setTimeout(poll, 400);
  }
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  const editor = document.getElementById("editor");
  if (editor) setupPreview(editor);
  const progress = document.querySelector("[data-progress]");
  if (progress) setupProgress(progress);
});
