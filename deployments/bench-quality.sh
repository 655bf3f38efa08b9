#!/usr/bin/env bash
# Detection quality, every figure from the alerts the live decision path
# makes (`scorer backtest` feeds pdmkit/monitor exactly as the scorer
# does): the SKAB protocol, the generated healthy / set-point / degradation
# corpus (pdmkit/corpus), the edge agent's simulator with ground truth,
# the C-MAPSS FD001 protocol through `trainer cmapss` and `trainer run`
# (trained by train.Fit, scored by the live detector), the Tennessee
# Eastman protocol through `trainer tep` (trained by train.Fit on d00.dat,
# scored through pdmkit/monitor), and inference throughput from Go
# benchmarks.
#
# usage: deployments/bench-quality.sh [DATASETS_DIR]
#   DATASETS_DIR (or $PDM_DATASETS) holds skab/, cmapss-fd001/ and tep/;
#   default: ../shared/datasets relative to the repository root.
#   CMAPSS_MEMBERS (default 5) sets how many networks the C-MAPSS model
#   averages.
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
  tep/           Tennessee Eastman, Braatz data (github.com/camaramm/tennessee-eastman-profBraatz):
                 d00.dat and d00_te.dat ... d21_te.dat
MSG
	exit 1
}
[ -d "$data/skab/valve1" ] || missing "skab/valve1"
[ -f "$data/cmapss-fd001/train_FD001.txt" ] || missing "cmapss-fd001/train_FD001.txt"
[ -f "$data/tep/d21_te.dat" ] || missing "tep/d00.dat ... tep/d21_te.dat"

echo "== building scorer, trainer, edge-agent and pdmcorpus"
(cd "$root/scorer" && go build -o "$work/scorer" ./cmd/scorer)
(cd "$root/trainer" && go build -o "$work/trainer" ./cmd/trainer)
(cd "$root/edge-agent" && go build -o "$work/edge-agent" ./cmd/edge-agent)
(cd "$root/pdmkit" && go build -o "$work/pdmcorpus" ./cmd/pdmcorpus)
quality="python3 $root/deployments/bench/quality.py"

# backtest IN OUT_DIR REL WARMUP [flags]: the decision over one file; its
# output goes to OUT_DIR/REL with '/' replaced by '_'.
backtest() {
	local in=$1 dir=$2 rel=$3 warm=$4
	shift 4
	local out="$dir/$(echo "${rel%.csv}" | tr / _).out"
	"$work/scorer" backtest --in "$in" --out "$out" --warmup-rows "$warm" "$@" 2>"$out.log" || { cat "$out.log" >&2; exit 1; }
}

echo "== SKAB: every anomalous file, first 400 rows warm-up, the scorer's decision (and with the new-normal horizon off)"
mkdir -p "$work/skab" "$work/skab-off"
start=$(date +%s.%N)
for f in "$data"/skab/valve1/*.csv "$data"/skab/valve2/*.csv "$data"/skab/other/*.csv; do
	rel=${f#"$data/skab/"}
	backtest "$f" "$work/skab" "$rel" 400 --label-col anomaly --exclude-cols changepoint
done
skab_secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
for f in "$data"/skab/valve1/*.csv "$data"/skab/valve2/*.csv "$data"/skab/other/*.csv; do
	rel=${f#"$data/skab/"}
	backtest "$f" "$work/skab-off" "$rel" 400 --label-col anomaly --exclude-cols changepoint --no-new-normal
done

echo "== corpus: healthy streams, set-point changes, degradations (pdmcorpus)"
"$work/pdmcorpus" -out "$work/corpus"
mkdir -p "$work/corpus-out"
while IFS=$'\t' read -r rel warm; do
	backtest "$work/corpus/$rel" "$work/corpus-out" "$rel" "$warm"
done < <(python3 -c 'import json,sys; [print(e["file"], e["warmup_rows"], sep="\t") for e in map(json.loads, open(sys.argv[1]))]' "$work/corpus/index.jsonl")

echo "== simulator: pumps wearing a bearing, cavitating, misaligned (3 seeds each) and healthy pumps and motors, 3 simulated minutes per reading"
mkdir -p "$work/sim" "$work/sim-out"
for seed in 1 2 3; do
	for mode in bearing_wear cavitation misalignment; do
		"$work/edge-agent" simulate --mode "$mode" --after 30h --rows 3400 --seed "$seed" --asset "p$seed" \
			--out "$work/sim/$mode-$seed.csv" --truth "$work/sim/$mode-$seed.json" 2>/dev/null
	done
	"$work/edge-agent" simulate --rows 3400 --seed "$seed" --asset "h$seed" --out "$work/sim/pump-$seed.csv" --truth "$work/sim/pump-$seed.json" 2>/dev/null
	"$work/edge-agent" simulate --kind motor --rows 3400 --seed "$seed" --asset "m$seed" --out "$work/sim/motor-$seed.csv" --truth "$work/sim/motor-$seed.json" 2>/dev/null
done
for f in "$work"/sim/*.csv; do
	backtest "$f" "$work/sim-out" "$(basename "$f")" 400 --label-col anomaly
done

echo "== C-MAPSS FD001: trainer cmapss ($members networks, train.Fit) and trainer run (a dry-run job) scored by trainer cmapss --model"
"$work/trainer" cmapss --data "$data/cmapss-fd001" --members "$members" | tee "$work/cmapss.out"
cmapss_field() { sed -n "s/.*RMSE \([0-9.]*\)  PHM08 score \([0-9.]*\).*/\\$2/p" "$1"; }
rmse=$(cmapss_field "$work/cmapss.out" 1)
phm=$(cmapss_field "$work/cmapss.out" 2)
cm_secs=$(sed -n 's/^training time \([0-9.]*\)s.*/\1/p' "$work/cmapss.out")
cols="unit,cycle,setting1,setting2,setting3,$(seq -s, -f 's%g' 1 21)"
"$work/trainer" run --class cmapss-rul --file "$data/cmapss-fd001/train_FD001.txt" --columns "$cols" --asset-col unit \
	-job.kind rul -job.members "$members" -job.holdout 0.05 -data-dir "$work/trainer-data" --dry-run >"$work/run.json" 2>"$work/run.log" ||
	{ cat "$work/run.log" >&2; exit 1; }
