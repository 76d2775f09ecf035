#!/bin/sh
# Adds the PEM bundle in the `extra_ca` build secret (if one was given) to the image's trust store, so builds and
# the bot work behind a TLS-inspecting proxy. One file per certificate: update-ca-certificates reads one each.
set -eu
src=/run/secrets/extra_ca
[ -s "$src" ] || { echo "extra CA: none given"; exit 0; }
dir=${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}
awk -v dir="$dir" '
  /-----BEGIN CERTIFICATE-----/ { n++; inside = 1; out = sprintf("%s/extra-%02d.crt", dir, n) }
  inside { print >> out }
  /-----END CERTIFICATE-----/ { inside = 0; close(out) }' "$src"
update-ca-certificates >/dev/null
echo "extra CA: added $(ls "$dir"/extra-*.crt | wc -l) certificate(s)"
