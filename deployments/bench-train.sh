#!/usr/bin/env bash
# Training speed of pdmkit/nn beside PyTorch on the CPU, in the same run:
# the networks of BenchmarkTrain (pdmkit/nn/train_bench_test.go), the same
# ones in deployments/bench/torch_train.py (float32, Adam, batch 32 unless
# named, 10,000 rows, 5 epochs). Ours at GOMAXPROCS 1 and 2, PyTorch with 1
# and 2 threads, rounds interleaved so both see the same machine; benchstat
# sets them side by side and a table gives the ratios of the medians.
# Nothing fails on a figure.
#
#   BENCH_COUNT   rounds (default 6)
#   BENCH_FILTER  only the cases whose name matches this regexp (default all)
#
# PyTorch is installed from PyPI once into .venv-bench/ (git-ignored; the
# Linux wheel brings its CUDA libraries, about 5 GB) and reused after that.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/bench/out"
COUNT="${BENCH_COUNT:-6}"
FILTER="${BENCH_FILTER:-.}"
TORCH_VERSION=2.15.0
VENV="$ROOT/.venv-bench"
mkdir -p "$OUT"

if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
	echo "== installing torch $TORCH_VERSION into $VENV (once; about 5 GB)"
	python3 -m venv "$VENV"
	"$VENV/bin/pip" install --disable-pip-version-check --quiet "torch==$TORCH_VERSION"
fi
BENCHSTAT="$ROOT/.stack/bin/benchstat"
if [[ ! -x $BENCHSTAT ]]; then
	GOBIN="$ROOT/.stack/bin" go install golang.org/x/perf/cmd/benchstat@latest
fi

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
file="$OUT/bench-train-$stamp.txt"
bin="$OUT/nn.test"
(cd pdmkit && go test -c -o "$bin" ./nn/)
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -m), $(go env GOVERSION)"
{
	echo "goos: $(go env GOOS)"
	echo "goarch: $(go env GOARCH)"
	echo "cpu: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
	echo "pkg: github.com/pdmstream/pdm/pdmkit/nn"
} >"$file"
for round in $(seq "$COUNT"); do
	echo "== round $round of $COUNT"
	echo "impl: go" >>"$file"
	(cd pdmkit/nn && "$bin" -test.run '^$' -test.bench "^BenchmarkTrain\$/$FILTER" -test.benchtime 1x -test.cpu 1,2) |
		grep '^BenchmarkTrain/' | tee -a "$file"
	# Passive OpenMP workers: spinning ones make PyTorch's 2-thread runs
	# 10-20 times slower when the machine's other work holds a core.
	OMP_WAIT_POLICY=PASSIVE "$VENV/bin/python" deployments/bench/torch_train.py --count 1 --filter "$FILTER" | tee -a "$file"
done

"$BENCHSTAT" -col impl "$file"
python3 deployments/bench/torch_train.py --table "$file"
echo "results: $file"
