// Put the front-end libraries into app/static/vendor at set-up time: the app serves them
// itself, nothing is loaded from a CDN at run time. Run by `make setup` after `npm ci`.
import { build } from "esbuild";
import { cpSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const modules = join(root, "node_modules");
const vendor = join(root, "app", "static", "vendor");

rmSync(vendor, { recursive: true, force: true });
mkdirSync(vendor, { recursive: true });

// bpmn-js ships UMD bundles: the viewer needs no build step. Keep its licence beside it
// (the bpmn.io watermark clause travels with the code).
const copies = [
  ["bpmn-js/dist/bpmn-navigated-viewer.production.min.js", "bpmn-js/bpmn-navigated-viewer.production.min.js"],
  ["bpmn-js/dist/assets", "bpmn-js/assets"],
  ["bpmn-js/LICENSE", "bpmn-js/LICENSE"],
  ["echarts/dist/echarts.min.js", "echarts/echarts.min.js"],
  ["echarts/LICENSE", "echarts/LICENSE"],
  ["echarts/NOTICE", "echarts/NOTICE"],
];
for (const [from, to] of copies) {
  mkdirSync(dirname(join(vendor, to)), { recursive: true });
  cpSync(join(modules, from), join(vendor, to), { recursive: true });
}

// The modeler with its properties panel needs one bundling step (see FRONTEND-NOTES.md).
const modelerEntry = join(root, "assets", "modeler", "index.js");
if (existsSync(modelerEntry)) {
  await build({
    entryPoints: [modelerEntry],
    bundle: true,
    format: "iife",
    globalName: "TiaojieModeler",
    minify: true,
    target: "es2020",
    outdir: join(vendor, "modeler"),
    loader: { ".eot": "file", ".svg": "file", ".ttf": "file", ".woff": "file", ".woff2": "file" },
    logLevel: "warning",
  });
  cpSync(join(modules, "bpmn-js", "LICENSE"), join(vendor, "modeler", "LICENSE.bpmn-js"));
}
console.log(`front-end assets written to ${vendor}`);
