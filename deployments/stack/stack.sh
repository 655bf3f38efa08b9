#!/usr/bin/env bash
# The local stack without Docker: Mosquitto, Kafka (KRaft) and InfluxDB 1.8
# on loopback, installed on first use and run as background processes that
# this script owns.
#
#   stack.sh up       install what is missing, start what is not running,
#                     wait until each server answers a real round trip,
#                     create the project's Kafka topics and InfluxDB database;
#                     also installs chromium for the console's browser test
#   stack.sh down     stop exactly the processes `up` started (pid files)
#   stack.sh status   show each server, its pid and whether it answers
#
# PDM_SECURITY=on (the default): TLS and a password per user on Mosquitto
# and Kafka, an ACL on Mosquitto, authentication on InfluxDB; the CA,
# certificates and passwords come from deployments/stack/certs.sh into
# .stack/secrets. PDM_SECURITY=off runs the servers open (plain TCP,
# anonymous), for debugging; switching needs `down` then `up`.
#
# Everything (data, logs, pid files, jars, binaries) lives in <repo>/.stack.
# `up` and `down` hold .stack/stack.lock, so several callers at once are
# safe: the second waits, then finds the stack running and only checks it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEPLOY="$ROOT/deployments"
STACK="$ROOT/.stack"
CONF="$STACK/conf"
LOGS="$STACK/logs"
RUN="$STACK/run"
BIN="$STACK/bin"

# Ports come from one place, env.sh. The addresses this script checks are
# always the local ones, whatever URLs the caller's environment points at.
unset PDM_MQTT_URL PDM_KAFKA_BROKERS PDM_INFLUX_URL
# shellcheck source-path=SCRIPTDIR source=env.sh
. "$DEPLOY/stack/env.sh"
PDM_INFLUX_RPC_PORT="${PDM_INFLUX_RPC_PORT:-8088}"

# How long to wait for a server to answer after starting it, and for a
# process to exit after SIGTERM before it gets SIGKILL.
START_TIMEOUT="${PDM_STACK_START_TIMEOUT:-120}"
STOP_TIMEOUT="${PDM_STACK_STOP_TIMEOUT:-30}"

KAFKA_VERSION_POM="$DEPLOY/kafka/pom.xml"
KAFKA_LIBS="$STACK/kafka/libs"
INFLUXD_VERSION="v1.8.10"

# mosquitto lives in /usr/sbin, which is not on every user's PATH.
export PATH="$PATH:/usr/sbin:/sbin"

log() { printf 'stack: %s\n' "$*" >&2; }
die() {
	printf 'stack: error: %s\n' "$*" >&2
	exit 1
}

SECRETS="$PDM_SECRETS_DIR"
case "$PDM_SECURITY" in
on | off) ;;
*) die "PDM_SECURITY=$PDM_SECURITY: want on or off" ;;
esac
secure() { [[ $PDM_SECURITY == on ]]; }

# Each mode keeps a Kafka storage of its own: the secured one is formatted
# with its SCRAM users, and switching modes loses no data of the other.
if secure; then
	KAFKA_DATA="$STACK/kafka/data-secure"
	INFLUX_AUTH=true
else
	KAFKA_DATA="$STACK/kafka/data"
	INFLUX_AUTH=false
fi
# Filled from the secrets when the secured Kafka configuration is rendered.
KAFKA_ADMIN_PASSWORD="" KAFKA_KEYSTORE_PASSWORD=""

# The CA, certificates and passwords, made once (certs.sh keeps what exists).
secrets() {
	secure || return 0
	"$DEPLOY/stack/certs.sh" "$SECRETS" || die "deployments/stack/certs.sh failed"
}

# ---------------------------------------------------------------- processes

# Each service is started with its rendered config file on the command line;
# that path is unique to this checkout, so a pid that was reused by another
# program after a crash is never mistaken for ours.
marker() {
	case "$1" in
	mosquitto) echo "$CONF/mosquitto.conf" ;;
	kafka) echo "$CONF/server.properties" ;;
	influxdb) echo "$CONF/influxdb.conf" ;;
	esac
}

