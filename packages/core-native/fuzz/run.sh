#!/usr/bin/env bash
# Runs every fuzz harness of the network parsers for SECONDS each (default 20):
#   hello  - a rank's listener: the token handshake (C++, libFuzzer + ASan/UBSan)
#   frame  - ring frame headers (C++, libFuzzer + ASan/UBSan)
#   ring   - a Python client's submissions on its bridge command ring (C++, libFuzzer + ASan/UBSan)
#   store  - the rendezvous store's wire format (TypeScript, jsfuzz.mjs: V8-coverage guided)
#   bridge - a Python client's messages to its bridge, and the buffer views they name (TypeScript, jsfuzz.mjs)
# Seeds are corpus/<harness>/ (kept in the repo); what a run finds goes to .build/work/<harness>/.
# A crash stops the run with exit code 1 and leaves the input under .build/. Needs clang++
# (Debian: apt-get install clang) and the repository's npm install (esbuild).
set -euo pipefail
secs=${1:-20}
cd "$(dirname "$0")"
here=$(pwd)
src=../src/native
mkdir -p .build/work/hello .build/work/frame .build/work/ring .build/work/store .build/work/bridge

cxx=${FUZZ_CXX:-clang++}
for h in hello frame; do
  "$cxx" -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I "$src" \
    "${h}_fuzz.cc" "$src/transport/tcp.cc" "$src/common/siphash.cc" -o ".build/${h}_fuzz"
done
"$cxx" -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I "$src" \
  ring_fuzz.cc "$src/binding/ring_format.cc" "$src/memory/user_buffer.cc" -o .build/ring_fuzz
# The store's decoder as one ES module beside the harness, so that its coverage is the harness's.
npx --no-install esbuild "$here/../src/ts/store/protocol.ts" --bundle --format=esm --platform=node \
  --log-level=warning --outfile="$here/.build/protocol.mjs"
# The bridge's messages are framed by the store's reader: one module with both.
printf '%s\n' 'export * from "../../src/ts/bridge/protocol.ts";' \
  'export { FrameReader, ProtocolError } from "../../src/ts/store/protocol.ts";' >.build/bridge-entry.ts
npx --no-install esbuild "$here/.build/bridge-entry.ts" --bundle --format=esm --platform=node \
  --log-level=warning --outfile="$here/.build/bridge.mjs"

for h in hello frame ring; do
  echo "== $h: ${secs} s"
  log=".build/$h.log"
  if ! ".build/${h}_fuzz" -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -max_len=4096 \
    -artifact_prefix=.build/ -print_final_stats=1 ".build/work/$h" "corpus/$h" >"$log" 2>&1; then
    tail -n 60 "$log"
    exit 1
  fi
  grep -E "^(Done|stat::peak_rss_mb)" "$log"
done
echo "== store: ${secs} s"
node jsfuzz.mjs store_fuzz.mjs "$secs" .build/work/store corpus/store | tail -1
echo "== bridge: ${secs} s"
node jsfuzz.mjs bridge_fuzz.mjs "$secs" .build/work/bridge corpus/bridge | tail -1
