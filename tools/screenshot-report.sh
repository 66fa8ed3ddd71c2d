#!/usr/bin/env bash
# Check a run's HTML report in a real browser: write it with `sirius-coord report --format html`, make
# sure it fetches nothing from the network (no http(s) URL in a src/href/url()), then take a full-page
# screenshot with headless Chromium (Debian's `chromium` package, installed when missing).
# Usage: tools/screenshot-report.sh DB RUN OUT.png [WIDTH] [HEIGHT]
# e.g.   tools/screenshot-report.sh sirius-runs.sqlite csqa-sweep-100 /tmp/report.png 1200 5000
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n 2,6p "$0" >&2; exit 2; }
db=$1; run=$2; png=$3; width=${4:-1200}; height=${5:-5000}
[ -f "$db" ] || { echo "screenshot-report: no database at $db" >&2; exit 1; }
coord=.build/release/sirius-coord
[ -x "$coord" ] || swift build -c release --product sirius-coord
if ! command -v chromium > /dev/null; then
  echo "screenshot-report: installing chromium (apt)" >&2
  apt-get install -y -qq chromium > /dev/null
fi
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
html=$dir/report.html
"$coord" report "$run" --db "$db" --format html --out "$html"
if grep -Eo '(src|href)="https?://[^"]*"|url\(https?://[^)]*\)' "$html"; then
  echo "screenshot-report: $html fetches the network (above)" >&2; exit 1
fi
svgs=$(grep -c '<svg' "$html" || true)
# Chromium needs a writable home for its profile; its D-Bus complaints on stderr are harmless here.
HOME=$dir chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$width,$height" \
  --screenshot="$png" "file://$html" 2> "$dir/chromium.log" || { cat "$dir/chromium.log" >&2; exit 1; }
[ -s "$png" ] || { echo "screenshot-report: Chromium wrote no screenshot" >&2; cat "$dir/chromium.log" >&2; exit 1; }
bytes=$(stat -c %s "$png")
echo "screenshot-report: $run: $svgs SVG figures, no external URLs; ${width}x$height screenshot at $png ($bytes bytes)"
