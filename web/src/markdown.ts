/**
 * The model's output as safe, highlighted HTML — re-rendered as it streams.
 *
 * The output is untrusted, so it is made inert twice over: marked renders any raw HTML
 * in the answer as visible text (an `<img onerror=…>` in an answer is shown, not
 * loaded), and DOMPurify sanitises what marked produced before it reaches the DOM. The
 * page's Content-Security-Policy (script-src 'self') is the third wall.
 *
 * Streaming: an unclosed ``` fence parses as a code block that runs to the end, so a
 * block grows in place; `patchChildren` swaps only the top-level blocks that changed,
 * so finished paragraphs are not rebuilt (a text selection in them survives).
 */

import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import css from "highlight.js/lib/languages/css";
import diff from "highlight.js/lib/languages/diff";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import plaintext from "highlight.js/lib/languages/plaintext";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import shell from "highlight.js/lib/languages/shell";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";
import { Marked, type Tokens } from "marked";

const LANGUAGES = {
  bash, c, cpp, css, diff, go, java, javascript, json, markdown, plaintext, python, rust,
  shell, sql, typescript, xml, yaml,
};
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);

export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

function highlight(code: string, lang: string): { html: string; language: string | null } {
  const language = lang && hljs.getLanguage(lang) ? lang : null;
  if (!language) return { html: escapeHtml(code), language: null };
  try {
    return { html: hljs.highlight(code, { language, ignoreIllegals: true }).value, language };
  } catch {
    return { html: escapeHtml(code), language: null };
  }
}

const marked = new Marked({
  gfm: true,
  breaks: false,
  async: false,
  renderer: {
    // Raw HTML in the model's answer is shown as text, never parsed as markup.
    html({ text, block }: Tokens.HTML | Tokens.Tag): string {
      const shown = escapeHtml(text);
      return block ? `<p class="raw-html">${shown.replace(/\n+$/, "")}</p>\n` : shown;
    },
    code({ text, lang }: Tokens.Code): string {
      const wanted = (lang ?? "").trim().split(/\s+/)[0]?.toLowerCase() ?? "";
      const { html, language } = highlight(text.replace(/\n$/, ""), wanted);
      const cls = language ? `hljs language-${language}` : "hljs";
      const label = escapeHtml(wanted || "text");
      return `<pre data-lang="${label}"><code class="${cls}">${html}</code></pre>\n`;
    },
    // Images from an answer would be fetched from wherever the model says: show a link.
    image({ href, text }: Tokens.Image): string {
      return `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`;
    },
  },
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node instanceof HTMLAnchorElement) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

const PURIFY = {
  FORBID_TAGS: ["style", "form", "button", "textarea", "select", "img", "video", "audio", "iframe"],
  FORBID_ATTR: ["style"],
};

/** Markdown text → sanitised HTML string. */
export function markdownToHtml(text: string): string {
  const raw = marked.parse(text) as string;
  return DOMPurify.sanitize(raw, PURIFY);
}

/** Markdown text → a sanitised fragment, code blocks wrapped with a language label and a copy button. */
export function renderMarkdown(text: string): DocumentFragment {
  const template = document.createElement("template");
  template.innerHTML = markdownToHtml(text);
  const fragment = template.content;
  for (const pre of Array.from(fragment.querySelectorAll("pre"))) {
    const wrapper = document.createElement("div");
    wrapper.className = "code-block";
    const bar = document.createElement("div");
    bar.className = "code-block__bar";
    const label = document.createElement("span");
    label.className = "code-block__lang";
    label.textContent = pre.dataset.lang ?? "text";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "copy-btn";
    copy.setAttribute("aria-label", "Copy code");
    copy.textContent = "Copy";
    bar.append(label, copy);
    pre.replaceWith(wrapper);
    wrapper.append(bar, pre);
  }
  return fragment;
}

/**
 * Make `container`'s children look like `fragment`'s, replacing only the top-level
 * nodes that differ (while streaming that is the last block or two).
 */
export function patchChildren(container: Element, fragment: DocumentFragment): void {
  const next = Array.from(fragment.childNodes).filter(
    (n) => n.nodeType !== Node.TEXT_NODE || (n.textContent ?? "").trim() !== "",
  );
  const current = Array.from(container.childNodes);
  next.forEach((node, i) => {
    const old = current[i];
    if (!old) container.appendChild(node);
    else if (!old.isEqualNode(node)) container.replaceChild(node, old);
  });
  for (let i = next.length; i < current.length; i++) current[i]?.remove();
}
