/**
 * An answer's sources: numbered chips under it that expand to the passage, and the
 * `[n]` citations in its text turned into buttons that open chip n.
 *
 * Citations are linked in the rendered (already sanitised) Markdown, in text nodes
 * only — never inside code, where `[1]` is an index — and only for numbers the answer
 * was given, so a stray `[7]` stays text. They are buttons, not `#fragment` links: the
 * page routes on the location hash.
 */

import type { Source } from "./answer";
import { h } from "./dom";

const CITATION = /\[(\d{1,3})\]/g;

/** Turn `[n]` in `root`'s text into citation buttons for the numbers in `known`. */
export function linkCitations(
  root: DocumentFragment | Element,
  known: ReadonlyMap<number, Source>,
  chipId: (n: number) => string,
): void {
  if (known.size === 0) return;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) =>
      node.parentElement?.closest("pre, code, a, button") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT,
  });
  const texts: Text[] = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) texts.push(node as Text);
  for (const node of texts) {
    const text = node.data;
    const parts: (Node | string)[] = [];
    let last = 0;
    for (const match of text.matchAll(CITATION)) {
      const n = Number(match[1]);
      const source = known.get(n);
      if (!source || match.index === undefined) continue;
      parts.push(text.slice(last, match.index), citation(source, chipId(n)));
      last = match.index + match[0].length;
    }
    if (parts.length === 0) continue;
    parts.push(text.slice(last));
    node.replaceWith(...parts.filter((part) => part !== ""));
  }
}

function citation(source: Source, chipId: string): HTMLButtonElement {
  return h(
    "button",
    {
      type: "button",
      class: "cite",
      "data-source": String(source.number),
      "aria-controls": chipId,
      title: source.title,
      "aria-label": `Source ${source.number}: ${source.title}`,
    },
    `[${source.number}]`,
  );
}

/** The chips: `<details>` that show the title and expand to the snippet and the path. */
export function renderSources(sources: readonly Source[], chipId: (n: number) => string): HTMLElement {
  return h(
    "section",
    { class: "sources", "aria-label": "Sources" },
    h("span", { class: "sources__label" }, "Sources"),
    ...sources.map((source) => chip(source, chipId(source.number))),
  );
}

function chip(source: Source, id: string): HTMLDetailsElement {
  return h(
    "details",
    { class: "source", id, "data-source": String(source.number) },
    h(
      "summary",
      { class: "source__head", title: source.source ?? source.title },
      h("span", { class: "source__number" }, String(source.number)),
      h("span", { class: "source__title" }, source.title),
    ),
    h(
      "div",
      { class: "source__body" },
      h("p", { class: "source__snippet" }, source.snippet),
      source.source ? h("p", { class: "source__path" }, source.source) : null,
      h("p", { class: "source__score" }, `relevance ${source.score.toFixed(3)}`),
    ),
  );
}

/** A citation was clicked: open its chip and bring it into view. */
export function openSource(button: HTMLElement): void {
  const id = button.getAttribute("aria-controls");
  const chip = id ? document.getElementById(id) : null;
  if (!(chip instanceof HTMLDetailsElement)) return;
  chip.open = true;
  chip.scrollIntoView({ block: "nearest", behavior: "smooth" });
  chip.querySelector("summary")?.focus({ preventScroll: true });
  chip.classList.remove("is-flashed");
  void chip.offsetWidth; // restart the highlight animation
  chip.classList.add("is-flashed");
}
