#!/usr/bin/env bash
# Builds the BenchmarkDotNet suite in Release and runs it; every argument goes to BenchmarkDotNet.
#
#   bench/run.sh                                   # all benchmarks, default job
#   bench/run.sh --filter '*Totp*' --job short     # a subset, a quicker job
#
# Each benchmark case runs in its own process, which makes and deletes its own SoftHSM2 token (see
# DevRift.Hsm.Bench/BenchToken.cs); only softhsm2-util and /usr/lib/softhsm/libsofthsm2.so are needed.
# The GitHub-markdown reports are copied to bench/results/<Class>.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project="$here/DevRift.Hsm.Bench"
artifacts="$here/BenchmarkDotNet.Artifacts"
results="$here/results"

command -v softhsm2-util >/dev/null || { echo "run.sh: softhsm2-util not found (run softhsm/setup.sh or apt-get install softhsm2)" >&2; exit 1; }

dotnet build "$project/DevRift.Hsm.Bench.csproj" -c Release --nologo

# BenchmarkSwitcher asks interactively which benchmarks to run unless told: default to all of them.
args=("$@")
select_given=false
for a in "${args[@]}"; do
  case "$a" in
    -f|--filter|--filter=*|--list|--list=*|-h|--help|--info|--version) select_given=true ;;
  esac
done
if [ "$select_given" = false ]; then
  args+=(--filter '*')
fi

rm -rf "$artifacts/results"
(cd "$project" && dotnet "bin/Release/net10.0/DevRift.Hsm.Bench.dll" --artifacts "$artifacts" "${args[@]}")

mkdir -p "$results"
shopt -s nullglob
copied=0
for report in "$artifacts"/results/*-report-github.md; do
  name=$(basename "$report" -report-github.md)
  name=${name#DevRift.Hsm.Bench.}
  cp "$report" "$results/$name.md"
  echo "run.sh: $results/$name.md"
  copied=$((copied + 1))
done
[ "$copied" -gt 0 ] || echo "run.sh: no report produced (nothing matched the filter?)" >&2
