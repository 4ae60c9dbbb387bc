#!/usr/bin/env bash
# Fuzz the companion's frame decoder for a bounded time:
#   firmware/fuzz/run.sh SECONDS          (e.g. 60; CI-sized runs use 2-5)
# Builds firmware/fuzz/fuzz_decoder.c with clang -fsanitize=fuzzer,address,undefined
# (make -C firmware fuzz), starts from the seeds in corpus/ and every saved regression,
# and copies any crash, leak or timeout into regressions/ under a content-hash name:
# tests/test_fuzz_regressions.py replays every file there through the C decoder (ctypes)
# and the Python one, so a bug found once stays fixed.
# New coverage stays in a temporary corpus (the committed corpus is kept small); with
# MERGE=1 the inputs that add coverage are merged into corpus/ (libFuzzer -merge=1).
# Exit status: 0 no crash, 1 crash saved (see regressions/), 2 usage or missing tool.
set -u
secs=${1:-}
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "usage: $0 SECONDS   (fuzz the companion frame decoder for that long)" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
fw=$(dirname "$here")
build=${BUILD:-$fw/build}
if ! command -v "${CLANG:-clang}" >/dev/null; then
  echo "$0: clang not installed (Debian: apt-get install clang; scripts/system-deps.sh)" >&2
  exit 2
fi
make --no-print-directory -C "$fw" BUILD="$build" fuzz >/dev/null || exit 2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts" "$here/regressions"
"$build/fuzz-decoder" -max_total_time="$secs" -max_len=1024 -timeout=5 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" "$here/corpus" "$here/regressions" \
  >"$work/log" 2>&1
status=$?
grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|property failed)" "$work/log"
saved=0
for f in "$work"/artifacts/*; do
  [ -e "$f" ] || continue
  kind=$(basename "$f" | cut -d- -f1)
  name="$kind-$(sha1sum "$f" | cut -c1-16)"
  cp "$f" "$here/regressions/$name"
  echo "saved regressions/$name (replay: $build/fuzz-decoder $here/regressions/$name)"
  saved=$((saved + 1))
done
if [ "${MERGE:-0}" = 1 ]; then
  "$build/fuzz-decoder" -merge=1 -max_len=1024 "$here/corpus" "$work/corpus" >/dev/null 2>&1
  echo "corpus/: $(ls "$here/corpus" | wc -l) files"
fi
if [ "$saved" -gt 0 ] || [ "$status" -ne 0 ]; then
  echo "fuzzer found $saved crashing input(s):" >&2
  grep -E -A14 "==[0-9]+==ERROR|property failed|runtime error" "$work/log" | head -30 >&2
  exit 1
fi
echo "no crash in $secs s"
