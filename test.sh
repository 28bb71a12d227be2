#!/usr/bin/env bash
# Installs what the tests need (SoftHSM2, openCryptoki, p11-kit, opensc, oathtool, zbar, curl, openssl, Chromium,
# PostgreSQL), starts pkcsslotd and PostgreSQL, and runs every test.
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
# Other PKCS#11 implementations (issue 11): openCryptoki's soft token and p11-kit's RPC forwarding
command -v pkcsslotd >/dev/null 2>&1 || [ -x /usr/sbin/pkcsslotd ] || need+=(opencryptoki)
command -v p11-kit >/dev/null 2>&1 || need+=(p11-kit)
dpkg -L p11-kit-modules 2>/dev/null | grep -q 'p11-kit-client.so$' || need+=(p11-kit-modules)
# A C compiler and pkcs11.h for tests/hsm/garbage-module.c (a module that answers with garbage)
command -v cc >/dev/null 2>&1 || need+=(gcc)
[ -f /usr/include/p11-kit-1/p11-kit/pkcs11.h ] || need+=(libp11-kit-dev)
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

# ---- PKCS#11 modules (issue 11): two fresh openCryptoki soft tokens (pkcsslotd), the p11-kit RPC client ----
eval "$($sudo env PATH="$PATH:/usr/sbin" tests/hsm/opencryptoki-tokens.sh)"
export DEVRIFT_TEST_OPENCRYPTOKI_A DEVRIFT_TEST_OPENCRYPTOKI_B
DEVRIFT_TEST_P11KIT_CLIENT=$(dpkg -L p11-kit-modules | grep -m1 'p11-kit-client.so$')
export DEVRIFT_TEST_P11KIT_CLIENT
garbage_dir=$(mktemp -d)
cc -shared -fPIC -O2 -Wall -Werror -I/usr/include/p11-kit-1 -o "$garbage_dir/garbage-module.so" tests/hsm/garbage-module.c -ldl
export DEVRIFT_TEST_GARBAGE_MODULE="$garbage_dir/garbage-module.so"
# ---- end of PKCS#11 modules ----

# ---- OpenAPI tools (issue 13): Redocly from tools/openapi (npm ci), Kiota from the local tool manifest ----
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || {
  echo "test.sh: installing nodejs npm" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
}
(cd tools/openapi && npm ci --no-audit --no-fund --silent)
dotnet tool restore >/dev/null
openapi_dir=$(mktemp -d)
# Client.Tests' OpenApiDocumentTests writes the document it fetched from the running appliance here.
export DEVRIFT_OPENAPI_OUT="$openapi_dir/v1.json"
# ---- end of OpenAPI tools ----

dotnet build DevRift.Hsm.sln -c Release -nologo -v quiet -clp:ErrorsOnly
log=$(mktemp)
set +e
dotnet test DevRift.Hsm.sln -c Release --no-build -nologo 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# ---- OpenAPI checks (issue 13): lint the served document, generate a client with Kiota, use it on the appliance ----
set +e
openapi_status=0
if [ -s "$DEVRIFT_OPENAPI_OUT" ]; then
  (cd tools/openapi && npx --no-install redocly lint "$DEVRIFT_OPENAPI_OUT" --config redocly.yaml --format=stylish) 2>&1 \
    | grep -v '[║╔╚]' | tee -a "$log"
  lint_status=${PIPESTATUS[0]}
  # Counted in the closing line as one test.
  if [ "$lint_status" -eq 0 ]; then echo "OpenAPI lint: Passed!  - Failed: 0, Passed: 1, Skipped: 0" >>"$log"
  else echo "OpenAPI lint: Failed!  - Failed: 1, Passed: 0, Skipped: 0" >>"$log"; openapi_status=1; fi
  dotnet kiota generate -l CSharp -d "$DEVRIFT_OPENAPI_OUT" -o tests/OpenApi.Tests/Generated -c DevRiftApiClient -n DevRift.Generated \
      --exclude-backward-compatible --clean-output --log-level Error >/dev/null \
    && dotnet build tests/OpenApi.Tests/DevRift.OpenApi.Tests.csproj -c Release -nologo -v quiet -clp:ErrorsOnly \
    && dotnet test tests/OpenApi.Tests/DevRift.OpenApi.Tests.csproj -c Release --no-build -nologo 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || openapi_status=1
else
  echo "test.sh: no OpenAPI document was written (OpenApiDocumentTests did not run)" | tee -a "$log"
  openapi_status=1
fi
rm -rf "$openapi_dir"
[ "$openapi_status" -eq 0 ] || [ "$status" -ne 0 ] || status=1
set -e
# ---- end of OpenAPI checks ----
# One closing line over all test assemblies.
awk '/(Passed|Failed)!/ { for (i = 1; i <= NF; i++) { if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log" | tr -d ','  | sed 's/ passed / passed, /; s/ failed / failed, /'
rm -f "$log"
exit "$status"
