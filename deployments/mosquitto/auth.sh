#!/usr/bin/env bash
# Mosquitto's password file and ACL for the secured stack, from the
# passwords deployments/stack/certs.sh wrote:
#
#   auth.sh SECRETS_DIR OUT_DIR
#
# writes OUT_DIR/mosquitto.passwd (every SECRETS_DIR/mqtt/<user>.password,
# hashed) and OUT_DIR/mosquitto.acl (acl.conf, then one block per gateway
# of gateways.txt granting it pdm/v1/<site>/# and spBv1.0/<site>/#).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SECRETS="${1:?usage: auth.sh SECRETS_DIR OUT_DIR}"
OUT="${2:?usage: auth.sh SECRETS_DIR OUT_DIR}"
export PATH="$PATH:/usr/sbin:/sbin"

umask 077
mkdir -p "$OUT"
: >"$OUT/mosquitto.passwd.tmp"
for f in "$SECRETS"/mqtt/*.password; do
	[[ -e $f ]] || { echo "auth: no passwords in $SECRETS/mqtt (run deployments/stack/certs.sh)" >&2; exit 1; }
	mosquitto_passwd -b "$OUT/mosquitto.passwd.tmp" "$(basename "$f" .password)" "$(<"$f")"
done
mv "$OUT/mosquitto.passwd.tmp" "$OUT/mosquitto.passwd"

{
	cat "$HERE/acl.conf"
	sed -e 's/#.*//' "$HERE/gateways.txt" | while read -r user site; do
		[[ -n $user ]] || continue
		[[ -n $site ]] || { echo "auth: gateways.txt: user $user has no site" >&2; exit 1; }
		printf '\n# gateway of site %s\nuser %s\ntopic readwrite pdm/v1/%s/#\ntopic readwrite spBv1.0/%s/#\ntopic read pdm/ingest/joined\n' \
			"$site" "$user" "$site" "$site"
	done
} >"$OUT/mosquitto.acl.tmp"
mv "$OUT/mosquitto.acl.tmp" "$OUT/mosquitto.acl"
