/**
 * The message list: user bubbles, assistant answers that re-render as they stream,
 * and the scroll behaviour (follow the answer until the user scrolls up; a "jump to
 * latest" button brings it back).
 *
 * An answer re-renders at most once per animation frame however fast tokens come, so a
 * fast model does not make the page stutter.
 */

import { type Answer, metaParts, type Source, structured, TERMINAL } from "./answer";
import { byId, h, icon } from "./dom";
import { patchChildren, renderMarkdown } from "./markdown";
import { PartsView } from "./parts";
import { linkCitations, openSource, renderSources } from "./sources";
import type { LiveGeneration } from "./stream";

const NEAR_BOTTOM_PX = 48;
let views = 0; // numbers each answer view, for its source chips' element ids

const BADGES: Partial<Record<Answer["status"], string>> = {
  stopped: "Stopped",
  interrupted: "Interrupted",
  error: "Error",
};

export class AssistantView {
  readonly el: HTMLElement;
  private readonly content: HTMLElement;
  private readonly typing: HTMLElement;
  private readonly typingLabel: HTMLElement;
  private readonly notice: HTMLElement;
  private readonly badge: HTMLElement;
  private readonly meta: HTMLElement;
  private readonly sources: HTMLElement;
  private readonly key = `a${++views}`;
  private renderedText: string | null = null;
  private renderedSources: readonly Source[] | null = null;
  private parts: PartsView | null = null;
  private frame = 0;
  private timer = 0;
  private readonly unsubscribe: () => void;

  constructor(
    readonly answer: Answer,
    readonly live: LiveGeneration | null,
    private readonly thread: Thread,
  ) {
    this.content = h("div", { class: "msg__content markdown" });
    this.typingLabel = h("span", { class: "typing__label" });
    this.typing = h(
      "div",
      { class: "typing", "aria-hidden": "true" },
      h("span", { class: "typing__dot" }),
      h("span", { class: "typing__dot" }),
      h("span", { class: "typing__dot" }),
      this.typingLabel,
    );
    this.notice = h("div", { class: "msg__notice", role: "status" });
    this.badge = h("span", { class: "badge" });
    this.meta = h("span", { class: "msg__meta" });
    this.sources = h("div", { class: "msg__sources" });
    this.el = h(
      "article",
      { class: "msg msg--assistant", "aria-label": "Assistant" },
      h("div", { class: "msg__avatar", "aria-hidden": "true" }, icon("spark")),
      h(
        "div",
        { class: "msg__body" },
        this.content,
        this.typing,
        this.sources,
        this.notice,
        h("div", { class: "msg__foot" }, this.badge, this.meta),
      ),
    );
    this.unsubscribe = live ? live.subscribe(() => this.schedule()) : () => undefined;
    this.render();
  }

  schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
      this.thread.followIfPinned();
    });
  }

  destroy(): void {
    this.unsubscribe();
    cancelAnimationFrame(this.frame);
    clearTimeout(this.timer);
  }

  private render(): void {
    const a = this.answer;
    const finished = TERMINAL.has(a.status);
    const stopping = this.live?.stopping && !finished;
    this.el.dataset.status = a.status;
    if (a.generationId) this.el.dataset.generationId = a.generationId;
    this.el.setAttribute("aria-busy", String(!finished));
    // With streaming off, nothing shows until the whole answer is there.
    const show = finished || this.thread.streamVisible();
    const visible = show ? a.text : "";
    const rich = structured(a);
    const sourcesChanged = a.sources !== this.renderedSources;
    if (rich && show) {
      // tool calls inline with their progress, or a team's messages: part by part
      if (!this.parts) {
        this.parts = new PartsView();
        this.content.replaceChildren(this.parts.el);
        this.renderedText = null;
      }
      this.parts.render(a.parts);
    } else if (visible !== this.renderedText || sourcesChanged) {
      this.parts = null;
      const fragment = renderMarkdown(visible);
      linkCitations(fragment, new Map(a.sources.map((s) => [s.number, s])), this.chipId);
      patchChildren(this.content, fragment);
      this.renderedText = visible;
    }
    if (sourcesChanged) {
      this.sources.replaceChildren(...(a.sources.length ? [renderSources(a.sources, this.chipId)] : []));
      this.renderedSources = a.sources;
    }
    this.el.classList.toggle("is-streaming", !finished && (visible !== "" || (rich && show)));
    this.el.classList.toggle("msg--team", a.parts.some((p) => p.kind === "text" && p.speaker !== null));

    const waiting = !finished && visible === "" && !(rich && show);
    this.typing.hidden = !waiting;
    this.typingLabel.textContent = stopping
      ? "Stopping…"
      : a.status === "queued"
        ? `Waiting in queue${a.queuePosition ? ` (position ${a.queuePosition})` : ""}…`
        : (a.progress ?? "");

    this.renderNotice();

    const badge = BADGES[a.status];
    this.badge.hidden = !badge;
    this.badge.textContent = badge ?? "";
    this.badge.className = `badge badge--${a.status}`;
    if (a.status === "error" && a.error) this.badge.title = a.error.message;
    const parts = waiting ? [] : metaParts(a, Date.now());
    this.meta.textContent = parts.join(" · ");
    this.meta.hidden = parts.length === 0;
  }

  private readonly chipId = (n: number): string => `${this.key}-source-${n}`;

  private renderNotice(): void {
    const a = this.answer;
    const live = this.live;
    this.notice.replaceChildren();
    this.notice.className = "msg__notice";
    clearTimeout(this.timer);
    if (a.status === "error" && a.error) {
      this.notice.classList.add("msg__notice--error");
      this.notice.append(icon("alert"), h("span", {}, a.error.message));
      return;
    }
    if (a.status === "interrupted") {
      this.notice.append(h("span", {}, "The answer was cut off before it finished."));
      return;
    }
    if (a.warning) {
      this.notice.classList.add("msg__notice--warn");
      this.notice.append(icon("alert"), h("span", {}, a.warning));
      return;
    }
    if (!live || live.done || live.connection === "live") return;
    this.notice.classList.add("msg__notice--warn");
    const seconds = live.retryAt ? Math.max(0, Math.ceil((live.retryAt - Date.now()) / 1000)) : 0;
    const text =
      live.connection === "offline"
        ? `Can't reach the server.${seconds ? ` Trying again in ${seconds} s.` : " Trying again…"}`
        : "Connection lost — reconnecting…";
    const retry = h("button", { type: "button", class: "btn btn--small", "data-action": "retry" }, icon("refresh"), "Retry now");
    retry.addEventListener("click", () => live.retryNow());
    this.notice.append(icon("alert"), h("span", {}, text), retry);
    if (live.connection === "offline") this.timer = window.setTimeout(() => this.schedule(), 1000);
  }
}

