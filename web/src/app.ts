/**
 * The chat page's controller: wires the sidebar, the thread, the composer and the
 * pickers to the API, and owns which conversation is shown.
 *
 * Generations outlive the view: switching conversations mid-answer leaves the answer
 * streaming in the background (`running`), and coming back re-attaches to it. An answer
 * the server lists as "streaming" that this page did not start (a reload, another tab)
 * is followed from the server with `LiveGeneration.attach`.
 */

import { storedAnswer, storedResult } from "./answer";
import { Api, ApiError, type ConversationDetail, NetworkError, type StreamRequest, type TeamRequest } from "./api";
import { byId, icon } from "./dom";
import { prefs, type Theme } from "./prefs";
import { Sidebar } from "./sidebar";
import { LiveGeneration } from "./stream";
import { type AssistantView, Thread } from "./thread";

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const MAX_IMAGE_BYTES = 5 * 1024 * 1024; // the server's default max_image_bytes

type Turn = { role: "user" | "assistant"; content: string };

export class App {
  private readonly api = new Api(() => prefs.apiKey);
  private readonly thread = new Thread(() => prefs.stream);
  private readonly sidebar: Sidebar;
  /** Generations this page follows, by generation id (they continue off-screen). */
  private readonly running = new Map<string, LiveGeneration>();
  private conversationId: string | null = null;
  /** Bumped on every view change, so late async results for an old view are dropped. */
  private view = 0;
  /** Send was pressed before the first view was up: it is sent once the view is. */
  private sendWhenReady = false;
  private live: LiveGeneration | null = null;
  /** The transcript, for servers without a conversation store. */
  private turns: Turn[] = [];
  private authRequired = false;
  /** The server's tools, offered to the model when "Tools" is on. */
  private tools: string[] = [];
  /** Models that accept images (`/health`'s `supports_images`), and the images to send. */
  private imageModels = new Set<string>();
  private onlyModel: string | null = null;
  private images: string[] = [];

  private readonly el = {
    app: byId("app"),
    title: byId("title"),
    input: byId<HTMLTextAreaElement>("input"),
    composer: byId<HTMLFormElement>("composer"),
    send: byId<HTMLButtonElement>("send"),
    stop: byId<HTMLButtonElement>("stop"),
    streamToggle: byId<HTMLInputElement>("stream-toggle"),
    toolsToggle: byId<HTMLInputElement>("tools-toggle"),
    toolsSwitch: byId("tools-switch"),
    teamToggle: byId<HTMLInputElement>("team-toggle"),
    model: byId<HTMLSelectElement>("model"),
    modelPicker: byId("model-picker"),
    attach: byId<HTMLButtonElement>("attach"),
    imageInput: byId<HTMLInputElement>("image-input"),
    attachments: byId("attachments"),
    profile: byId<HTMLSelectElement>("profile"),
    profilePicker: byId("profile-picker"),
    collection: byId<HTMLSelectElement>("collection"),
    collectionPicker: byId("collection-picker"),
    banner: byId("banner"),
    bannerText: byId("banner-text"),
    bannerRetry: byId<HTMLButtonElement>("banner-retry"),
    status: byId("server-status"),
    statusText: byId("server-status-text"),
    themeToggle: byId<HTMLButtonElement>("theme-toggle"),
    settings: byId<HTMLDialogElement>("settings"),
    settingsForm: byId<HTMLFormElement>("settings-form"),
    apiKey: byId<HTMLInputElement>("api-key"),
    keyDialog: byId<HTMLDialogElement>("key-dialog"),
    keyInput: byId<HTMLInputElement>("key-input"),
    keyText: byId("key-text"),
    announcer: byId("announcer"),
    emptySub: byId("empty-sub"),
  };
  private bannerAction: (() => void) | null = null;

  constructor() {
    this.sidebar = new Sidebar(this.api, {
      select: (id) => this.navigate(id),
      deleted: (id) => {
        if (id === this.conversationId) this.navigate(null);
      },
      renamed: (c) => {
        if (c.id === this.conversationId) this.setTitle(c.title);
      },
      error: (err) => this.handleError(err),
    });
  }