# pid_of NAME prints the pid of our running NAME, or fails.
pid_of() {
	local pidfile="$RUN/$1.pid" pid
	[[ -s $pidfile ]] || return 1
	pid="$(<"$pidfile")"
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/cmdline ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(marker "$1")" || return 1
	echo "$pid"
}

# start NAME LOGFILE CMD... runs CMD in its own session (so it outlives the
# caller's terminal and process group) and records its pid. setsid execs CMD
# in place because a background job of a non-interactive shell is never a
# process group leader, so $! is CMD's own pid. The lock's file descriptor
# is closed for the child, or it would hold the lock for as long as it runs.
start() {
	local name="$1" out="$2"
	shift 2
	setsid "$@" >>"$out" 2>&1 </dev/null 9>&- &
	echo $! >"$RUN/$name.pid"
}

# stop NAME sends SIGTERM, waits up to STOP_TIMEOUT seconds, then SIGKILL.
stop() {
	local name="$1" pid i
	if ! pid="$(pid_of "$name")"; then
		rm -f "$RUN/$name.pid"
		return 0
	fi
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$name (pid $pid) did not exit after ${STOP_TIMEOUT}s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	fi
	rm -f "$RUN/$name.pid"
}

# check_port NAME VAR PORT fails when something that is not ours listens on
# PORT; it is called only for services that are not running.
check_port() {
	local name="$1" var="$2" port="$3" who
	who="$(ss -Hltnp "sport = :$port" 2>/dev/null || true)"
	if [[ -n $who ]]; then
		die "port $port ($var, needed by $name) is already in use by another process:
$who
stop that process or choose another port, e.g. $var=$((port + 10000)) $0 up"
	fi
}

# wait_for NAME CHECK... polls CHECK until it succeeds or START_TIMEOUT
# passes; on failure it shows the end of the service's log and stops it, so a
# half-started server is never left behind.
wait_for() {
	local name="$1" deadline=$((SECONDS + START_TIMEOUT))
	shift
	until "$@"; do
		# A pid that still runs may not have exec'd the server yet (a loaded
		# machine): only a process that is gone has exited.
		if ! pid_of "$name" >/dev/null && ! kill -0 "$(cat "$RUN/$name.pid" 2>/dev/null)" 2>/dev/null; then
			tail -n 30 "$LOGS/$name".* 2>/dev/null >&2 || true
			die "$name exited during start-up; logs in $LOGS"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 30 "$LOGS/$name".* 2>/dev/null >&2 || true
			stop "$name"
			die "$name did not become ready within ${START_TIMEOUT}s; logs in $LOGS"
		fi
		sleep 0.5
	done
}

# render TEMPLATE... OUT replaces the @NAME@ placeholders of config
# templates, concatenated into OUT, readable by its owner only (the secured
# configurations hold passwords; the secrets are hex, safe in sed).
render() {
	(umask 077 && sed -e "s|@STACK_DIR@|$STACK|g" \
		-e "s|@USER@|$(id -un)|g" \
		-e "s|@MQTT_PORT@|$PDM_MQTT_PORT|g" \
		-e "s|@KAFKA_PORT@|$PDM_KAFKA_PORT|g" \
		-e "s|@KAFKA_CONTROLLER_PORT@|$PDM_KAFKA_CONTROLLER_PORT|g" \
		-e "s|@INFLUX_PORT@|$PDM_INFLUX_PORT|g" \
		-e "s|@INFLUX_RPC_PORT@|$PDM_INFLUX_RPC_PORT|g" \
		-e "s|@SECRETS_DIR@|$SECRETS|g" \
		-e "s|@AUTH_DIR@|$CONF|g" \
		-e "s|@KAFKA_DATA@|$KAFKA_DATA|g" \
		-e "s|@KAFKA_ADMIN_PASSWORD@|$KAFKA_ADMIN_PASSWORD|g" \
		-e "s|@KAFKA_KEYSTORE_PASSWORD@|$KAFKA_KEYSTORE_PASSWORD|g" \
		-e "s|@INFLUX_AUTH@|$INFLUX_AUTH|g" \
		"${@:1:$#-1}" >"${!#}.tmp")
	mv "${!#}.tmp" "${!#}"
}

