#!/usr/bin/env bash
# Screenshot report pages the way a reader sees them (headless Chromium), for a human to look at.
#   scripts/screenshot_reports.sh OUT_DIR PAGE.html [PAGE.html ...]
# writes OUT_DIR/<parent folder name>.png per page (full width 1280 px, tall enough for the page).
set -euo pipefail
out=$1; shift
mkdir -p "$out"
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "screenshot_reports: no chromium; install it with: apt-get install chromium" >&2; exit 2
fi
for page in "$@"; do
  name=$(basename "$(dirname "$(realpath "$page")")")
  [ "$(basename "$page")" = index.html ] || name=$(basename "$page" .html)
  "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,${HEIGHT:-4000} \
    --screenshot="$out/$name.png" "file://$(realpath "$page")" >/dev/null 2>&1
  echo "$out/$name.png"
done
