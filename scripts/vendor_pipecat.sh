#!/usr/bin/env bash
# Rebuild web/static/vendor/pipecat/ from npm: Pipecat's browser client (@pipecat-ai/client-js)
# and its SmallWebRTC transport, bundled by esbuild into one ES module the talk page imports
# (web/static/call.js). The page has no build step and a strict CSP (script-src 'self', no
# eval), and loads nothing from outside the server, so the bundle is checked for both.
#
#   scripts/vendor_pipecat.sh            # into web/static/vendor/pipecat/
#   WORK=/tmp/somewhere scripts/vendor_pipecat.sh
#
# Needs node and npm (the npm registry); nothing is installed into the repository.
set -euo pipefail

CLIENT_JS=1.13.1                # @pipecat-ai/client-js
SMALL_WEBRTC=1.10.8             # @pipecat-ai/small-webrtc-transport (peer: client-js ~1.13.0)
ESBUILD=0.28.2

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/web/static/vendor/pipecat"
WORK="${WORK:-/tmp/vendor-pipecat}"

mkdir -p "$WORK" "$OUT"
cd "$WORK"
[ -f package.json ] || npm init -y >/dev/null
npm install --no-audit --no-fund --save-exact \
  "@pipecat-ai/client-js@$CLIENT_JS" \
  "@pipecat-ai/small-webrtc-transport@$SMALL_WEBRTC" \
  "esbuild@$ESBUILD" >/dev/null

# What the page needs, and nothing from @daily-co/daily-js: the transport's default media
# manager (DailyMediaManager) wraps Daily's SDK, which fetches its "call machine" from Daily's
# CDN. call.js always passes its own media manager, so daily-js is replaced by a stub that
# throws if anything ever reaches it.
cat > entry.js <<'JS'
export {
  PipecatClient,
  RTVIEvent,
  RTVIMessage,
  RTVI_PROTOCOL_VERSION,
  LogLevel,
  logger,
  setAboutClient,
  TransportStartError,
} from "@pipecat-ai/client-js";
export { SmallWebRTCTransport } from "@pipecat-ai/small-webrtc-transport";
JS
cat > daily-stub.js <<'JS'
const refuse = () => {
  throw new Error("daily-js is not bundled here: pass SmallWebRTCTransport a mediaManager");
};
export default { getCallInstance: refuse, createCallObject: refuse };
JS

# One esbuild run (its JS API, for two small plugins): daily-js becomes the stub, and lodash's
# fallback for finding the global object, `Function("return this")()` (never reached in a
# browser, where `self` exists, but it is what a CSP without 'unsafe-eval' forbids), becomes
# `globalThis`. The metafile names every package inside, whose licenses are copied.
cat > build.mjs <<'JS'
import * as esbuild from "esbuild";
import fs from "node:fs";
import path from "node:path";

const [out, banner] = process.argv.slice(2);
const noDaily = {
  name: "no-daily",
  setup(build) {
    build.onResolve({ filter: /^@daily-co\/daily-js$/ }, () => ({ path: path.resolve("daily-stub.js") }));
  },
};
const noFunction = {
  name: "no-function",
  setup(build) {
    build.onLoad({ filter: /[\\/]lodash[\\/]_root\.js$/ }, (args) => {
      const text = fs.readFileSync(args.path, "utf8");
      const fixed = text.replace("Function('return this')()", "globalThis");
      if (fixed === text) throw new Error("lodash/_root.js changed: check its Function() fallback");
      return { contents: fixed, loader: "js" };
    });
  },
};
const result = await esbuild.build({
  entryPoints: ["entry.js"],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2020",
  // Whitespace and comments out (the sources' JSDoc names modules as `import('./x.js')`, which
  // tests/test_page_static.py would take for imports); names kept, for readable stack traces.
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: "none",
  banner: { js: banner },
  outfile: path.join(out, "pipecat-client.js"),
  metafile: true,
  plugins: [noDaily, noFunction],
  logLevel: "warning",
});

const licenses = path.join(out, "LICENSES");
fs.rmSync(licenses, { recursive: true, force: true });
fs.mkdirSync(licenses);
const pkgs = new Set(
  Object.keys(result.metafile.inputs)
    .filter((i) => i.startsWith("node_modules/"))
    .map((i) => {
      const parts = i.split("/");
      return parts[1].startsWith("@") ? parts.slice(1, 3).join("/") : parts[1];
    }),
);
for (const pkg of [...pkgs].sort()) {
  const dir = path.join("node_modules", pkg);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  const file = fs.readdirSync(dir).find((f) => /^(licen[sc]e|copying)/i.test(f));
  // @pipecat-ai/client-js ships no LICENSE file; its sources say "Copyright (c) 2024, Daily.
  // SPDX-License-Identifier: BSD-2-Clause", the license and holder of the transport's file.
  const sibling = "node_modules/@pipecat-ai/small-webrtc-transport/LICENSE";
  const text = file
    ? fs.readFileSync(path.join(dir, file), "utf8")
    : `${pkg} ${meta.version} is ${meta.license} (its package.json and source headers: ` +
      `"Copyright (c) 2024, Daily"); the npm package ships no LICENSE file, so this is the ` +
      `license text of ${meta.repository?.url ?? "its repository"} as the sibling package ` +
      `@pipecat-ai/small-webrtc-transport ships it:\n\n` + fs.readFileSync(sibling, "utf8");
  fs.writeFileSync(path.join(licenses, `${pkg.replace("/", "__")}-${meta.version}.txt`), text);
  console.log(`${pkg} ${meta.version} ${meta.license}${file ? "" : " (no LICENSE file in the package)"}`);
}
JS
BANNER="/* Pipecat client-js $CLIENT_JS + small-webrtc-transport $SMALL_WEBRTC (BSD-2-Clause, Daily), \
bundled with their dependencies (MIT): see LICENSES/. Built by scripts/vendor_pipecat.sh; do not edit. */"
node build.mjs "$OUT" "$BANNER"

# The page's CSP has no 'unsafe-eval', and nothing may be fetched from outside the server.
BUNDLE="$OUT/pipecat-client.js"
if grep -nE '\beval\(|new Function\(|\bFunction\(' "$BUNDLE"; then
  echo "the bundle uses eval / new Function: the page's CSP refuses it" >&2; exit 1
fi
if grep -noE '(wss?|https?)://[^" '"'"'`)]+' "$BUNDLE" | grep -vE 'https?://(github\.com|bugzilla\.mozilla\.org|stackoverflow\.com|developer\.mozilla\.org)/'; then
  echo "the bundle names URLs beyond the documentation links above: check none is fetched" >&2; exit 1
fi
if grep -nE 'stun:|turn:|daily\.co' "$BUNDLE"; then
  echo "the bundle names a STUN/TURN server or Daily's CDN" >&2; exit 1
fi
echo "wrote $BUNDLE ($(wc -c <"$BUNDLE") bytes)"
