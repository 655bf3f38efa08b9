#!/usr/bin/env bash
# The whole pipeline on the local stack, with simulated machines:
#
#   edge-agent (3 assets, pump-1 starts wearing a bearing)
#     → Mosquitto → ingest bridge → Kafka → ingest historian → InfluxDB
#                                        → scorer → alerts (Kafka + MQTT)
#   scorer → training requests (Kafka) → trainer → InfluxDB history
#     → a validated model version → the scorer's registry → hot swap
#
# Each asset starts on the scorer's online learner; once it has scored 400
# readings the scorer asks the trainer for a model of its own, which the
# trainer trains from InfluxDB, validates and activates if it passes.
#
# It prints the flow every few seconds and every alert as the scorer
# publishes it, then stops what it started. Run it through `make demo`,
# which builds the binaries and starts the stack first.
#
#   DEMO_SECONDS   how long to run (default 130)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=stack/env.sh
. deployments/stack/env.sh
BIN="$ROOT/bin"
RUN="$ROOT/.stack/demo"
SECONDS_TOTAL="${DEMO_SECONDS:-130}"
# Asset ids are unique across the fleet (they are the Kafka key and the
# scorer's state key), so each run names its machines afresh: every detector
# then learns from this run's readings only.
SITE="demo"
RUN_ID="$(date -u +%H%M%S)"
P1="pump-1-$RUN_ID" P2="pump-2-$RUN_ID" M1="motor-1-$RUN_ID"
mkdir -p "$RUN"
# The scorer's registry takes uploads only with its write token; the
# trainer publishes with the same one.
export PDM_API_TOKEN="${PDM_API_TOKEN:-demo-$RUN_ID}"
# The edge agent's control API (degrade, repair) has a token of its own.
export PDM_AGENT_TOKEN="${PDM_AGENT_TOKEN:-agent-$RUN_ID}"
rm -f "$RUN"/*.log
# The trainer signs every model version with the demo's key and the scorer
# loads only versions signed by it: the pair is made once, under the
# git-ignored .stack, and kept for later runs.
KEYS="$RUN/keys"
[[ -f "$KEYS/model.key" ]] || "$BIN/trainer" keygen -out "$KEYS" >/dev/null

# On the secured stack (PDM_SECURITY=on, the default) each service runs
# as its own user, so the ACL and the SCRAM users are what the demo
# exercises; as_user prints the environment that makes it so.
as_user() { # mqtt user or -, kafka user or -
	[[ $PDM_SECURITY == on ]] || return 0
	[[ $1 == - ]] || echo "PDM_MQTT_USERNAME=$1" "PDM_MQTT_PASSWORD_FILE=$PDM_SECRETS_DIR/mqtt/$1.password"
	[[ $2 == - ]] || echo "PDM_KAFKA_SASL_USERNAME=$2" "PDM_KAFKA_SASL_PASSWORD_FILE=$PDM_SECRETS_DIR/kafka/$2.password"
}
# The alert watcher reads as admin (mosquitto_sub takes no password file).
watch_args=(-h 127.0.0.1 -p "${PDM_MQTT_PORT}")
if [[ $PDM_SECURITY == on ]]; then
	watch_args+=(--cafile "$PDM_MQTT_TLS_CA_FILE" -u admin -P "$(<"$PDM_SECRETS_DIR/mqtt/admin.password")")
fi

pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "demo: stopped; logs in $RUN"
}
trap cleanup EXIT INT TERM

start() { # name, command...
	local name="$1"
	shift
	"$@" >"$RUN/$name.log" 2>&1 &
	pids+=("$!")
}

ready() { # admin address
	for _ in $(seq 1 100); do
		curl -fs "http://$1/readyz" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "demo: service on $1 is not ready; see $RUN" >&2
	exit 1
}

# summarize prints one line per alert event of this run, read from
# mosquitto_sub -v (retained states of earlier runs are skipped).
summarize() {
	python3 -c '
import json, sys
run = sys.argv[1]
for line in sys.stdin:
    topic, _, body = line.partition(" ")
    try:
        a = json.loads(body)
    except ValueError:
        continue
    if not a["asset"].endswith(run):
        continue
    top = ", ".join("%s %.0f%%" % (s["name"], 100 * s["share"]) for s in a.get("top_sensors", []))
    f = a.get("forecast")
    ttf = " failure in ~%.0fs (%.0f-%.0fs)" % (f["ttf_seconds"], f["ttf_low_seconds"], f["ttf_high_seconds"]) if f else ""
    print("demo: ALERT %s %-8s %-8s score %.3f top [%s]%s model %s %s" % (a["asset"], a["state"], a["severity"], a["score"], top, ttf, a["model"], a["version"]))
' "$RUN_ID"
}

# jobs_summary prints each training job of this run once, when it ends.
declare -A job_seen=()
jobs_summary() {
	local line
	while IFS= read -r line; do
		[[ -z "$line" || -n "${job_seen[$line]:-}" ]] && continue
		job_seen[$line]=1
		echo "demo: TRAINER $line"
	done < <(curl -fs http://127.0.0.1:8090/v1/jobs 2>/dev/null | python3 -c '
import json, sys
for j in json.load(sys.stdin).get("jobs") or []:
    if j.get("ended") and any(a.endswith(sys.argv[1]) for a in j.get("assets", [])):
        print("%s %s: %s" % (j["id"], j["state"], j["reason"]))
' "$RUN_ID" || true)
}

metric() { # admin address, metric name
	curl -fs "http://$1/metrics" 2>/dev/null | awk -v m="$2" '$1 == m { printf "%d", $2 }'
}

echo "demo: starting ingest bridge, historian and scorer"
# The demo's bridge keeps a persistent MQTT session; subscribing to the demo
# site only keeps other traffic on this broker (tests, benchmarks) out of it.
# GOMAXPROCS=1 as in docker-compose.yml: one core per bridge instance.
start bridge env GOMAXPROCS=1 $(as_user bridge ingest) "$BIN/ingest" bridge -http.addr 127.0.0.1:9102 -mqtt.client-id demo-bridge \
	-mqtt.share-group demo -mqtt.filter "pdm/v1/$SITE/+/readings"
start historian env $(as_user - ingest) "$BIN/ingest" historian -http.addr 127.0.0.1:9103 -kafka.group demo-historian
ready 127.0.0.1:9102
ready 127.0.0.1:9103
start scorer env $(as_user scorer scorer) "$BIN/scorer" serve -http.addr 127.0.0.1:8080 -kafka.group demo-scorer -scoring.cold-start 400 \
	-http.trainer-url http://127.0.0.1:8090 -models.trusted-keys "$KEYS/model.pub"
ready 127.0.0.1:8080
# Readings come 20 a second (50 ms apart): the trainer resamples to that
# step. The demo's models see minutes of history, so the promotion rule asks
# for a quarter of the injected faults, not the default half.
start trainer env $(as_user - trainer) "$BIN/trainer" serve -http.addr 127.0.0.1:8090 -kafka.group demo-trainer -data-dir "$RUN/trainer" \
	-signing.key-file "$KEYS/model.key" \
	-job.site "$SITE" -job.step 50ms -job.history 30m -job.min-rows 400 -job.epochs 40 -job.promote.min-detection 0.25
ready 127.0.0.1:8090
(umask 077 && printf '%s\n' "$PDM_API_TOKEN" >"$RUN/token")
echo "demo: operator console at http://127.0.0.1:8080/console/ while the demo runs (write token in $RUN/token)"

echo "demo: watching alerts on MQTT pdm/v1/$SITE/+/alerts"
mosquitto_sub "${watch_args[@]}" -t "pdm/v1/$SITE/+/alerts" -v >"$RUN/alerts.log" 2>&1 &
pids+=("$!")

# One simulated hour per real second, 20 readings per second per asset.
# The scorer's online learner takes each asset's first 400 readings (20 s)
# as normal and, 400 readings later, asks for a trained model; pump-1's
# bearing starts to wear after 60 simulated hours and fails 40 simulated
# hours later (about 100 s into the demo). At REPAIR_AT seconds the demo
# repairs it through the agent's control API, and the alert resolves.
REPAIR_AT="${DEMO_REPAIR_AT:-110}"
echo "demo: starting edge-agent: $P1 wears a bearing from t≈60s (failure ≈100s), $P2 and $M1 stay healthy"
rm -rf "$RUN/spool"
start agent env $(as_user gw-demo -) "$BIN/edge-agent" -site "$SITE" -agent-id demo-gw -http.addr 127.0.0.1:9101 \
	-assets "$P1=pump,$P2=pump,$M1=motor" -rate 20 -time-scale 3600 \
	-degrade "$P1=bearing_wear@60h/40h" -spool.dir "$RUN/spool"
ready 127.0.0.1:9101

shown=0
for ((t = 5; t <= SECONDS_TOTAL; t += 5)); do
	sleep 5
	printf 'demo: t=%3ds  published %6s  bridged %6s  stored %6s  scored %6s  dead-lettered %s\n' "$t" \
		"$(metric 127.0.0.1:9101 pdm_edge_readings_acked_total)" \
		"$(metric 127.0.0.1:9102 pdm_bridge_readings_total)" \
		"$(metric 127.0.0.1:9103 pdm_historian_points_total)" \
		"$(curl -fs http://127.0.0.1:8080/metrics | awk '/^pdm_scorer_readings_scored_total/ { s += $2 } END { printf "%d", s }')" \
		"$(curl -fs http://127.0.0.1:9102/metrics | awk '/^pdm_bridge_rejected_total/ { s += $2 } END { printf "%d", s }')"
	if ((t == REPAIR_AT)); then
		echo "demo: repairing $P1"
		curl -fs -XPOST -H @- "http://127.0.0.1:9101/v1/assets/$P1/repair" <<<"Authorization: Bearer $PDM_AGENT_TOKEN" >/dev/null || true
	fi
	jobs_summary
	lines=$(wc -l <"$RUN/alerts.log")
	if ((lines > shown)); then
		tail -n +"$((shown + 1))" "$RUN/alerts.log" | summarize
		shown=$lines
	fi
done
curl -fs -H @- http://127.0.0.1:9101/v1/assets >"$RUN/assets.json" <<<"Authorization: Bearer $PDM_AGENT_TOKEN" || true
echo "demo: what happened to this run's machines (ground truth from the simulator, alerts from MQTT):"
python3 - "$RUN_ID" "$RUN/alerts.log" "$RUN/assets.json" <<'PY' || true
import json, sys
from datetime import datetime
run, alerts_log, assets_json = sys.argv[1:]
ts = lambda s: datetime.fromisoformat(s.rstrip("Z")[:26])  # all times are UTC
events = []
for line in open(alerts_log):
    try:
        a = json.loads(line.partition(" ")[2])
    except ValueError:
        continue
    if a["asset"].endswith(run):
        events.append(a)
for m in json.load(open(assets_json)):
    mine = [e for e in events if e["asset"] == m["asset"]]
    opened = next((e for e in mine if e["state"] == "opened"), None)
    faults = m["history"] + m["active"]
    if not faults:
        print("  %-16s healthy all run: %s" % (m["asset"], "no alert" if not mine else "%d alert events (false alarm)" % len(mine)))
        continue
    f = faults[0]
    failed = f.get("failed_at") or f.get("failure_estimate")
    if opened:
        lead = (ts(failed) - ts(opened["last_reading_time"])).total_seconds()
        top = ", ".join(s["name"] for s in opened["top_sensors"])
        resolved = any(e["state"] == "resolved" for e in mine)
        print("  %-16s %s from %s: alert %s opened %.0f s before the simulated failure, top sensors %s, model %s %s%s" % (
            m["asset"], f["mode"], f["start"][11:19], opened["id"], lead, top, opened["model"], opened["version"],
            "; resolved after the repair" if resolved else ""))
    else:
        print("  %-16s %s from %s, failure at %s: no alert" % (m["asset"], f["mode"], f["start"][11:19], failed[11:19]))
PY
