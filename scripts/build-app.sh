#!/usr/bin/env bash
# Install the clinician app's JavaScript dependencies from the npm registry (exact versions from
# src/alk_fhir/app/package-lock.json) and copy their browser builds into src/alk_fhir/app/vendor/.
# npm ci also installs the devDependency axe-core, which the browser tests evaluate in the page
# (it is not copied to vendor/ and never served).
# The build patches one thing in its copy of lhc-forms.js: the date picker's week starts on Monday
# (build.mjs, PATCHES, says why and where); it fails, and leaves vendor/ unbuilt, when the patched
# text is not found exactly once, so an lforms upgrade cannot drop the patch silently.
# Without npm this exits 0 with a message: the Python service still starts and /app/ says how to
# install. Re-running is cheap: npm ci is skipped while node_modules is newer than the lock file.
set -euo pipefail
APP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../src/alk_fhir/app" && pwd)"

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "build-app: node/npm not found; skipping the clinician app (install Node.js 18+ and npm, then re-run" \
       "scripts/build-app.sh). The service runs without it; /app/ explains what is missing."
  exit 0
fi

cd "$APP_DIR"
# npm writes node_modules/.package-lock.json on every install: newer than the lock file = up to date.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "build-app: npm ci (fhirclient, lforms and their dependencies; axe-core for the browser tests)"
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
