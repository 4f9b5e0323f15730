// Copies the browser builds that fhirclient and lforms ship on npm into vendor/: no bundler,
// no transpiling. The Python service serves web/ (our code) and vendor/ under /app/.
// vendor/manifest.json records what was copied; the service treats its absence as "not built".
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const out = join(here, "vendor");

const files = {
  fhirclient: [
    ["build/fhir-client.min.js", "fhirclient/fhir-client.min.js"],
    ["LICENSE", "fhirclient/LICENSE"],
  ],
  lforms: [
    ["dist/lforms/webcomponent/assets/lib/zone.min.js", "lforms/zone.min.js"],
    ["dist/lforms/webcomponent/lhc-forms.js", "lforms/lhc-forms.js"],
    ["dist/lforms/webcomponent/styles.css", "lforms/styles.css"],
    ["dist/lforms/webcomponent/down_arrow_gray_10_10.png", "lforms/down_arrow_gray_10_10.png"],
    ["dist/lforms/webcomponent/magnifying_glass.png", "lforms/magnifying_glass.png"],
    ["dist/lforms/fhir/R4/lformsFHIR.min.js", "lforms/lformsFHIR.min.js"],
    ["LICENSE.md", "lforms/LICENSE.md"],
  ],
};

rmSync(out, { recursive: true, force: true });
const manifest = { built: new Date().toISOString(), packages: {} };
for (const [pkg, list] of Object.entries(files)) {
  const root = join(modules, pkg);
  if (!existsSync(join(root, "package.json"))) {
    console.error(`build: node_modules/${pkg} is missing; run "npm ci" first`);
    process.exit(1);
  }
  const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version;
  manifest.packages[pkg] = { version, files: list.map(([, to]) => to) };
  for (const [from, to] of list) {
    mkdirSync(dirname(join(out, to)), { recursive: true });
    cpSync(join(root, from), join(out, to));
  }
}
writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`build: vendor/ written (${Object.entries(manifest.packages).map(([n, p]) => `${n} ${p.version}`).join(", ")})`);
