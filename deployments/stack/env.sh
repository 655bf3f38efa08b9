# Addresses of the local stack for tests and tools, in the PDM_* variables
# the services read. Source it from the repository root with any POSIX sh:
#
#   . deployments/stack/env.sh
#
# Ports come from PDM_MQTT_PORT, PDM_KAFKA_PORT, PDM_KAFKA_CONTROLLER_PORT
# and PDM_INFLUX_PORT (the same variables deployments/stack/stack.sh uses).
# A URL or credential that is already set is kept, so the same tests can
# point at another stack, such as the one in docker-compose.yml.

: "${PDM_MQTT_PORT:=1883}"
: "${PDM_KAFKA_PORT:=9092}"
: "${PDM_KAFKA_CONTROLLER_PORT:=9093}"
: "${PDM_INFLUX_PORT:=8086}"
export PDM_MQTT_PORT PDM_KAFKA_PORT PDM_KAFKA_CONTROLLER_PORT PDM_INFLUX_PORT

# The repository: this file's folder under bash, else the current one (the
# documented way is to source it from the repository root).
if [ -n "${BASH_SOURCE:-}" ]; then
	_pdm_root="$(cd "$(dirname "$BASH_SOURCE")/../.." && pwd)"
else
	_pdm_root="$PWD"
fi

# PDM_SECURITY: on (TLS, passwords, ACL; the default) or off (plain,
# anonymous, for debugging). Unset, it is the mode the stack of this
# checkout was started in (.stack/run/security), else on; stack.sh uses it
# to start.
if [ -z "${PDM_SECURITY:-}" ] && [ -s "$_pdm_root/.stack/run/security" ]; then
	PDM_SECURITY="$(cat "$_pdm_root/.stack/run/security")"
fi
: "${PDM_SECURITY:=on}"
# Where deployments/stack/certs.sh keeps the CA, certificates and passwords.
: "${PDM_SECRETS_DIR:=$_pdm_root/.stack/secrets}"
export PDM_SECURITY PDM_SECRETS_DIR
unset _pdm_root

if [ "$PDM_SECURITY" = on ]; then
	# The clients' credentials are the admin users', for tests and tools;
	# each service has a user of its own (deployments/README.md).
	export PDM_MQTT_URL="${PDM_MQTT_URL:-ssl://127.0.0.1:$PDM_MQTT_PORT}"
	export PDM_MQTT_TLS_CA_FILE="${PDM_MQTT_TLS_CA_FILE:-$PDM_SECRETS_DIR/ca.pem}"
	export PDM_MQTT_USERNAME="${PDM_MQTT_USERNAME:-admin}"
	[ -n "${PDM_MQTT_PASSWORD:-}" ] || export PDM_MQTT_PASSWORD_FILE="${PDM_MQTT_PASSWORD_FILE:-$PDM_SECRETS_DIR/mqtt/$PDM_MQTT_USERNAME.password}"
	export PDM_KAFKA_TLS_CA_FILE="${PDM_KAFKA_TLS_CA_FILE:-$PDM_SECRETS_DIR/ca.pem}"
	export PDM_KAFKA_SASL_MECHANISM="${PDM_KAFKA_SASL_MECHANISM:-SCRAM-SHA-512}"
	export PDM_KAFKA_SASL_USERNAME="${PDM_KAFKA_SASL_USERNAME:-admin}"
	[ -n "${PDM_KAFKA_SASL_PASSWORD:-}" ] || export PDM_KAFKA_SASL_PASSWORD_FILE="${PDM_KAFKA_SASL_PASSWORD_FILE:-$PDM_SECRETS_DIR/kafka/$PDM_KAFKA_SASL_USERNAME.password}"
	# InfluxDB 1.8 takes "user:password" as the token.
	[ -n "${PDM_INFLUX_TOKEN:-}" ] || export PDM_INFLUX_TOKEN_FILE="${PDM_INFLUX_TOKEN_FILE:-$PDM_SECRETS_DIR/influx/admin.token}"
else
	export PDM_MQTT_URL="${PDM_MQTT_URL:-tcp://127.0.0.1:$PDM_MQTT_PORT}"
	# Empty: authentication is off on the local InfluxDB.
	export PDM_INFLUX_TOKEN="${PDM_INFLUX_TOKEN:-}"
fi
export PDM_KAFKA_BROKERS="${PDM_KAFKA_BROKERS:-127.0.0.1:$PDM_KAFKA_PORT}"
export PDM_INFLUX_URL="${PDM_INFLUX_URL:-http://127.0.0.1:$PDM_INFLUX_PORT}"
# InfluxDB 1.8 through influxdb-client-go: bucket is "database/retention".
export PDM_INFLUX_BUCKET="${PDM_INFLUX_BUCKET:-pdm/autogen}"
