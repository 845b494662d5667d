/** What the page remembers in this browser (localStorage), with safe defaults. */

export type Theme = "system" | "light" | "dark";

const KEYS = {
  apiKey: "lmstream.apiKey",
  stream: "lmstream.stream",
  theme: "lmstream.theme",
  model: "lmstream.model",
  profile: "lmstream.profile",
  collection: "lmstream.collection",
  tools: "lmstream.tools",
  team: "lmstream.team",
} as const;

function read(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage disabled: behave as a fresh browser
  }
}

function write(key: string, value: string | null): void {
  try {
    if (value === null || value === "") localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // storage full or disabled: the setting lasts for this page only
  }
}

export const prefs = {
  get apiKey(): string {
    return read(KEYS.apiKey) ?? "";
  },
  set apiKey(value: string) {
    write(KEYS.apiKey, value.trim());
  },
  /** Show tokens as they arrive (default) or the whole answer when it is done. */
  get stream(): boolean {
    return read(KEYS.stream) !== "off";
  },
  set stream(value: boolean) {
    write(KEYS.stream, value ? "on" : "off");
  },
  get theme(): Theme {
    const value = read(KEYS.theme);
    return value === "light" || value === "dark" ? value : "system";
  },
  set theme(value: Theme) {
    write(KEYS.theme, value === "system" ? null : value);
  },
  get model(): string {
    return read(KEYS.model) ?? "";
  },
  set model(value: string) {
    write(KEYS.model, value);
  },
  get profile(): string | null {
    return read(KEYS.profile);
  },
  set profile(value: string | null) {
    write(KEYS.profile, value);
  },
  /** The collection answers come from ("": none). */
  get collection(): string {
    return read(KEYS.collection) ?? "";
  },
  set collection(value: string) {
    write(KEYS.collection, value);
  },
  /** Let the model call the server's tools (off by default). */
  get tools(): boolean {
    return read(KEYS.tools) === "on";
  },
  set tools(value: boolean) {
    write(KEYS.tools, value ? "on" : null);
  },
  /** Ask the server's team instead of one model (off by default). */
  get team(): boolean {
    return read(KEYS.team) === "on";
  },
  set team(value: boolean) {
    write(KEYS.team, value ? "on" : null);
  },
};
