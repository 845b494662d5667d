// The web chat is a static bundle that lmstream serves at `/` (src/lmstream/http/web.py).
// Relative `base` so the page also works when a proxy mounts lmstream under a prefix.
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  build: {
    outDir: "../src/lmstream/web/dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: true,
  },
  server: {
    // `npm run dev` next to `lmstream serve` on :8000: the API is proxied.
    proxy: {
      "/v1": "http://127.0.0.1:8000",
      "/health": "http://127.0.0.1:8000",
    },
  },
});
