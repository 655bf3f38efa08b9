#!/usr/bin/env bash
# Throughput and latency benchmarks against the real local stack. Every
# figure is printed beside a baseline measured in the same run; benchstat
# summarises the repeated runs. Nothing here fails on a wall-clock figure.
#
#   BENCH_COUNT   repetitions of each benchmark (default 3)
#   BENCH_FILTER  -bench regexp (default .)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=stack/env.sh
. deployments/stack/env.sh
OUT="$ROOT/bench/out"
COUNT="${BENCH_COUNT:-3}"
FILTER="${BENCH_FILTER:-.}"
mkdir -p "$OUT"

BENCHSTAT="$ROOT/.stack/bin/benchstat"
if [[ ! -x $BENCHSTAT ]]; then
	GOBIN="$ROOT/.stack/bin" go install golang.org/x/perf/cmd/benchstat@latest
fi

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -m)"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
for pkg in ingest/bench scorer/bench; do
	[[ -d $pkg ]] || continue
	name="${pkg%%/*}"
	file="$OUT/$name-$stamp.txt"
	echo "== $pkg (count $COUNT) → $file"
	(cd "${pkg%%/*}" && go test -run '^$' -bench "$FILTER" -benchtime 1x -count "$COUNT" -timeout 60m "./${pkg#*/}/") | tee "$file"
	"$BENCHSTAT" "$file"
done