tail -2 "$work/run.log"
artifact=$(ls "$work"/trainer-data/jobs/*/cmapss-rul-*.json)
"$work/trainer" cmapss --data "$data/cmapss-fd001" --model "$artifact" | tee "$work/cmapss-run.out"
run_rmse=$(cmapss_field "$work/cmapss-run.out" 1)
run_phm=$(cmapss_field "$work/cmapss-run.out" 2)

echo "== Tennessee Eastman: trainer tep (train.Fit on d00.dat, the decision over d00_te ... d21_te, PCA baseline in the same run)"
"$work/trainer" tep --data "$data/tep" 2>"$work/tep.log" | tee "$work/tep.out" || { cat "$work/tep.log" >&2; exit 1; }
tep_field() { sed -n "s/^TEP summary: .*$1 \([0-9.]*\).*/\1/p" "$work/tep.out"; }
tep_ours=$(tep_field "18 faults ours")
tep_t2=$(tep_field "18 faults ours [0-9.]* T2")
tep_spe=$(tep_field "18 faults ours [0-9.]* T2 [0-9.]* SPE")
tep_ours21=$(tep_field "21 faults ours")
tep_far=$(awk -v f="$(tep_field "FAR own")" 'BEGIN { printf "%.1f", 100 * f }')
tep_own=$(tep_field "FDR own 18 faults")
tep_kept=$(tep_field "FDR own 18 faults [0-9.]* kept")

echo "== inference throughput (one core: -cpu 1)"
(cd "$root/pdmkit" && go test -run '^$' -bench 'ForwardWindow|PredictBatch' -benchmem -cpu 1 ./nn/ &&
	go test -run '^$' -bench 'Observe' -benchmem -cpu 1 ./anomaly/) | tee "$work/bench.out"
single=$(awk '/BenchmarkForwardWindow/ { printf "%.0f", 1e9 / $3 }' "$work/bench.out")
batch=$(awk '/BenchmarkPredictBatch/ { for (i = 1; i <= NF; i++) if ($(i+1) == "windows/s") printf "%.0f", $i }' "$work/bench.out")
observe=$(awk '/BenchmarkObserve/ { printf "%.0f", 1e9 / $3 }' "$work/bench.out")

cat <<TABLE

Detection quality on $(hostname) — nproc $cores, $(go version | awk '{print $3}'), $(date -u +%Y-%m-%dT%H:%MZ)
Every alert figure is from the alert column of scorer backtest: the scorer's decision, defaults unless said.

| benchmark | metric | result | target / reference |
|---|---|---|---|
$($quality skab "$data/skab" "$work/skab")
$($quality skab "$data/skab" "$work/skab-off" | sed 's/^| SKAB, /| SKAB, new-normal horizon off, /')
| SKAB wall time, 34 files (warm-up training, scoring, decision) | s | $skab_secs | |
$($quality corpus "$work/corpus" "$work/corpus-out")
$($quality sim "$work/sim" "$work/sim-out")
| C-MAPSS FD001, trainer cmapss ($members networks in one model, all 100 training engines) | RMSE / PHM08 | $rmse / $phm | RMSE ≤ 12.0 (DCNN 12.61 / 274, deep LSTM 16.14 / 338) |
| C-MAPSS FD001, trainer run (the job: 95 engines, 5 held out to validate) scored by trainer cmapss --model | RMSE / PHM08 | $run_rmse / $run_phm | RMSE ≤ 12.0 |
| C-MAPSS training time, trainer cmapss | s | $cm_secs | |
| Tennessee Eastman, mean FDR over the 18 detectable faults at 5 % FAR on d00_te | ours / PCA T² / PCA SPE | $tep_ours / $tep_t2 / $tep_spe | ≥ 0.90 (PCA SPE 0.785 on these files) |
| Tennessee Eastman, the same over all 21 faults | ours | $tep_ours21 | |
| Tennessee Eastman, the decision's own alerts: FAR on d00_te / mean FDR over 18 | % / share | $tep_far / $tep_kept (new-normal horizon off; $tep_own with it) | FAR ≤ 5 % |
| one window forward (80 inputs), one core | windows/s | $single | 0 allocs/op |
| batch scoring, 1024 windows per product, one core | windows/s | $batch | |
| online detector Observe, 8 sensors, one core | readings/s | $observe | |

SKAB targets: F1 ≥ 0.82 at FAR ≤ 12 % (Conv-AE 0.78 / 13.55 / 28.02).
Commands: scorer backtest --in F --out O --warmup-rows N [--label-col anomaly --exclude-cols changepoint] [--no-new-normal];
          edge-agent simulate --mode M --after 30h --rows 3400 --seed S; pdmcorpus -out DIR;
          trainer cmapss --data DIR --members $members [--model ARTIFACT]; trainer tep --data DIR/tep;
          trainer run --class cmapss-rul --file train_FD001.txt --columns unit,cycle,... --asset-col unit -job.kind rul -job.members $members -job.holdout 0.05 --dry-run
TABLE
