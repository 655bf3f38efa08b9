#!/usr/bin/env bash
# Throughput and latency benchmarks against the real local stack. Every
# figure is printed beside a baseline measured in the same run; benchstat
# summarises the repeated runs. Nothing here fails on a wall-clock figure.
#
#   BENCH_COUNT   repetitions of each benchmark (default 6, the fewest for
#                 which benchstat gives a confidence interval)
#   BENCH_FILTER  run only the benchmarks matching this regexp (default all;
#                 TrainTorch is pdmkit/nn training beside PyTorch,
#                 deployments/bench-train.sh)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=stack/env.sh
. deployments/stack/env.sh
OUT="$ROOT/bench/out"
COUNT="${BENCH_COUNT:-6}"
FILTER="${BENCH_FILTER:-.}"
mkdir -p "$OUT"

BENCHSTAT="$ROOT/.stack/bin/benchstat"
if [[ ! -x $BENCHSTAT ]]; then
	GOBIN="$ROOT/.stack/bin" go install golang.org/x/perf/cmd/benchstat@latest
fi

# Telegraf, the tool a plant engineer would otherwise use for MQTT → Kafka
# (BenchmarkTelegraf): built once, about 8 minutes and 400 MB.
TELEGRAF_VERSION=v1.37.2
export PDM_TELEGRAF="$ROOT/.stack/bin/telegraf"
if [[ ($FILTER == . || Telegraf =~ $FILTER) && ! -x $PDM_TELEGRAF ]]; then
	echo "bench: building Telegraf $TELEGRAF_VERSION into .stack/bin (first time only)"
	GOBIN="$ROOT/.stack/bin" go install "github.com/influxdata/telegraf/cmd/telegraf@$TELEGRAF_VERSION"
fi

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -m)"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
# module  package  -bench regexp  -benchtime (work per run)
runs=(
	"ingest ./bench/ BridgeThroughput 1x"
	"ingest ./bench/ BridgeLatency 1x"
	"ingest ./bench/ BrokerAutosave 1x"
	"ingest ./bench/ Telegraf 1x"
	"scorer ./internal/stream/ Throughput/model 120000x"
	"scorer ./internal/stream/ Latency/model 20000x"
	"scorer ./internal/stream/ Swap 20x"
	"scorer ./internal/api/ Infer 2s"
	"pdmkit ./wire/ Decode 2s"
	"trainer ./internal/history/ Read 1x"
)
file="$OUT/bench-$stamp.txt"
for run in "${runs[@]}"; do
	read -r module pkg bench benchtime <<<"$run"
	[[ $FILTER == . || $bench =~ $FILTER ]] || continue
	echo "== $module $pkg -bench $bench -benchtime $benchtime -count $COUNT"
	(cd "$module" && go test -run '^$' -bench "$bench" -benchtime "$benchtime" -count "$COUNT" -timeout 60m "$pkg") | tee -a "$file"
done
if [[ -s $file ]]; then
	"$BENCHSTAT" "$file"
fi
if [[ $FILTER == . || TrainTorch =~ $FILTER ]]; then
	echo "== pdmkit/nn training beside PyTorch (deployments/bench-train.sh), $COUNT rounds"
	BENCH_COUNT="$COUNT" BENCH_FILTER=. deployments/bench-train.sh
fi
