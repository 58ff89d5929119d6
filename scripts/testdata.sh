#!/usr/bin/env bash
# Collects the real photos the tests use into $INVIGIL_TESTDATA (default
# .cache/testdata). Sources: Debian's opencv-doc package and the npm package
# @vladmandic/face-api (fetched with `npm pack`, no install scripts run).
# Nothing here is committed; the script is idempotent.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${INVIGIL_TESTDATA:-$root/.cache/testdata}
mkdir -p "$dest"

opencv_data=/usr/share/doc/opencv-doc/examples/data
opencv_html=/usr/share/doc/opencv-doc/opencv4/html
for f in messi5.jpg fruits.jpg building.jpg baboon.jpg lena.jpg; do
  if [ -f "$opencv_data/$f" ] && [ ! -f "$dest/$f" ]; then cp "$opencv_data/$f" "$dest/$f"; fi
done
if [ -f "$opencv_html/handSrc.jpg" ] && [ ! -f "$dest/handSrc.jpg" ]; then
  cp "$opencv_html/handSrc.jpg" "$dest/handSrc.jpg"
fi
for f in messi5.jpg fruits.jpg handSrc.jpg; do
  [ -f "$dest/$f" ] || { echo "testdata: $f missing; install Debian's opencv-doc (scripts/install.sh does)" >&2; exit 1; }
done

face_api=@vladmandic/face-api@1.7.15
if [ ! -f "$dest/sample6.jpg" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "testdata: fetching sample photos from npm package $face_api" >&2
  (cd "$tmp" && npm pack --silent "$face_api" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" --wildcards 'package/demo/sample*.jpg'
  cp "$tmp"/package/demo/sample*.jpg "$dest/"
fi
echo "testdata: ready in $dest" >&2
