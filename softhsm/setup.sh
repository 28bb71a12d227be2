#!/usr/bin/env bash
# Installs SoftHSM2 (and opensc's pkcs11-tool) when missing and initialises one token, non-interactively
# and idempotently, in a directory of its own.
#
#   softhsm/setup.sh DIR [LABEL]
#
# Leaves DIR/softhsm2.conf (point SOFTHSM2_CONF at it), DIR/tokens/, and the generated user PIN in DIR/user.pin
# (mode 0600). The security officer (SO) PIN, which can reset the user PIN and re-initialise the token, is printed
# once on standard error when the token is created and kept nowhere: store it offline. A second run with the same
# DIR changes nothing.
set -euo pipefail

dir=${1:?usage: softhsm/setup.sh DIR [LABEL]}
label=${2:-devrift}

need=()
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || need+=(opensc)
if [ ${#need[@]} -gt 0 ]; then
  echo "softhsm: installing ${need[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

mkdir -p "$dir/tokens"
chmod 700 "$dir" "$dir/tokens"
dir=$(cd "$dir" && pwd)
conf="$dir/softhsm2.conf"
if [ ! -f "$conf" ]; then
  cat > "$conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
fi
export SOFTHSM2_CONF="$conf"

umask 077
if [ ! -s "$dir/user.pin" ]; then
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$dir/user.pin"
fi
chmod 600 "$dir/user.pin"

if softhsm2-util --show-slots 2>/dev/null | grep -qE "^\s*Label:\s+$label\s*$"; then
  if [ -e "$dir/so.pin" ]; then
    echo "softhsm: $dir/so.pin keeps the SO PIN beside the user PIN; move it offline and delete it" >&2
  fi
  exit 0
fi
so_pin=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
softhsm2-util --init-token --free --label "$label" \
  --pin "$(cat "$dir/user.pin")" --so-pin "$so_pin" >/dev/null
echo "softhsm: initialised token '$label' in $dir/tokens" >&2
echo "softhsm: its SO PIN (shown once, kept nowhere; store it offline: it resets the user PIN): $so_pin" >&2