# changed STAMP FILES... is true when the sha256 of FILES differs from the
# one recorded in STAMP (or STAMP is missing); `stamp` records it.
digest() { cat "$@" | sha256sum | cut -d' ' -f1; }
changed() {
	local stamp="$1"
	shift
	[[ ! -f $stamp || "$(<"$stamp")" != "$(digest "$@")" ]]
}
stamp() {
	local stamp="$1"
	shift
	digest "$@" >"$stamp"
}

# ---------------------------------------------------------------- pdmstack

# The Go helper for Kafka checks, built once and rebuilt when its sources
# change. GOWORK=off builds it from pdmkit alone, so unfinished work in the
# service modules cannot break the stack; and when pdmkit itself is halfway
# through a change that does not compile, the last good binary is kept.
PDMSTACK="$BIN/pdmstack"
pdmstack_sources() {
	find "$ROOT/pdmkit/cmd/pdmstack" "$ROOT/pdmkit/compose" "$ROOT/pdmkit/stacktest" \
		-name '*.go' ! -name '*_test.go' | sort
	echo "$ROOT/pdmkit/go.mod"
	echo "$ROOT/pdmkit/go.sum"
}
build_pdmstack() {
	local -a src
	mapfile -t src < <(pdmstack_sources)
	if [[ -x $PDMSTACK ]] && ! changed "$STACK/pdmstack.sha256" "${src[@]}"; then
		return 0
	fi
	log "building pdmstack"
	if (cd "$ROOT/pdmkit" && GOWORK=off go build -o "$PDMSTACK.new" ./cmd/pdmstack) 2>"$LOGS/pdmstack-build.log"; then
		mv "$PDMSTACK.new" "$PDMSTACK"
		stamp "$STACK/pdmstack.sha256" "${src[@]}"
	elif [[ -x $PDMSTACK ]]; then
		log "warning: pdmkit/cmd/pdmstack does not build now (see $LOGS/pdmstack-build.log); using the previous build"
	else
		cat "$LOGS/pdmstack-build.log" >&2
		die "building pdmkit/cmd/pdmstack failed"
	fi
}

# ---------------------------------------------------------------- mosquitto

install_mosquitto() {
	command -v mosquitto >/dev/null && command -v mosquitto_pub >/dev/null &&
		command -v mosquitto_sub >/dev/null && return 0
	log "installing mosquitto from Debian's packages"
	[[ $(id -u) == 0 ]] || die "mosquitto is not installed and installing it needs root: apt-get install -y mosquitto mosquitto-clients"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
}

# ---------------------------------------------------------------- chromium

# The scorer's console test drives Debian's chromium headless; it is not a
# server, so `up` only installs it.
install_chromium() {
	command -v chromium >/dev/null && return 0
	log "installing chromium from Debian's packages (the console's browser test)"
	if [[ $(id -u) != 0 ]]; then
		# The servers do not need it: say so and let that one test fail.
		log "warning: chromium is not installed and installing it needs root: apt-get install -y chromium"
		return 0
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}

# A retained message makes the round trip independent of when the subscriber
# arrives; it is cleared again so no state is left on the broker.
# Secured, the check goes over TLS as the admin user.
mqtt_args() {
	MQTT_ARGS=(-h 127.0.0.1 -p "$PDM_MQTT_PORT")
	if secure; then
		MQTT_ARGS+=(--cafile "$SECRETS/ca.pem" -u admin -P "$(<"$SECRETS/mqtt/admin.password")")
	fi
}
mqtt_ready() {
	local topic="pdm/stack/health/$$-$RANDOM" want="ok-$RANDOM" got
	mqtt_args
	mosquitto_pub "${MQTT_ARGS[@]}" -q 1 -r -t "$topic" -m "$want" 2>/dev/null || return 1
	got="$(mosquitto_sub "${MQTT_ARGS[@]}" -q 1 -t "$topic" -C 1 -W 5 2>/dev/null)" || got=""
	mosquitto_pub "${MQTT_ARGS[@]}" -q 1 -r -n -t "$topic" 2>/dev/null || true
	[[ $got == "$want" ]]
}

