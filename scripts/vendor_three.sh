#!/usr/bin/env bash
# Rebuild web/static/vendor/three/vrm-bundle.js: three.js, its GLTFLoader and @pixiv/three-vrm
# as one ES module the talk page imports with a relative path (no import map, no CDN).
#
#   scripts/vendor_three.sh            # pinned versions below; needs node + npm (registry)
#   WORK=/tmp/x scripts/vendor_three.sh
#
# npm installs into a temporary folder, never into the repo. esbuild bundles and minifies;
# the bundle is checked for eval / new Function, which the page's CSP (script-src 'self')
# forbids.
set -euo pipefail

THREE_VERSION=0.187.0
THREE_VRM_VERSION=3.5.5
ESBUILD_VERSION=0.28.2

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/web/static/vendor/three"
WORK="${WORK:-$(mktemp -d /tmp/vendor-three.XXXXXX)}"
mkdir -p "$WORK" "$OUT"
cd "$WORK"
[ -f package.json ] || npm init -y >/dev/null
npm install --no-audit --no-fund --save-exact \
  "three@$THREE_VERSION" "@pixiv/three-vrm@$THREE_VRM_VERSION" "esbuild@$ESBUILD_VERSION" >/dev/null

cat > entry.js <<'JS'
// What web/static/vrm_view.js (and any other page) needs from three.js and three-vrm.
export {
  AmbientLight,
  Box3,
  Clock,
  Color,
  DirectionalLight,
  Euler,
  Group,
  HemisphereLight,
  MathUtils,
  Object3D,
  PerspectiveCamera,
  Quaternion,
  REVISION,
  SRGBColorSpace,
  TextureLoader,
  Scene,
  Vector3,
  WebGLRenderer,
} from "three";
export { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";
export {
  VRMExpressionPresetName,
  VRMHumanBoneName,
  VRMLoaderPlugin,
  VRMUtils,
} from "@pixiv/three-vrm";
JS

# The esbuild binary comes from its platform package (@esbuild/<os>-<arch>), so its
# postinstall script need not run.
npx --no-install esbuild entry.js --bundle --format=esm --minify --target=es2020 \
  --legal-comments=none --outfile="$OUT/vrm-bundle.js"

if grep -qE '\beval\(|new Function\(' "$OUT/vrm-bundle.js"; then
  echo "vrm-bundle.js uses eval/new Function: the page's CSP would block it" >&2
  exit 1
fi

cp node_modules/three/LICENSE "$OUT/LICENSE.three.txt"
cp node_modules/@pixiv/three-vrm/LICENSE "$OUT/LICENSE.three-vrm.txt"
echo "wrote $OUT/vrm-bundle.js ($(wc -c < "$OUT/vrm-bundle.js") bytes):" \
  "three $THREE_VERSION, @pixiv/three-vrm $THREE_VRM_VERSION, esbuild $ESBUILD_VERSION"
