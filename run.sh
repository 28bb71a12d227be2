#!/usr/bin/env bash
# Runs the appliance on its embedded default: a SoftHSM2 token and SQLite under ./data (or --data DIR),
# HTTP on 127.0.0.1:8080 (or --urls URL). Further arguments are host configuration (--Section:Key=value), passed
# through unchanged: the appliance checks every key, so an unknown flag such as --port stops it with one line.
set -euo pipefail
# Ctrl-C (or a TERM) at any moment stops the script, even when the child that had the terminal exits 0 on it.
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM
cd "$(dirname "$0")"

data=./data
urls=http://127.0.0.1:8080
rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=${2:?--data needs a directory}; shift 2 ;;
    --data=*) data=${1#--data=}; shift ;;
    --urls) urls=${2:?--urls needs a URL}; shift 2 ;;
    --urls=*) urls=${1#--urls=}; shift ;;
    *) rest+=("$1"); shift ;;
  esac
done

if ! command -v dotnet >/dev/null 2>&1; then
  echo "run.sh: the .NET 10 SDK (dotnet) is required" >&2
  exit 1
fi

mkdir -p "$data"
data=$(cd "$data" && pwd)
./softhsm/setup.sh "$data/softhsm" devrift
export SOFTHSM2_CONF="$data/softhsm/softhsm2.conf"

if [ ! -f src/Api/bin/Release/net10.0/DevRift.Hsm.Api.dll ]; then
  echo "run.sh: building the appliance (first run: restores packages and compiles, about a minute)…" >&2
else
  echo "run.sh: building the appliance (if anything changed)…" >&2
fi
dotnet build src/Api/DevRift.Hsm.Api.csproj -c Release -nologo -v quiet -clp:ErrorsOnly >&2
app=src/Api/bin/Release/net10.0/DevRift.Hsm.Api.dll

dotnet "$app" init --Data:Directory="$data" --urls="$urls" ${rest[@]+"${rest[@]}"}
exec dotnet "$app" serve --Data:Directory="$data" --urls="$urls" ${rest[@]+"${rest[@]}"}
