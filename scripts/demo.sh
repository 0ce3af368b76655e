#!/usr/bin/env bash
# The main job on the bundled example: inspect a TF1 Hub module from testdata, convert it to TF2, inspect that.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
MODULE=testdata/modules/convnet_bn
OUT=demo-out/convnet_bn_tf2
mkdir -p demo-out
export TF_CPP_MIN_LOG_LEVEL=3
echo "== bridge inspect $MODULE" >&2
"$BIN/bridge" inspect "$MODULE"
echo "== bridge convert $MODULE $OUT --force" >&2
"$BIN/bridge" convert "$MODULE" "$OUT" --force
echo "== bridge inspect $OUT" >&2
"$BIN/bridge" inspect "$OUT"
