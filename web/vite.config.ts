import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";
import SummaryReporter from "./scripts/summary-reporter";

// The API (Litestar) serves web/dist in production; in development Vite proxies /api to it.
const API = process.env.TASKHUB_API ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/api": { target: API, changeOrigin: false },
      "/schema": { target: API, changeOrigin: false },
    },
  },
  build: {
    outDir: "dist",
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
    reporters: ["default", new SummaryReporter()],
  },
});
