# Addresses of the local stack for tests and tools, in the PDM_* variables
# the services read. Source it from the repository root with any POSIX sh:
#
#   . deployments/stack/env.sh
#
# Ports come from PDM_MQTT_PORT, PDM_KAFKA_PORT, PDM_KAFKA_CONTROLLER_PORT
# and PDM_INFLUX_PORT (the same variables deployments/stack/stack.sh uses).
# A URL that is already set is kept, so the same tests can point at another
# stack, such as the one in docker-compose.yml.

: "${PDM_MQTT_PORT:=1883}"
: "${PDM_KAFKA_PORT:=9092}"
: "${PDM_KAFKA_CONTROLLER_PORT:=9093}"
: "${PDM_INFLUX_PORT:=8086}"
export PDM_MQTT_PORT PDM_KAFKA_PORT PDM_KAFKA_CONTROLLER_PORT PDM_INFLUX_PORT

export PDM_MQTT_URL="${PDM_MQTT_URL:-tcp://127.0.0.1:$PDM_MQTT_PORT}"
export PDM_KAFKA_BROKERS="${PDM_KAFKA_BROKERS:-127.0.0.1:$PDM_KAFKA_PORT}"
export PDM_INFLUX_URL="${PDM_INFLUX_URL:-http://127.0.0.1:$PDM_INFLUX_PORT}"
# InfluxDB 1.8 through influxdb-client-go: bucket is "database/retention".
export PDM_INFLUX_BUCKET="${PDM_INFLUX_BUCKET:-pdm/autogen}"
# Empty: authentication is off on the local InfluxDB.
export PDM_INFLUX_TOKEN="${PDM_INFLUX_TOKEN:-}"
