#!/usr/bin/env bash
# Detection quality on public data: the SKAB protocol through
# `scorer backtest` (the live online detector), the C-MAPSS FD001 protocol
# through `trainer cmapss`, and inference throughput from Go benchmarks.
#
# usage: deployments/bench-quality.sh [DATASETS_DIR]
#   DATASETS_DIR (or $PDM_DATASETS) holds skab/ and cmapss-fd001/;
#   default: ../shared/datasets relative to the repository root.
#   CMAPSS_MEMBERS (default 5) sets the C-MAPSS ensemble size.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
data=${1:-${PDM_DATASETS:-$root/../shared/datasets}}
members=${CMAPSS_MEMBERS:-5}
cores=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

missing() {
	cat >&2 <<MSG
bench-quality: $1 not found under $data.
Download the public data sets and pass their folder as the first argument
(or PDM_DATASETS); do not copy them into the repository:
  skab/          SKAB, https://github.com/waico/SKAB (folder data/: valve1/,
                 valve2/, other/ with ';'-separated CSVs, columns ...;anomaly;changepoint)
  cmapss-fd001/  NASA C-MAPSS turbofan data (PCoE data repository, "Turbofan
                 Engine Degradation Simulation"): train_FD001.txt, test_FD001.txt, RUL_FD001.txt
MSG
	exit 1
}
[ -d "$data/skab/valve1" ] || missing "skab/valve1"
[ -f "$data/cmapss-fd001/train_FD001.txt" ] || missing "cmapss-fd001/train_FD001.txt"

echo "== building scorer and trainer"
(cd "$root/scorer" && go build -o "$work/scorer" ./cmd/scorer)
(cd "$root/trainer" && go build -o "$work/trainer" ./cmd/trainer)

# Pooled pointwise counts over the test parts (rows after the 400-row
# warm-up) of the given files, from the backtest's own alert column joined
# with the input's label column by row order.
skab_counts() {
	local f out
	for f in "$@"; do
		out="$work/$(echo "${f#$data/skab/}" | tr / _)"
		awk -v W=400 '
			FNR == 1 { fs = ($0 ~ /;/) ? ";" : ","; nf = split($0, h, fs)
			           if (NR == FNR) { for (i = 1; i <= nf; i++) if (h[i] == "anomaly") lc = i }
			           next }
			NR == FNR { split($0, c, fs); lab[FNR] = c[lc] + 0; next }
			FNR - 1 > W { split($0, c, ","); a = c[3] + 0; l = lab[FNR]
			              if (l && a) tp++; else if (l) fn++; else if (a) fp++; else tn++ }
			END { print tp + 0, fp + 0, fn + 0, tn + 0 }' "$f" "$out"
	done | awk '{ tp += $1; fp += $2; fn += $3; tn += $4 }
		END { printf "%.3f %.2f %.2f %d %d %d %d\n", tp / (tp + (fp + fn) / 2), 100 * fp / (fp + tn), 100 * fn / (fn + tp), tp, fp, fn, tn }'
}

echo "== SKAB: scorer backtest on every anomalous file (warm-up 400 rows, label anomaly)"
files=("$data"/skab/valve1/*.csv "$data"/skab/valve2/*.csv "$data"/skab/other/*.csv)
start=$(date +%s.%N)
for f in "${files[@]}"; do
	out="$work/$(echo "${f#$data/skab/}" | tr / _)"
	"$work/scorer" backtest --in "$f" --out "$out" --warmup-rows 400 \
		--label-col anomaly --exclude-cols changepoint 2>"$out.log" || { cat "$out.log" >&2; exit 1; }
done
skab_secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
read -r f1 far mar tp fp fn tn < <(skab_counts "${files[@]}")
read -r v1f1 v1far v1mar _ < <(skab_counts "$data"/skab/valve1/*.csv)
read -r hof1 hofar homar _ < <(skab_counts "$data"/skab/valve2/*.csv "$data"/skab/other/*.csv)

echo "== C-MAPSS FD001: trainer cmapss ($members members)"
"$work/trainer" cmapss --data "$data/cmapss-fd001" --members "$members" | tee "$work/cmapss.out"
rmse=$(sed -n 's/.*RMSE \([0-9.]*\)  PHM08 score \([0-9.]*\).*/\1/p' "$work/cmapss.out")
phm=$(sed -n 's/.*RMSE \([0-9.]*\)  PHM08 score \([0-9.]*\).*/\2/p' "$work/cmapss.out")
cm_secs=$(sed -n 's/^training time \([0-9.]*\)s.*/\1/p' "$work/cmapss.out")

echo "== inference throughput (one core: -cpu 1)"
(cd "$root/pdmkit" && go test -run '^$' -bench 'ForwardWindow|PredictBatch' -benchmem -cpu 1 ./nn/ &&
	go test -run '^$' -bench 'Observe' -benchmem -cpu 1 ./anomaly/) | tee "$work/bench.out"
single=$(awk '/BenchmarkForwardWindow/ { printf "%.0f", 1e9 / $3 }' "$work/bench.out")
batch=$(awk '/BenchmarkPredictBatch/ { for (i = 1; i <= NF; i++) if ($(i+1) == "windows/s") printf "%.0f", $i }' "$work/bench.out")
observe=$(awk '/BenchmarkObserve/ { printf "%.0f", 1e9 / $3 }' "$work/bench.out")

cat <<TABLE

Detection quality on $(hostname) — nproc $cores, $(go version | awk '{print $3}'), $(date -u +%Y-%m-%dT%H:%MZ)

| benchmark | metric | result | target / published |
|---|---|---|---|
| SKAB, all 34 anomalous files (pooled test parts) | F1 / FAR % / MAR % | $f1 / $far / $mar | F1 ≥ 0.80 at FAR ≤ 15 (Conv-AE 0.78 / 13.55 / 28.02) |
| SKAB, valve1 (16 files, the tuning set) | F1 / FAR % / MAR % | $v1f1 / $v1far / $v1mar | |
| SKAB, valve2 + other (18 files, held out) | F1 / FAR % / MAR % | $hof1 / $hofar / $homar | |
| SKAB counts | TP / FP / FN / TN | $tp / $fp / $fn / $tn | |
| SKAB wall time, warm-up training + scoring of 34 files | s | $skab_secs | |
| C-MAPSS FD001, $members-member ensemble | RMSE / PHM08 | $rmse / $phm | RMSE ≤ 12.5 (DCNN 12.61 / 274, deep LSTM 16.14 / 338) |
| C-MAPSS training time | s | $cm_secs | |
| one window forward (80 inputs), one core | windows/s | $single | 0 allocs/op |
| batch scoring, 1024 windows per product, one core | windows/s | $batch | |
| online detector Observe, 8 sensors, one core | readings/s | $observe | |

Commands: scorer backtest --in F --out O --warmup-rows 400 --label-col anomaly --exclude-cols changepoint;
          trainer cmapss --data DIR --members $members
TABLE
