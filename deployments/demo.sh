#!/usr/bin/env bash
# The whole pipeline on the local stack, with simulated machines:
#
#   edge-agent (3 assets, pump-1 starts wearing a bearing)
#     → Mosquitto → ingest bridge → Kafka → ingest historian → InfluxDB
#                                        → scorer → alerts (Kafka + MQTT)
#
# It prints the flow every few seconds and every alert as the scorer
# publishes it, then stops what it started. Run it through `make demo`,
# which builds the binaries and starts the stack first.
#
#   DEMO_SECONDS   how long to run (default 120)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=stack/env.sh
. deployments/stack/env.sh
BIN="$ROOT/bin"
RUN="$ROOT/.stack/demo"
SECONDS_TOTAL="${DEMO_SECONDS:-120}"
SITE="demo"
mkdir -p "$RUN"
rm -f "$RUN"/*.log

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

metric() { # admin address, metric name
	curl -fs "http://$1/metrics" 2>/dev/null | awk -v m="$2" '$1 == m { printf "%d", $2 }'
}

echo "demo: starting ingest bridge, historian and scorer"
# The demo's bridge keeps a persistent MQTT session; subscribing to the demo
# site only keeps other traffic on this broker (tests, benchmarks) out of it.
start bridge "$BIN/ingest" bridge -http-addr 127.0.0.1:9102 -mqtt.client-id demo-bridge \
	-mqtt.share-group demo -mqtt.filter "pdm/v1/$SITE/+/readings"
start historian "$BIN/ingest" historian -http-addr 127.0.0.1:9103 -kafka.group-id demo-historian
ready 127.0.0.1:9102
ready 127.0.0.1:9103
if [[ -x $BIN/scorer ]] && "$BIN/scorer" serve -h >/dev/null 2>&1; then
	start scorer "$BIN/scorer" serve -http-addr 127.0.0.1:8080
	ready 127.0.0.1:8080
fi

echo "demo: watching alerts on MQTT pdm/v1/$SITE/+/alerts"
mosquitto_sub -h 127.0.0.1 -p "${PDM_MQTT_PORT}" -t "pdm/v1/$SITE/+/alerts" -v >"$RUN/alerts.log" 2>&1 &
pids+=("$!")

echo "demo: starting edge-agent: pump-1 wears a bearing, pump-2 and motor-1 stay healthy"
start agent "$BIN/edge-agent" -site "$SITE" -agent-id demo-gw -http-addr 127.0.0.1:9101 \
	-assets pump-1=pump,pump-2=pump,motor-1=motor -rate 10 -time-scale 600 \
	-degrade "pump-1=bearing_wear@2h/12h" -spool.dir "$RUN/spool"
ready 127.0.0.1:9101

shown=0
for ((t = 5; t <= SECONDS_TOTAL; t += 5)); do
	sleep 5
	printf 'demo: t=%3ds  published %6s  bridged %6s  stored %6s  dead-lettered %s\n' "$t" \
		"$(metric 127.0.0.1:9101 pdm_edge_readings_acked_total)" \
		"$(metric 127.0.0.1:9102 pdm_bridge_readings_total)" \
		"$(metric 127.0.0.1:9103 pdm_historian_points_total)" \
		"$(curl -fs http://127.0.0.1:9102/metrics | awk '/^pdm_bridge_rejected_total/ { s += $2 } END { printf "%d", s }')"
	lines=$(wc -l <"$RUN/alerts.log")
	if ((lines > shown)); then
		tail -n +"$((shown + 1))" "$RUN/alerts.log" | sed 's/^/demo: ALERT /'
		shown=$lines
	fi
done
echo "demo: asset state and ground truth from the simulator:"
curl -fs http://127.0.0.1:9101/v1/assets || true
echo