  async start(): Promise<void> {
    this.applyTheme();
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.applyTheme());
    this.wireComposer();
    this.wireChrome();
    window.addEventListener("hashchange", () => void this.route());
    await this.connect();
  }

  // ── connecting ──────────────────────────────────────────────────────────

  private async connect(): Promise<void> {
    this.setStatus("connecting");
    try {
      const health = await this.api.health();
      this.authRequired = health.auth_required;
    } catch {
      this.setStatus("offline");
      this.showBanner(`Can't reach the lmstream server at ${location.host}. Is it running?`, () => void this.connect());
      return;
    }
    this.hideBanner();
    byId("key-field").hidden = !this.authRequired && !prefs.apiKey;
    if (this.authRequired && !prefs.apiKey) {
      this.setStatus("online");
      this.askForKey();
      return;
    }
    try {
      await Promise.all([this.loadModels(), this.loadProfiles(), this.loadCollections(), this.loadTools(), this.sidebar.reload()]);
    } catch (err) {
      this.setStatus("online");
      this.handleError(err);
      return;
    }
    await this.route();
    // "online" once the first view is up: a message sent before it would be cleared by
    // that first route (seen: a browser test typed between the model list and the route).
    // A Send pressed meanwhile was kept; it goes now, into that view.
    this.setStatus("online");
    if (this.sendWhenReady) {
      this.sendWhenReady = false;
      this.send();
    }
  }

  private async loadModels(): Promise<void> {
    const [models, health] = await Promise.all([this.api.models(), this.api.health()]);
    const listed = health.models ?? [];
    this.imageModels = new Set(listed.filter((m) => m.supports_images).map((m) => m.name));
    this.onlyModel = listed.length === 1 ? (listed[0]?.name ?? null) : null;
    this.updateAttach();
    const select = this.el.model;
    select.replaceChildren();
    if (models.length !== 1) select.append(new Option("Default", ""));
    for (const id of models) select.append(new Option(id, id));
    select.value = models.includes(prefs.model) ? prefs.model : (select.options[0]?.value ?? "");
    this.el.modelPicker.hidden = models.length === 0;
    this.el.emptySub.textContent =
      models.length === 1 ? `Chatting with ${models[0]}. Answers stream in as it writes them.` : "Answers stream in as the model writes them.";
  }

  private async loadTools(): Promise<void> {
    try {
      this.tools = (await this.api.tools()).map((t) => t.name);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
      this.tools = []; // this server has no tools
    }
    this.el.toolsSwitch.hidden = this.tools.length === 0;
  }

  private async loadProfiles(): Promise<void> {
    let body;
    try {
      body = await this.api.profiles();
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        this.el.profilePicker.hidden = true; // this server has no profiles
        return;
      }
      throw err;
    }
    const select = this.el.profile;
    select.replaceChildren();
    if (!body.default) select.append(new Option("No profile", ""));
    for (const profile of body.data) {
      const option = new Option(profile.name, profile.name);
      if (profile.description) option.title = profile.description;
      select.append(option);
    }
    const names = body.data.map((p) => p.name);
    const saved = prefs.profile;
    select.value = saved !== null && (saved === "" || names.includes(saved)) ? saved : (body.default ?? "");
    this.el.profilePicker.hidden = body.data.length === 0;
  }

  /** The "Documents" picker: shown when the server has collections. */
  private async loadCollections(): Promise<void> {
    let collections;
    try {
      collections = await this.api.collections();
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        this.el.collectionPicker.hidden = true; // documents are off on this server
        return;
      }
      throw err;
    }
    const select = this.el.collection;
    select.replaceChildren(new Option("None", ""));
    for (const collection of collections) {
      const option = new Option(collection.name, collection.name);
      const count = `${collection.document_count} document${collection.document_count === 1 ? "" : "s"}`;
      option.title = collection.description ? `${collection.description} (${count})` : count;
      select.append(option);
    }
    const names = collections.map((c) => c.name);
    select.value = names.includes(prefs.collection) ? prefs.collection : "";
    this.el.collectionPicker.hidden = collections.length === 0;
  }

  // ── navigation ──────────────────────────────────────────────────────────

  private navigate(id: string | null): void {
    const hash = id ? `#/c/${encodeURIComponent(id)}` : "";
    if (location.hash === hash || (!id && !location.hash)) void this.route();
    else if (id) location.hash = hash;
    else {
      history.pushState(null, "", location.pathname + location.search);
      void this.route();
    }
    this.closeSidebar();
  }

  private async route(): Promise<void> {
    const match = /^#\/c\/(.+)$/.exec(location.hash);
    const id = match ? decodeURIComponent(match[1] as string) : null;
    if (id && id === this.conversationId && this.view > 0) return;
    if (id) await this.openConversation(id);
    else this.newChat();
  }

  private newChat(): void {
    this.view += 1;
    this.conversationId = null;
    this.turns = [];
    this.live = null;
    this.thread.clear();
    this.sidebar.setSelected(null);
    this.setTitle(null);
    this.updateComposer();
    this.el.input.focus();
  }

  private async openConversation(id: string): Promise<void> {
    const view = ++this.view;
    this.conversationId = id;
    this.turns = [];
    this.live = null;
    this.thread.clear();
    this.sidebar.setSelected(id);
    this.setTitle(this.sidebar.find(id)?.title ?? null);
    this.updateComposer();
    let detail: ConversationDetail;
    try {
      detail = await this.api.conversation(id);
    } catch (err) {
      if (view !== this.view) return;
      if (err instanceof ApiError && err.status === 404) {
        this.showBanner("That conversation no longer exists.", null);
        this.navigate(null);
        return;
      }
      this.handleError(err);
      return;
    }
    if (view !== this.view) return;
    this.setTitle(detail.title);
    if (detail.model && [...this.el.model.options].some((o) => o.value === detail.model)) {
      this.el.model.value = detail.model;
    }
    if (detail.profile && [...this.el.profile.options].some((o) => o.value === detail.profile)) {
      this.el.profile.value = detail.profile;
    }
    let calls: AssistantView | null = null; // the last answer that called tools
    for (const message of detail.messages) {
      if (message.role === "user") {
        this.thread.addUser(message.content);
      } else if (message.role === "tool") {
        // a tool's result goes inline, into the answer whose call it answers
        const error = typeof message.error === "string" ? message.error : (message.error?.message ?? null);
        if (calls && message.tool_call_id && storedResult(calls.answer, message.tool_call_id, message.content, error)) {
          calls.schedule();
        }
      } else if (message.role === "assistant") {
        if (message.status === "streaming" && message.generation_id) {
          const live = this.follow(message.generation_id, message.model);
          this.thread.addAssistant(live.answer, live);
          this.live = live;
        } else {
          const view = this.thread.addAssistant(storedAnswer(message), null);
          if (message.tool_calls?.length) calls = view;
        }
      }
    }
    this.thread.scrollToEnd();
    this.updateComposer();
  }

  /** The running generation with this id: ours if we have it, else followed from the server. */
  private follow(generationId: string, model: string | null): LiveGeneration {
    const known = this.running.get(generationId);
    if (known) return known;
    const live = LiveGeneration.attach(this.api, generationId, model);
    this.track(live);
    void live.finished.then(() => this.sidebar.reload());
    return live;
  }

  private track(live: LiveGeneration): void {
    let registered = false;
    const unsubscribe = live.subscribe(() => {
      if (!registered && live.id) {
        registered = true;
        this.running.set(live.id, live);
      }
    });
    void live.finished.then(() => {
      unsubscribe();
      if (live.id) this.running.delete(live.id);
      if (live === this.live) this.updateComposer();
      const error = live.answer.error;
      if (live.answer.status === "error" && error?.code === "unauthorized") this.askForKey(error.message);
    });
  }

  // ── sending and stopping ────────────────────────────────────────────────

  private send(): void {
    const text = this.el.input.value.trim();
    if (!text || (this.live && !this.live.done)) return;
    if (this.view === 0) {
      // the first route has not run yet and would clear the thread: send once it has
      this.sendWhenReady = true;
      return;
    }
    let live: LiveGeneration;
    let shown = text;
    if (this.el.teamToggle.checked) {
      // the server's default team answers, each member in turn
      const team: TeamRequest = { question: text };
      if (this.el.model.value) team.model = this.el.model.value;
      if (this.conversationId) team.conversation_id = this.conversationId;
      live = LiveGeneration.start(this.api, team, "v1/team/stream");
    } else {
      const request: StreamRequest = { prompt: text };
      if (this.el.model.value) request.model = this.el.model.value;
      if (this.images.length && this.acceptsImages()) request.images = [...this.images];
      if (request.images) shown = `${text}\n\n(${request.images.length} image${request.images.length > 1 ? "s" : ""} attached)`;
      this.clearImages();
      if (!this.el.profilePicker.hidden && this.el.profile.value) request.profile = this.el.profile.value;
      if (!this.el.collectionPicker.hidden && this.el.collection.value) request.collection = this.el.collection.value;
      if (this.conversationId) request.conversation_id = this.conversationId;
      else if (!this.sidebar.available && this.turns.length) request.messages = [...this.turns];
      if (this.el.toolsToggle.checked && this.tools.length) request.tools = [...this.tools];
      live = LiveGeneration.start(this.api, request);
    }

    this.el.input.value = "";
    this.autosize();
    this.thread.addUser(shown);
    this.track(live);
    this.live = live;
    this.thread.addAssistant(live.answer, live);
    this.thread.scrollToEnd();
    this.updateComposer();

    const view = this.view;
    let adopted = false;
    live.subscribe(() => {
      const cid = live.answer.conversationId;
      if (!adopted && cid && view === this.view && this.conversationId === null) {
        adopted = true; // the server created the conversation: this view is it now
        this.conversationId = cid;
        history.replaceState(null, "", `#/c/${encodeURIComponent(cid)}`);
        this.sidebar.setSelected(cid);
        void this.sidebar.reload().then(() => this.setTitle(this.sidebar.find(cid)?.title ?? null));
      }
    });
    void live.finished.then(() => {
      const a = live.answer;
      if (a.text) this.turns.push({ role: "user", content: text }, { role: "assistant", content: a.text });
      const word = a.status === "complete" ? "Answer complete" : a.status === "stopped" ? "Answer stopped" : "Answer ended";
      this.announce(word);
      if (view === this.view && this.conversationId) void this.watchTitle(this.conversationId);
    });
  }

  /** The server names a new conversation in the background after its first answer. */
  private async watchTitle(cid: string): Promise<void> {
    for (const wait of [0, 700, 1500, 3000, 6000]) {
      await new Promise((resolve) => setTimeout(resolve, wait));
      await this.sidebar.reload();
      const title = this.sidebar.find(cid)?.title;
      if (cid === this.conversationId) this.setTitle(title ?? null);
      if (title) return;
    }
  }

  private stop(): void {
    if (this.live && !this.live.done) {
      void this.live.stop();
      this.updateComposer();
    }
  }

  private updateComposer(): void {
    const busy = this.live !== null && !this.live.done;
    this.el.send.hidden = busy;
    this.el.stop.hidden = !busy;
    this.el.send.disabled = this.el.input.value.trim() === "";
  }

  // ── images ──────────────────────────────────────────────────────────────

  private acceptsImages(): boolean {
    const chosen = this.el.model.value || this.onlyModel;
    return chosen !== null && this.imageModels.has(chosen);
  }

  /** The attach button shows only when the chosen model accepts images. */
  private updateAttach(): void {
    const accepts = this.acceptsImages();
    this.el.attach.hidden = !accepts;
    if (!accepts) this.clearImages();
  }

  private addImage(file: File): void {
    if (!IMAGE_TYPES.includes(file.type)) {
      this.announce("Only PNG, JPEG, GIF and WebP images can be attached");
      return;
    }
    if (file.size > MAX_IMAGE_BYTES) {
      this.announce("That image is larger than 5 MB");
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      if (typeof reader.result !== "string") return;
      this.images.push(reader.result);
      this.renderImages();
    };
    reader.readAsDataURL(file);
  }

  private renderImages(): void {
    const box = this.el.attachments;
    box.replaceChildren();
    this.images.forEach((url, index) => {
      const item = document.createElement("div");
      item.className = "attachment";
      const img = document.createElement("img");
      img.src = url;
      img.alt = `Attached image ${index + 1}`;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove image ${index + 1}`);
      remove.addEventListener("click", () => {
        this.images.splice(index, 1);
        this.renderImages();
      });
      item.append(img, remove);
      box.append(item);
    });
    box.hidden = this.images.length === 0;
  }

  private clearImages(): void {
    this.images = [];
    this.renderImages();
  }

  private wireImages(): void {
    this.el.attach.addEventListener("click", () => this.el.imageInput.click());
    this.el.imageInput.addEventListener("change", () => {
      for (const file of Array.from(this.el.imageInput.files ?? [])) this.addImage(file);
      this.el.imageInput.value = "";
    });
    this.el.input.addEventListener("paste", (event) => {
      if (!this.acceptsImages()) return;
      const files = Array.from(event.clipboardData?.files ?? []).filter((f) => f.type.startsWith("image/"));
      if (!files.length) return;
      event.preventDefault();
      for (const file of files) this.addImage(file);
    });
  }

  // ── wiring ──────────────────────────────────────────────────────────────

  private wireComposer(): void {
    const { input, composer } = this.el;
    input.addEventListener("input", () => {
      this.autosize();
      this.el.send.disabled = input.value.trim() === "";
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      } else if (event.key === "Escape" && this.live && !this.live.done) {
        event.preventDefault();
        this.stop();
      }
    });
    composer.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.el.stop.addEventListener("click", () => this.stop());
    this.el.toolsToggle.checked = prefs.tools;
    this.el.toolsToggle.addEventListener("change", () => {
      prefs.tools = this.el.toolsToggle.checked;
    });
    this.el.teamToggle.checked = prefs.team;
    this.el.teamToggle.addEventListener("change", () => {
      prefs.team = this.el.teamToggle.checked;
    });
    this.el.streamToggle.checked = prefs.stream;
    this.el.streamToggle.addEventListener("change", () => {
      prefs.stream = this.el.streamToggle.checked;
      this.thread.refresh();
    });
    this.el.model.addEventListener("change", () => {
      prefs.model = this.el.model.value;
      this.updateAttach();
    });
    this.wireImages();
    this.el.profile.addEventListener("change", () => {
      prefs.profile = this.el.profile.value;
    });
    this.el.collection.addEventListener("change", () => {
      prefs.collection = this.el.collection.value;
    });
  }

  private wireChrome(): void {
    byId("new-chat").addEventListener("click", () => this.navigate(null));
    byId("open-sidebar").addEventListener("click", () => this.openSidebar());
    byId("close-sidebar").addEventListener("click", () => this.closeSidebar());
    byId("scrim").addEventListener("click", () => this.closeSidebar());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.el.app.classList.contains("sidebar-open")) this.closeSidebar();
      if ((event.metaKey || event.ctrlKey) && event.key.toLowerCase() === "k") {
        event.preventDefault();
        byId("search").focus();
      }
    });
    this.el.bannerRetry.addEventListener("click", () => {
      const action = this.bannerAction;
      this.hideBanner();
      action?.();
    });
    this.el.themeToggle.addEventListener("click", () => {
      prefs.theme = this.resolvedTheme() === "dark" ? "light" : "dark";
      this.applyTheme();
    });
    byId("open-settings").addEventListener("click", () => this.openSettings());
    this.el.settings.addEventListener("close", () => {
      if (this.el.settings.returnValue !== "save") return;
      const theme = new FormData(this.el.settingsForm).get("theme");
      if (theme === "light" || theme === "dark" || theme === "system") prefs.theme = theme as Theme;
      this.applyTheme();
      if (this.el.apiKey.value.trim() !== prefs.apiKey) {
        prefs.apiKey = this.el.apiKey.value;
        void this.connect();
      }
    });
    this.el.keyDialog.addEventListener("close", () => {
      const key = this.el.keyInput.value.trim();
      if (this.el.keyDialog.returnValue === "save" && key) {
        prefs.apiKey = key;
        void this.connect();
      } else if (!prefs.apiKey) {
        this.showBanner("This server needs an API key.", () => this.askForKey());
      }
    });
  }

  private autosize(): void {
    const input = this.el.input;
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
  }

  private openSidebar(): void {
    this.el.app.classList.add("sidebar-open");
    byId("scrim").hidden = false;
    byId("open-sidebar").setAttribute("aria-expanded", "true");
    byId("new-chat").focus();
  }

  private closeSidebar(): void {
    if (!this.el.app.classList.contains("sidebar-open")) return;
    this.el.app.classList.remove("sidebar-open");
    byId("scrim").hidden = true;
    byId("open-sidebar").setAttribute("aria-expanded", "false");
  }

  private openSettings(): void {
    const theme = prefs.theme;
    for (const radio of this.el.settingsForm.querySelectorAll<HTMLInputElement>('input[name="theme"]')) {
      radio.checked = radio.value === theme;
    }
    this.el.apiKey.value = prefs.apiKey;
    byId("key-field").hidden = !this.authRequired && !prefs.apiKey;
    this.el.settings.showModal();
  }

  private askForKey(message?: string): void {
    if (this.el.keyDialog.open) return;
    this.el.keyText.textContent = message
      ? `${message}. Enter one of the keys lmstream was started with.`
      : "Enter one of the keys lmstream was started with. It stays in this browser.";
    this.el.keyInput.value = "";
    this.el.keyDialog.showModal();
  }

  // ── small pieces of UI state ────────────────────────────────────────────

  private handleError(err: unknown): void {
    if (err instanceof ApiError && err.status === 401) {
      this.askForKey(err.message);
    } else if (err instanceof NetworkError) {
      this.setStatus("offline");
      this.showBanner("Lost contact with the lmstream server.", () => void this.connect());
    } else {
      this.showBanner(err instanceof Error ? err.message : String(err), null);
    }
  }

  private showBanner(text: string, retry: (() => void) | null): void {
    this.el.bannerText.textContent = text;
    this.bannerAction = retry;
    this.el.bannerRetry.textContent = retry ? "Retry" : "Dismiss";
    this.el.banner.hidden = false;
  }

  private hideBanner(): void {
    this.el.banner.hidden = true;
    this.bannerAction = null;
  }

  private setStatus(state: "connecting" | "online" | "offline"): void {
    this.el.status.dataset.state = state;
    this.el.statusText.textContent =
      state === "online" ? "Connected" : state === "offline" ? "Server unreachable" : "Connecting…";
  }

  private setTitle(title: string | null): void {
    const text = title?.trim() || "New chat";
    this.el.title.textContent = text;
    document.title = title ? `${text} · lmstream` : "lmstream";
  }

  private announce(text: string): void {
    this.el.announcer.textContent = text;
  }

  private resolvedTheme(): "light" | "dark" {
    const theme = prefs.theme;
    if (theme !== "system") return theme;
    return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  private applyTheme(): void {
    const theme = this.resolvedTheme();
    document.documentElement.dataset.theme = theme;
    const next = theme === "dark" ? "light" : "dark";
    this.el.themeToggle.setAttribute("aria-label", `Switch to ${next} theme`);
    this.el.themeToggle.replaceChildren(icon(theme === "dark" ? "sun" : "moon"));
  }
}
