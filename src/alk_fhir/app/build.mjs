// Copies the browser builds that fhirclient and lforms ship on npm into vendor/: no bundler,
// no transpiling. The Python service serves web/ (our code) and vendor/ under /app/.
// vendor/manifest.json records what was copied; the service treats its absence as "not built".
//
// One patch is applied to a copied file (PATCHES below, recorded in the manifest): the build stops
// with an error when its text is not found exactly once, so a new lforms version cannot undo it
// silently.
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

// The date picker's week starts on Monday (Dutch custom and ISO 8601; en-GB too).
// LHC-Forms renders date items with ng-zorro-antd's nz-date-picker, whose DateHelperService takes
// the first day of the week from NZ_DATE_CONFIG.firstDayOfWeek and, when that is unset, from the
// locale: with LHC-Forms' NZ_I18N en_US (locale id "en") and no NZ_DATE_LOCALE that is Sunday
// (0). LHC-Forms provides no NZ_DATE_CONFIG and no setting for it (LForms.Util, the form options
// and the lhc-forms element have none; its language support is build-time only, LHNCBC/lforms
// issue #197), and Angular's injector is out of reach from the page in a production build. So the
// bundle's copy of ng-zorro's NZ_DATE_CONFIG_DEFAULT ({firstDayOfWeek: undefined}, one object
// literal in lhc-forms.js; its variable name is the minifier's) gets firstDayOfWeek 1: both of
// ng-zorro's date helpers read the weekday header and the rows of days from it.
const PATCHES = [
  {
    file: "lforms/lhc-forms.js",
    why: "date picker week starts on Monday (ng-zorro NZ_DATE_CONFIG_DEFAULT.firstDayOfWeek = 1)",
    find: /([\w$]+)=\{firstDayOfWeek:void 0\}/g,
    replace: "$1={firstDayOfWeek:1}",
  },
];

function applyPatch({ file, why, find, replace }) {
  const path = join(out, file);
  const text = readFileSync(path, "utf8");
  const found = text.match(find) || [];
  if (found.length !== 1) {
    console.error(`build: cannot patch ${file} (${why}): expected the text ${find} once, found it ${found.length}` +
      " times. The lforms version changed: find the new place (see build.mjs) or drop the patch.");
    process.exit(1);
  }
  writeFileSync(path, text.replace(find, replace));
  return { file, why };
}

rmSync(out, { recursive: true, force: true });
const manifest = { built: new Date().toISOString(), packages: {}, patches: [] };
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
for (const patch of PATCHES) manifest.patches.push(applyPatch(patch));
writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`build: vendor/ written (${Object.entries(manifest.packages).map(([n, p]) => `${n} ${p.version}`).join(", ")})`);
