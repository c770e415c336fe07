#!/bin/sh
# run.sh - fuzz longer than ctest's smoke runs (10 s a target; DOTGW_FUZZ_SECONDS changes
# that): each named target, or every fuzz_* of the build, for SECONDS (default 600), one after
# the other, over the same corpora as ctest: the committed seeds (tests/fuzz/corpus/NAME, only
# read) and the scratch corpus BUILD/tests/fuzz-corpus-NAME, which keeps what libFuzzer finds
# for the next run. A crash leaves its input in BUILD/tests/fuzz-artifacts/ and ends the run
# (status 1); add it to the seeds once fixed.
#
# Usage: tests/fuzz/run.sh BUILD-DIR [SECONDS [NAME...]]    (NAME: dns, pkt, config, ...)
#   BUILD-DIR configured with -DCMAKE_C_COMPILER=clang -DDOTGW_SANITIZE=ON -DDOTGW_FUZZ=ON
#   e.g. tests/fuzz/run.sh build-asan 3600 dns rewrite
set -eu

[ $# -ge 1 ] || { echo "usage: $0 BUILD-DIR [SECONDS [NAME...]]" >&2; exit 2; }
BUILD=$(cd "$1" && pwd)
SECS=${2:-600}
if [ $# -ge 2 ]; then shift 2; else shift; fi
SEEDS=$(cd "$(dirname "$0")/corpus" && pwd)
if [ $# -eq 0 ]; then
	for f in "$BUILD"/tests/fuzz_*; do
		[ -x "$f" ] && set -- "$@" "${f##*/fuzz_}"
	done
	[ $# -gt 0 ] || { echo "$0: no fuzz_* in $BUILD/tests (-DDOTGW_FUZZ=ON?)" >&2; exit 1; }
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
mkdir -p "$BUILD/tests/fuzz-artifacts"
for name in "$@"; do
	bin="$BUILD/tests/fuzz_$name"
	[ -x "$bin" ] || { echo "$0: no $bin" >&2; exit 1; }
	mkdir -p "$BUILD/tests/fuzz-corpus-$name"
	echo "# fuzz_$name for $SECS s"
	"$bin" -max_total_time="$SECS" -timeout=5 -print_final_stats=1 \
		-artifact_prefix="$BUILD/tests/fuzz-artifacts/$name-" \
		"$BUILD/tests/fuzz-corpus-$name" "$SEEDS/$name" ||
		{ echo "FAIL  fuzz_$name: see $BUILD/tests/fuzz-artifacts/" >&2; exit 1; }
done
echo "ok    fuzzed $* for $SECS s each"
