#!/usr/bin/env bash
# Counts the PKCS#11 calls behind each benchmarked HSM operation by running them through OpenSC's
# pkcs11-spy in front of SoftHSM2, and writes bench/results/Pkcs11Calls.md. Deterministic, takes seconds.
#
#   bench/count-calls.sh [OUTPUT.md]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project="$here/DevRift.Hsm.Bench"
output=${1:-$here/results/Pkcs11Calls.md}
spy=${PKCS11SPY_MODULE:-/usr/lib/x86_64-linux-gnu/pkcs11-spy.so}
softhsm=/usr/lib/softhsm/libsofthsm2.so

[ -f "$spy" ] || { echo "count-calls.sh: $spy not found (apt-get install opensc)" >&2; exit 1; }
command -v softhsm2-util >/dev/null || { echo "count-calls.sh: softhsm2-util not found" >&2; exit 1; }

dotnet build "$project/DevRift.Hsm.Bench.csproj" -c Release --nologo -v quiet

# The spy log holds PINs and MACs of the throw-away bench token: keep it private and delete it.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
mkdir -p "$(dirname "$output")"
PKCS11SPY="$softhsm" PKCS11SPY_OUTPUT="$log" PKCS11SPY_MODULE="$spy" \
  dotnet "$project/bin/Release/net10.0/DevRift.Hsm.Bench.dll" --count-calls "$output"
