#!/usr/bin/env bash
# Installs what the tests need (SoftHSM2, opensc, oathtool, zbar, curl, openssl, Chromium, PostgreSQL) and runs every test.
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
# Run a command as the postgres user, whether we are root (CI) or not.
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
need=()
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || need+=(opensc)
command -v oathtool >/dev/null 2>&1 || need+=(oathtool)
command -v zbarimg >/dev/null 2>&1 || need+=(zbar-tools)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# PostgreSQL for the multi-node storage tests: the Debian cluster, a role and a database of our own.
if command -v pg_ctlcluster >/dev/null 2>&1; then
  $sudo pg_ctlcluster 15 main start 2>/dev/null || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
  as_postgres psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname='devrift_test'" | grep -q 1 \
    || as_postgres psql -qc "CREATE ROLE devrift_test LOGIN PASSWORD 'devrift_test' CREATEDB"
  # DROP DATABASE … WITH (FORCE) in the tests' clean-up must be able to end an autovacuum worker on the database.
  as_postgres psql -qc "GRANT pg_signal_backend TO devrift_test" >/dev/null
  # Two test assemblies run at once, each with several multi-node sites: Debian's 100 connections are too few.
  if [ "$(as_postgres psql -qtAc 'SHOW max_connections')" -lt 300 ]; then
    $sudo pg_conftool 15 main set max_connections 300
    $sudo pg_ctlcluster 15 main restart
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
  fi
  export DEVRIFT_TEST_POSTGRES="Host=127.0.0.1;Port=5432;Username=devrift_test;Password=devrift_test;Database=postgres"
fi

dotnet build DevRift.Hsm.sln -c Release -nologo -v quiet -clp:ErrorsOnly
log=$(mktemp)
set +e
dotnet test DevRift.Hsm.sln -c Release --no-build -nologo 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over all test assemblies.
awk '/(Passed|Failed)!/ { for (i = 1; i <= NF; i++) { if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log" | tr -d ','  | sed 's/ passed / passed, /; s/ failed / failed, /'
rm -f "$log"
exit "$status"
