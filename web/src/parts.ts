/**
 * An answer with more than plain text, rendered in order: its text, each server-side
 * tool call inline with its live progress (stage, a bar, what it has streamed) and its
 * result, and a team's answer as one section per member's message.
 *
 * `PartsView.render(parts)` updates the DOM in place, part by part, so a tool's
 * progress bar or a member's growing message changes without rebuilding the rest.
 */

import type { Part, TextPart, ToolPart } from "./answer";
import { h } from "./dom";
import { patchChildren, renderMarkdown } from "./markdown";

interface Rendered {
  el: HTMLElement;
  key: string;
  update: (part: Part) => void;
}

function keyOf(part: Part): string {
  return part.kind === "tool" ? `tool:${part.callId}` : `text:${part.speaker ?? ""}:${part.index ?? ""}`;
}

function textView(part: TextPart): Rendered {
  const body = h("div", { class: "part__body markdown" });
  let shown: string | null = null;
  let el: HTMLElement;
  if (part.speaker !== null) {
    const head = h(
      "header",
      { class: "team-msg__head" },
      h("span", { class: "team-msg__speaker" }, part.speaker),
      part.round !== null ? h("span", { class: "team-msg__round" }, `round ${part.round}`) : null,
      part.model ? h("span", { class: "team-msg__model" }, part.model) : null,
    );
    el = h("section", { class: "team-msg", "data-speaker": part.speaker }, head, body);
  } else {
    el = h("div", { class: "part part--text" }, body);
  }
  const update = (p: Part): void => {
    if (p.kind !== "text") return;
    if (p.text !== shown) {
      patchChildren(body, renderMarkdown(p.text));
      shown = p.text;
    }
    if (p.speaker !== null) el.dataset.done = String(p.done);
  };
  update(part);
  return { el, key: keyOf(part), update };
}

function toolView(part: ToolPart): Rendered {
  const stage = h("span", { class: "tool-call__stage" });
  const bar = h("progress", { class: "tool-call__bar", max: "100" });
  const output = h("pre", { class: "tool-call__output" });
  const result = h("div", { class: "tool-call__result" });
  const args = h("code", { class: "tool-call__args" });
  const el = h(
    "div",
    { class: "tool-call", "data-tool": part.name, role: "group", "aria-label": `Tool ${part.name}` },
    h("div", { class: "tool-call__head" }, h("span", { class: "tool-call__name" }, part.name), args),
    h("div", { class: "tool-call__progress" }, bar, stage),
    output,
    result,
  );
  const update = (p: Part): void => {
    if (p.kind !== "tool") return;
    args.textContent = p.arguments;
    const state = p.error !== null ? "failed" : p.result !== null ? "done" : "running";
    el.dataset.state = state;
    el.dataset.callId = p.callId;
    const words = [p.stage ?? (state === "running" ? "calling" : state), p.message ?? ""].filter(Boolean);
    if (p.percentage !== null && state === "running") words.push(`${Math.round(p.percentage)}%`);
    if (p.executionMs !== null) words.push(`${p.executionMs < 1000 ? Math.round(p.executionMs) + " ms" : (p.executionMs / 1000).toFixed(2) + " s"}`);
    stage.textContent = words.join(" · ");
    if (state === "running" && p.percentage === null) bar.removeAttribute("value");
    else bar.value = state === "running" ? (p.percentage ?? 0) : 100;
    output.textContent = p.output;
    output.hidden = p.output === "";
    result.textContent = p.error ?? p.result ?? "";
    result.hidden = p.error === null && p.result === null;
    result.classList.toggle("tool-call__result--error", p.error !== null);
  };
  update(part);
  return { el, key: keyOf(part), update };
}

export class PartsView {
  readonly el = h("div", { class: "parts" });
  private rendered: Rendered[] = [];

  render(parts: Part[]): void {
    parts.forEach((part, i) => {
      const current = this.rendered[i];
      if (current && current.key === keyOf(part)) {
        current.update(part);
        return;
      }
      const view = part.kind === "tool" ? toolView(part) : textView(part);
      if (current) current.el.replaceWith(view.el);
      else this.el.append(view.el);
      this.rendered[i] = view;
    });
    for (const extra of this.rendered.splice(parts.length)) extra.el.remove();
  }
}
