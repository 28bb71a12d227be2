#!/usr/bin/env bash
# Gives the tests two openCryptoki soft tokens of their own (one per test assembly, which run at the same time),
# freshly initialised on every run: slots 30 and 31 of pkcsslotd, token directories devrift-test-a and -b.
# Prints the environment the tests read (DEVRIFT_TEST_OPENCRYPTOKI_A/B). Needs root (the system's pkcsslotd).
set -euo pipefail
conf=/etc/opencryptoki/opencryptoki.conf
so_pin=76543210
user_pin=1234567
if ! grep -q "tokname = devrift-test-a" "$conf"; then
  cat >>"$conf" <<'CONF'

# Test tokens of DevRift.Hsm's tests/hsm/opencryptoki-tokens.sh
slot 30
{
stdll = libpkcs11_sw.so
tokname = devrift-test-a
}

slot 31
{
stdll = libpkcs11_sw.so
tokname = devrift-test-b
}
CONF
fi
# A fresh token every run: wiped while pkcsslotd is stopped (re-initialising one in place leaves its SO login failing).
pkill -x pkcsslotd 2>/dev/null || true
for _ in $(seq 1 20); do pgrep -x pkcsslotd >/dev/null || break; sleep 0.2; done
rm -rf /var/lib/opencryptoki/devrift-test-a /var/lib/opencryptoki/devrift-test-b
pkcsslotd
for _ in $(seq 1 20); do pkcsconf -s >/dev/null 2>&1 && break; sleep 0.5; done
for slot in 30 31; do
  label="devrift-test-$([ $slot = 30 ] && echo a || echo b)"
  echo "$label" | pkcsconf -I -c $slot -S 87654321 >/dev/null
  pkcsconf -P -c $slot -S 87654321 -n $so_pin >/dev/null
  pkcsconf -u -c $slot -S $so_pin -n $user_pin >/dev/null
done
module=$(dpkg -L opencryptoki | grep -m1 '/pkcs11/libopencryptoki.so$')
echo "export DEVRIFT_TEST_OPENCRYPTOKI_A='module=$module;token=devrift-test-a;pin=$user_pin'"
echo "export DEVRIFT_TEST_OPENCRYPTOKI_B='module=$module;token=devrift-test-b;pin=$user_pin'"
