#!/usr/bin/env bash
# The main job on the bundled example: inspect a TF1 Hub module from testdata, convert it to TF2 (the conversion
# verifies itself against the module before it appears), inspect the result, and print the parity report of the
# module against the converted model on the bundled photographs.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
MODULE=testdata/modules/convnet_bn
OUT=demo-out/convnet_bn_tf2
mkdir -p demo-out
echo "== bridge inspect $MODULE" >&2
"$BIN/bridge" inspect "$MODULE"
echo "== bridge convert $MODULE $OUT --force --verify-images testdata/images" >&2
"$BIN/bridge" convert "$MODULE" "$OUT" --force --verify-images testdata/images
echo "== bridge inspect $OUT" >&2
"$BIN/bridge" inspect "$OUT"
echo "== bridge parity $MODULE $OUT --images testdata/images --training --gradients" >&2
"$BIN/bridge" parity "$MODULE" "$OUT" --images testdata/images --training --gradients --quiet
