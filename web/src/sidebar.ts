/**
 * The conversation list: grouped by day, searchable by title, paged with the API's
 * cursor; each entry can be renamed in place or deleted (with an in-place confirm).
 */

import { type Api, ApiError, type Conversation } from "./api";
import { byId, dayGroup, h, icon, timeLabel, toMillis } from "./dom";

export interface SidebarEvents {
  select(id: string): void;
  deleted(id: string): void;
  renamed(conversation: Conversation): void;
  error(err: unknown): void;
}

export class Sidebar {
  private readonly nav = byId("conv-list");
  private readonly search = byId<HTMLInputElement>("search");
  private items: Conversation[] = [];
  private cursor: string | null = null;
  private query = "";
  private selected: string | null = null;
  private loading = 0;
  private searchTimer = 0;
  /** False when the server has no conversation store (404 on the list). */
  available = true;

  constructor(
    private readonly api: Api,
    private readonly events: SidebarEvents,
  ) {
    this.search.addEventListener("input", () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = window.setTimeout(() => {
        this.query = this.search.value.trim();
        void this.reload();
      }, 200);
    });
  }

  setSelected(id: string | null): void {
    this.selected = id;
    for (const link of this.nav.querySelectorAll<HTMLAnchorElement>("a.conv")) {
      if (link.dataset.id === id) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  find(id: string): Conversation | undefined {
    return this.items.find((c) => c.id === id);
  }

  /** Load the first page again (after a send, a rename elsewhere, a search). */
  async reload(): Promise<void> {
    const ticket = ++this.loading;
    try {
      const page = await this.api.conversations({ q: this.query });
      if (ticket !== this.loading) return; // a newer search won
      this.available = true;
      this.items = page.data;
      this.cursor = page.next_cursor;
      this.render();
    } catch (err) {
      if (ticket !== this.loading) return;
      if (err instanceof ApiError && err.status === 404) {
        this.available = false;
        this.items = [];
        this.cursor = null;
        this.render();
        return;
      }
      this.events.error(err);
    }
  }

  private async loadMore(): Promise<void> {
    if (!this.cursor) return;
    try {
      const page = await this.api.conversations({ q: this.query, cursor: this.cursor });
      const known = new Set(this.items.map((c) => c.id));
      this.items.push(...page.data.filter((c) => !known.has(c.id)));
      this.cursor = page.next_cursor;
      this.render();
    } catch (err) {
      this.events.error(err);
    }
  }

  private render(): void {
    const focused = document.activeElement;
    const refocus = focused instanceof HTMLElement && this.nav.contains(focused) ? focused.dataset.id : undefined;
    this.nav.replaceChildren();
    if (!this.available) {
      this.nav.append(h("p", { class: "conv-list__empty" }, "History isn't kept by this server."));
      return;
    }
    if (this.items.length === 0) {
      this.nav.append(
        h("p", { class: "conv-list__empty" }, this.query ? `No chats match “${this.query}”.` : "No chats yet."),
      );
      return;
    }
    let group = "";
    let list: HTMLUListElement | null = null;
    for (const conversation of this.items) {
      const label = dayGroup(toMillis(conversation.updated_at));
      if (label !== group || !list) {
        group = label;
        list = h("ul", { class: "conv-group", "aria-label": label });
        this.nav.append(h("h3", { class: "conv-group__title" }, label), list);
      }
      list.append(this.item(conversation));
    }
    if (this.cursor) {
      const more = h("button", { type: "button", class: "btn btn--ghost conv-list__more" }, "Load more");
      more.addEventListener("click", () => void this.loadMore());
      this.nav.append(more);
    }
    if (refocus) this.nav.querySelector<HTMLElement>(`a.conv[data-id="${CSS.escape(refocus)}"]`)?.focus();
  }

  private item(conversation: Conversation): HTMLLIElement {
    const title = conversation.title?.trim() || "New chat";
    const link = h(
      "a",
      {
        class: "conv",
        href: `#/c/${encodeURIComponent(conversation.id)}`,
        "data-id": conversation.id,
        "aria-current": conversation.id === this.selected ? "page" : undefined,
        title,
      },
      h("span", { class: "conv__title" }, title),
      h("span", { class: "conv__time" }, timeLabel(toMillis(conversation.updated_at))),
    );
    link.addEventListener("click", (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey) return; // a new tab is fine
      event.preventDefault();
      this.events.select(conversation.id);
    });
    const rename = h("button", { type: "button", class: "icon-btn icon-btn--small", "aria-label": `Rename “${title}”` }, icon("edit"));
    const remove = h("button", { type: "button", class: "icon-btn icon-btn--small", "aria-label": `Delete “${title}”` }, icon("trash"));
    const li = h("li", { class: "conv-item" }, link, h("div", { class: "conv__actions" }, rename, remove));
    rename.addEventListener("click", () => this.startRename(li, conversation));
    remove.addEventListener("click", () => this.confirmDelete(li, conversation));
    return li;
  }

  private startRename(li: HTMLLIElement, conversation: Conversation): void {
    const input = h("input", {
      class: "conv__rename",
      type: "text",
      "aria-label": "New title",
      maxlength: "200",
    });
    input.value = conversation.title ?? "";
    li.replaceChildren(input);
    li.classList.add("is-editing");
    input.focus();
    input.select();
    let settled = false;
    const finish = async (save: boolean) => {
      if (settled) return;
      settled = true;
      const title = input.value.trim();
      if (save && title && title !== conversation.title) {
        try {
          const updated = await this.api.renameConversation(conversation.id, title);
          Object.assign(conversation, { title: updated?.title ?? title });
          this.events.renamed(conversation);
        } catch (err) {
          this.events.error(err);
        }
      }
      this.render();
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") void finish(true);
      else if (event.key === "Escape") void finish(false);
    });
    input.addEventListener("blur", () => void finish(true));
  }

  private confirmDelete(li: HTMLLIElement, conversation: Conversation): void {
    const yes = h("button", { type: "button", class: "btn btn--danger btn--small" }, "Delete");
    const no = h("button", { type: "button", class: "btn btn--small" }, "Cancel");
    li.replaceChildren(
      h(
        "div",
        { class: "conv__confirm", role: "group", "aria-label": "Confirm delete" },
        h("span", {}, "Delete this chat?"),
        h("span", { class: "conv__confirm-actions" }, no, yes),
      ),
    );
    li.classList.add("is-confirming");
    no.focus();
    no.addEventListener("click", () => this.render());
    li.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.render();
    });
    yes.addEventListener("click", async () => {
      try {
        await this.api.deleteConversation(conversation.id);
        this.items = this.items.filter((c) => c.id !== conversation.id);
        this.events.deleted(conversation.id);
      } catch (err) {
        this.events.error(err);
      }
      this.render();
    });
  }
}