export class Thread {
  private readonly root = byId("thread");
  private readonly list = byId("messages");
  private readonly empty = byId("empty");
  private readonly jump = byId<HTMLButtonElement>("jump");
  private views: AssistantView[] = [];
  private pinned = true;

  constructor(readonly streamVisible: () => boolean) {
    this.root.addEventListener("scroll", () => this.onScroll(), { passive: true });
    this.jump.addEventListener("click", () => {
      this.pinned = true;
      this.root.scrollTo({ top: this.root.scrollHeight, behavior: "smooth" });
      this.jump.hidden = true;
    });
    this.list.addEventListener("click", (event) => {
      const target = event.target as Element;
      const button = target.closest<HTMLButtonElement>(".copy-btn");
      if (button) void copyCode(button);
      const cite = target.closest<HTMLButtonElement>(".cite");
      if (cite) openSource(cite);
    });
  }

  clear(): void {
    for (const view of this.views) view.destroy();
    this.views = [];
    this.list.replaceChildren();
    this.pinned = true;
    this.jump.hidden = true;
    this.updateEmpty();
  }

  addUser(text: string): void {
    this.list.append(
      h("article", { class: "msg msg--user", "aria-label": "You" }, h("div", { class: "msg__bubble" }, text)),
    );
    this.updateEmpty();
  }

  addAssistant(answer: Answer, live: LiveGeneration | null): AssistantView {
    const view = new AssistantView(answer, live, this);
    this.views.push(view);
    this.list.append(view.el);
    this.updateEmpty();
    return view;
  }

  /** Re-render every answer (the stream toggle changed). */
  refresh(): void {
    for (const view of this.views) view.schedule();
  }

  scrollToEnd(): void {
    this.pinned = true;
    this.root.scrollTop = this.root.scrollHeight;
    this.jump.hidden = true;
  }

  /** After content grew: keep following the end unless the user scrolled away. */
  followIfPinned(): void {
    if (this.pinned) this.root.scrollTop = this.root.scrollHeight;
    else this.jump.hidden = false;
  }

  private onScroll(): void {
    const { scrollTop, scrollHeight, clientHeight } = this.root;
    this.pinned = scrollHeight - scrollTop - clientHeight < NEAR_BOTTOM_PX;
    this.jump.hidden = this.pinned;
  }

  private updateEmpty(): void {
    this.empty.hidden = this.list.childElementCount > 0;
  }
}

async function copyCode(button: HTMLButtonElement): Promise<void> {
  const code = button.closest(".code-block")?.querySelector("pre code");
  const text = code?.textContent ?? "";
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Not a secure context (plain http on a LAN address): the old way still works.
    const area = h("textarea", { class: "sr-only", readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.textContent = "Copied";
  button.classList.add("is-done");
  setTimeout(() => {
    button.textContent = "Copy";
    button.classList.remove("is-done");
  }, 1500);
}
