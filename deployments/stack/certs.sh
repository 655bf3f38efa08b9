#!/usr/bin/env bash
# Local secrets for the secured stack: a CA, server certificates for
# Mosquitto and Kafka (SAN 127.0.0.1 and localhost), and one random password
# per broker user, written into DIR (default <repo>/.stack/secrets, which is
# git-ignored). Nothing here is ever committed.
#
#   certs.sh [DIR]
#
# Idempotent: what exists is kept (a CA is never replaced under certificates
# it signed), so running it again only adds what is missing, such as the
# password of a gateway added to deployments/mosquitto/gateways.txt. Delete
# DIR to start over.
#
# DIR afterwards:
#   ca.pem                    the CA clients trust (tls.ca_file)
#   ca.key                    its key (stays here)
#   mosquitto.pem/.key        Mosquitto's server certificate
#   kafka.pem/.key, kafka.p12 Kafka's server certificate, also as PKCS#12
#   kafka.p12.password        the PKCS#12 store's password
#   mqtt/<user>.password      one per MQTT user: admin, bridge, scorer, each
#                             gateway of deployments/mosquitto/gateways.txt
#   kafka/<user>.password     one per Kafka (SCRAM) user: admin, ingest,
#                             scorer, trainer
#   influx/admin.password     the InfluxDB admin's password, and
#   influx/admin.token        admin:<password>, the clients' token
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${1:-$ROOT/.stack/secrets}"
GATEWAYS="$ROOT/deployments/mosquitto/gateways.txt"
DAYS=825

log() { printf 'certs: %s\n' "$*" >&2; }

umask 077
mkdir -p "$DIR/mqtt" "$DIR/kafka" "$DIR/influx"

# password FILE writes a random password (hex, so it needs no quoting in
# any config format) unless FILE exists.
password() {
	[[ -s $1 ]] && return 0
	openssl rand -hex 24 >"$1.tmp"
	mv "$1.tmp" "$1"
}

if [[ ! -s $DIR/ca.pem || ! -s $DIR/ca.key ]]; then
	log "creating the local CA in $DIR"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$DIR/ca.key.tmp" -out "$DIR/ca.pem.tmp" -days "$DAYS" \
		-subj "/CN=pdm local CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	mv "$DIR/ca.key.tmp" "$DIR/ca.key"
	mv "$DIR/ca.pem.tmp" "$DIR/ca.pem"
	# Certificates of an older CA would not verify any more.
	rm -f "$DIR/mosquitto.pem" "$DIR/kafka.pem" "$DIR/kafka.p12"
fi

# server NAME USAGE issues NAME.pem/NAME.key for 127.0.0.1 and localhost
# with the extended key usage USAGE.
server() {
	local name="$1" usage="$2"
	[[ -s $DIR/$name.pem && -s $DIR/$name.key ]] && return 0
	log "issuing the $name server certificate"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$DIR/$name.key.tmp" -out "$DIR/$name.csr" -subj "/CN=$name" 2>/dev/null
	openssl x509 -req -in "$DIR/$name.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" \
		-CAcreateserial -out "$DIR/$name.pem.tmp" -days "$DAYS" \
		-extfile <(printf '%s\n' \
			"subjectAltName=IP:127.0.0.1,DNS:localhost" \
			"basicConstraints=critical,CA:FALSE" \
			"keyUsage=critical,digitalSignature,keyEncipherment" \
			"extendedKeyUsage=$usage") 2>/dev/null
	rm -f "$DIR/$name.csr"
	mv "$DIR/$name.key.tmp" "$DIR/$name.key"
	mv "$DIR/$name.pem.tmp" "$DIR/$name.pem"
	rm -f "$DIR/$name.p12"
}
server mosquitto serverAuth
# Kafka's broker also presents its certificate as a client, to the
# controller listener, which takes no one else.
server kafka serverAuth,clientAuth

# Kafka's JVM reads the key and chain from a PKCS#12 store.
password "$DIR/kafka.p12.password"
if [[ ! -s $DIR/kafka.p12 ]]; then
	openssl pkcs12 -export -name kafka -in "$DIR/kafka.pem" -inkey "$DIR/kafka.key" \
		-certfile "$DIR/ca.pem" -out "$DIR/kafka.p12.tmp" \
		-passout "file:$DIR/kafka.p12.password"
	mv "$DIR/kafka.p12.tmp" "$DIR/kafka.p12"
fi

for user in admin bridge scorer $(sed -e 's/#.*//' "$GATEWAYS" | awk 'NF {print $1}'); do
	password "$DIR/mqtt/$user.password"
done
for user in admin ingest scorer trainer; do
	password "$DIR/kafka/$user.password"
done
password "$DIR/influx/admin.password"
# What InfluxDB 1.8 clients pass as their token.
if [[ ! -s $DIR/influx/admin.token ]]; then
	printf 'admin:%s\n' "$(<"$DIR/influx/admin.password")" >"$DIR/influx/admin.token"
fi
log "secrets ready in $DIR"