up_mosquitto() {
	install_mosquitto
	if ! pid_of mosquitto >/dev/null; then
		check_port mosquitto PDM_MQTT_PORT "$PDM_MQTT_PORT"
		mkdir -p "$STACK/mosquitto/data"
		if secure; then
			"$DEPLOY/mosquitto/auth.sh" "$SECRETS" "$CONF" || die "deployments/mosquitto/auth.sh failed"
			render "$DEPLOY/mosquitto/mosquitto.conf" "$DEPLOY/mosquitto/mosquitto.secure.conf" "$CONF/mosquitto.conf"
		else
			render "$DEPLOY/mosquitto/mosquitto.conf" "$DEPLOY/mosquitto/mosquitto.open.conf" "$CONF/mosquitto.conf"
		fi
		log "starting mosquitto on 127.0.0.1:$PDM_MQTT_PORT (security $PDM_SECURITY)"
		start mosquitto "$LOGS/mosquitto.out" mosquitto -c "$CONF/mosquitto.conf"
	fi
	wait_for mosquitto mqtt_ready
}

# ---------------------------------------------------------------- kafka

# Jars are resolved again only when the pom changes.
install_kafka() {
	if [[ -d $KAFKA_LIBS ]] && ! changed "$STACK/kafka/pom.sha256" "$KAFKA_VERSION_POM"; then
		return 0
	fi
	log "resolving Kafka jars from Maven Central (first time takes a few minutes)"
	rm -rf "$KAFKA_LIBS.tmp"
	if ! mvn -q -B -f "$KAFKA_VERSION_POM" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.tmp" >"$LOGS/mvn.log" 2>&1; then
		tail -n 30 "$LOGS/mvn.log" >&2
		die "mvn could not resolve $KAFKA_VERSION_POM; full output in $LOGS/mvn.log"
	fi
	rm -rf "$KAFKA_LIBS"
	mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
	stamp "$STACK/kafka/pom.sha256" "$KAFKA_VERSION_POM"
}

# The JVM command line shared by the broker and the storage tool. 1 GiB of
# heap is plenty for local topics and leaves room for the rest of the stack.
KAFKA_JAVA=(java -Xms512m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
	-Dkafka.logs.dir="$LOGS"
	-Dlog4j2.configurationFile="$DEPLOY/kafka/log4j2.properties"
	-cp "$KAFKA_LIBS/*")

