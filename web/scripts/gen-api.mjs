#!/usr/bin/env node
// `npm run gen:api`: web/openapi.json → src/api/schema.d.ts with openapi-typescript.
// `npm run gen:api -- --fetch` first saves the running backend's /schema/openapi.json
// (TASKHUB_URL, default http://127.0.0.1:8000; TASKHUB_TOKEN if set) to web/openapi.json.
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const spec = path.join(root, "openapi.json");
const out = path.join(root, "src/api/schema.d.ts");

if (process.argv.includes("--fetch")) {
  const base = (process.env.TASKHUB_URL ?? "http://127.0.0.1:8000").replace(/\/$/, "");
  const headers = process.env.TASKHUB_TOKEN ? { Authorization: `Bearer ${process.env.TASKHUB_TOKEN}` } : {};
  const res = await fetch(`${base}/schema/openapi.json`, { headers });
  if (!res.ok) {
    console.error(`GET ${base}/schema/openapi.json answered ${res.status}`);
    process.exit(1);
  }
  fs.writeFileSync(spec, JSON.stringify(await res.json(), null, 2) + "\n");
  console.log(`saved ${path.relative(process.cwd(), spec)}`);
}

if (!fs.existsSync(spec)) {
  console.error("web/openapi.json is missing: start the backend and run `npm run gen:api -- --fetch`.");
  process.exit(1);
}
const bin = path.join(root, "node_modules/.bin/openapi-typescript");
const r = spawnSync(bin, [spec, "-o", out], { stdio: "inherit" });
process.exit(r.status ?? 1);