# The storage is formatted once, with a cluster id kept beside it; the
# secured one with a SCRAM user per .stack/secrets/kafka/<user>.password
# (pdmstack users adds those created later, on every start).
format_kafka() {
	local id_file="$STACK/kafka/cluster.id" f
	local -a scram=()
	[[ -f $KAFKA_DATA/meta.properties ]] && return 0
	mkdir -p "$KAFKA_DATA"
	if secure; then
		for f in "$SECRETS"/kafka/*.password; do
			scram+=(--add-scram "SCRAM-SHA-512=[name=$(basename "$f" .password),password=$(<"$f")]")
		done
	fi
	if [[ ! -s $id_file ]]; then
		"${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid 2>>"$LOGS/kafka.out" >"$id_file.tmp"
		mv "$id_file.tmp" "$id_file"
	fi
	log "formatting Kafka storage (cluster id $(<"$id_file"))"
	"${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --ignore-formatted \
		--cluster-id="$(<"$id_file")" -c "$CONF/server.properties" "${scram[@]}" >>"$LOGS/kafka.out" 2>&1 ||
		die "formatting Kafka storage failed; see $LOGS/kafka.out"
}

kafka_ready() {
	"$PDMSTACK" wait-kafka -brokers "$PDM_KAFKA_BROKERS" -timeout 20s 2>>"$LOGS/kafka.ready.log"
}

up_kafka() {
	build_pdmstack
	if ! pid_of kafka >/dev/null; then
		command -v java >/dev/null || die "java (17 or newer) is not installed"
		command -v mvn >/dev/null || die "mvn is not installed"
		check_port kafka PDM_KAFKA_PORT "$PDM_KAFKA_PORT"
		check_port kafka PDM_KAFKA_CONTROLLER_PORT "$PDM_KAFKA_CONTROLLER_PORT"
		install_kafka
		if secure; then
			KAFKA_ADMIN_PASSWORD="$(<"$SECRETS/kafka/admin.password")"
			KAFKA_KEYSTORE_PASSWORD="$(<"$SECRETS/kafka.p12.password")"
			render "$DEPLOY/kafka/server.properties" "$DEPLOY/kafka/server.secure.properties" "$CONF/server.properties"
		else
			render "$DEPLOY/kafka/server.properties" "$CONF/server.properties"
		fi
		format_kafka
		log "starting kafka on 127.0.0.1:$PDM_KAFKA_PORT (controller $PDM_KAFKA_CONTROLLER_PORT, security $PDM_SECURITY)"
		start kafka "$LOGS/kafka.out" "${KAFKA_JAVA[@]}" kafka.Kafka "$CONF/server.properties"
	fi
	wait_for kafka kafka_ready
	if secure; then
		"$PDMSTACK" users -brokers "$PDM_KAFKA_BROKERS" -dir "$SECRETS/kafka" -timeout 60s ||
			die "setting the Kafka users' SCRAM credentials failed"
	fi
	"$PDMSTACK" topics -brokers "$PDM_KAFKA_BROKERS" -file "$DEPLOY/kafka/topics.txt" -timeout 60s ||
		die "creating Kafka topics failed"
}

# ---------------------------------------------------------------- influxdb

# Built once; .stack/bin/influxd.version makes a version bump here rebuild it.
install_influxd() {
	if [[ -x $BIN/influxd && "$(cat "$BIN/influxd.version" 2>/dev/null)" == "$INFLUXD_VERSION" ]]; then
		return 0
	fi
	log "building influxd $INFLUXD_VERSION (about a minute)"
	GOBIN="$BIN" GOWORK=off GOFLAGS=-buildvcs=false \
		go install "github.com/influxdata/influxdb/cmd/influxd@$INFLUXD_VERSION" ||
		die "go install influxd $INFLUXD_VERSION failed"
	echo "$INFLUXD_VERSION" >"$BIN/influxd.version"
}

influx_ping() {
	[[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$PDM_INFLUX_URL/ping")" == 204 ]]
}

# Secured, requests go as the admin user; the credentials are in a curl
# config file, not on a command line.
INFLUX_CURL=()
influx_curl_auth() {
	secure || return 0
	(umask 077 && printf 'user = "admin:%s"\n' "$(<"$SECRETS/influx/admin.password")" >"$CONF/influx.curl")
	INFLUX_CURL=(-K "$CONF/influx.curl")
}

# InfluxDB 1.8 lets anyone create the first user, and only that one: the
# admin is created on the first secured start (an error afterwards, when it
# exists, is expected; influx_ready then proves the password).
influx_admin() {
	secure || return 0
	(umask 077 && printf "CREATE USER admin WITH PASSWORD '%s' WITH ALL PRIVILEGES" \
		"$(<"$SECRETS/influx/admin.password")" >"$CONF/influx-admin.query")
	curl -s --max-time 5 -o /dev/null -XPOST "$PDM_INFLUX_URL/query" --data-urlencode "q@$CONF/influx-admin.query" || true
	rm -f "$CONF/influx-admin.query"
}

influx_ready() {
	influx_ping || return 1
	curl -sf --max-time 5 -o /dev/null "${INFLUX_CURL[@]}" -XPOST "$PDM_INFLUX_URL/query" \
		--data-urlencode "q=CREATE DATABASE pdm" || return 1
	curl -sf --max-time 5 -o /dev/null "${INFLUX_CURL[@]}" -XPOST "$PDM_INFLUX_URL/api/v2/query" \
		-H 'Content-Type: application/vnd.flux' -H 'Accept: application/csv' \
		--data 'from(bucket: "pdm/autogen") |> range(start: -1m) |> limit(n: 1)'
}

up_influxdb() {
	if ! pid_of influxdb >/dev/null; then
		check_port influxdb PDM_INFLUX_PORT "$PDM_INFLUX_PORT"
		check_port influxdb PDM_INFLUX_RPC_PORT "$PDM_INFLUX_RPC_PORT"
		install_influxd
		mkdir -p "$STACK/influxdb"
		render "$DEPLOY/influxdb/influxdb.conf" "$CONF/influxdb.conf"
		log "starting influxdb on 127.0.0.1:$PDM_INFLUX_PORT (security $PDM_SECURITY)"
		start influxdb "$LOGS/influxdb.log" "$BIN/influxd" run -config "$CONF/influxdb.conf"
	fi
	influx_curl_auth
	wait_for influxdb influx_ping
	influx_admin
	wait_for influxdb influx_ready
}

# ---------------------------------------------------------------- commands

lock() {
	mkdir -p "$STACK" "$CONF" "$LOGS" "$RUN" "$BIN" "$STACK/kafka"
	exec 9>>"$STACK/stack.lock"
	if ! flock -n 9; then
		log "waiting for another stack.sh to finish (.stack/stack.lock)"
		flock -w 900 9 || die "timed out waiting for .stack/stack.lock"
	fi
}

cmd_up() {
	local t0=$SECONDS name
	lock
	# One mode for the whole stack: a server started in the other one is
	# not reconfigured behind its clients' backs.
	if [[ -s $RUN/security && "$(<"$RUN/security")" != "$PDM_SECURITY" ]]; then
		for name in mosquitto kafka influxdb; do
			pid_of "$name" >/dev/null &&
				die "the stack runs with PDM_SECURITY=$(<"$RUN/security"); run \`$0 down\` first to switch to PDM_SECURITY=$PDM_SECURITY"
		done
	fi
	echo "$PDM_SECURITY" >"$RUN/security"
	# Check every port before starting anything, so a conflict leaves
	# nothing half started.
	pid_of mosquitto >/dev/null || check_port mosquitto PDM_MQTT_PORT "$PDM_MQTT_PORT"
	if ! pid_of kafka >/dev/null; then
		check_port kafka PDM_KAFKA_PORT "$PDM_KAFKA_PORT"
		check_port kafka PDM_KAFKA_CONTROLLER_PORT "$PDM_KAFKA_CONTROLLER_PORT"
	fi
	if ! pid_of influxdb >/dev/null; then
		check_port influxdb PDM_INFLUX_PORT "$PDM_INFLUX_PORT"
		check_port influxdb PDM_INFLUX_RPC_PORT "$PDM_INFLUX_RPC_PORT"
	fi
	secrets
	up_mosquitto
	up_kafka
	up_influxdb
	install_chromium
	log "ready in $((SECONDS - t0))s, security $PDM_SECURITY: $PDM_MQTT_URL $PDM_KAFKA_BROKERS $PDM_INFLUX_URL (logs in $LOGS)"
}

cmd_down() {
	lock
	stop influxdb
	stop kafka
	stop mosquitto
	rm -f "$RUN/security"
	log "stopped"
}

cmd_status() {
	local name pid ready all=0 addr
	for name in mosquitto kafka influxdb; do
		case "$name" in
		mosquitto) addr="$PDM_MQTT_URL" ;;
		kafka) addr="$PDM_KAFKA_BROKERS" ;;
		influxdb) addr="$PDM_INFLUX_URL" ;;
		esac
		if pid="$(pid_of "$name")"; then
			ready="not answering"
			case "$name" in
			mosquitto) mqtt_ready && ready="ready" ;;
			kafka) [[ -x $PDMSTACK ]] && "$PDMSTACK" wait-kafka -brokers "$PDM_KAFKA_BROKERS" -timeout 10s 2>/dev/null && ready="ready" ;;
			influxdb) influx_ping && ready="ready" ;;
			esac
			[[ $ready == ready ]] || all=1
			printf '%-10s running  pid %-8s %-14s %s\n' "$name" "$pid" "$ready" "$addr"
		else
			all=1
			printf '%-10s stopped  %-12s %-14s %s\n' "$name" "" "" "$addr"
		fi
	done
	return "$all"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
*)
	echo "usage: $0 up|down|status" >&2
	exit 2
	;;
esac
