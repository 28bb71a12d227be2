#!/usr/bin/env bash
# The HTTP load harness of issue 10: the appliance against a trivial Kestrel endpoint (bench/http/Baseline), both
# driven by wrk with one Lua script (bench/http/lua/bench.lua), alternated A B A B A B per scenario so that each
# ratio is measured in one run. See bench/http/README.md.
#
#   bench/http/run.sh                 # full run (~20-25 min): SQLite and PostgreSQL, 10k and 100k enrolled factors
#   bench/http/run.sh --quick         # a couple of minutes: small N, 1-second runs
#   bench/http/run.sh --sizes 2000,5000 --duration 3 --dbs sqlite --rounds 3 --max-rss-mb 4096 --no-spy --no-build
#
# Writes bench/results/http-<UTC date>.md (http-quick-… with --quick) and the raw wrk output beside it in
# bench/results/http-raw/<same name>/. Everything it starts listens on 127.0.0.1 and is killed on exit or Ctrl-C.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
command_line="bench/http/run.sh${*:+ $*}"

quick=false
sizes=10000,100000
duration=5
rounds=3
dbs=sqlite,postgres
max_rss_mb=4096
spy=true
build=true
port=18430
for arg in "$@"; do [ "$arg" = --quick ] && quick=true; done
if [ "$quick" = true ]; then sizes=500,1500; duration=1; fi
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) shift ;;
    --sizes) sizes=${2:?}; shift 2 ;;
    --duration) duration=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --dbs) dbs=${2:?}; shift 2 ;;
    --max-rss-mb) max_rss_mb=${2:?}; shift 2 ;;
    --no-spy) spy=false; shift ;;
    --no-build) build=false; shift ;;
    --port) port=${2:?}; shift 2 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
IFS=, read -r -a size_list <<< "$sizes"
IFS=, read -r -a db_list <<< "$dbs"
[ "$duration" -ge 1 ] && [ "$rounds" -ge 1 ] || { echo "run.sh: --duration and --rounds must be at least 1" >&2; exit 2; }

stamp=$(date -u +%Y%m%d-%H%M)
name=http-$stamp
[ "$quick" = true ] && name=http-quick-$stamp
results_dir="$repo/bench/results"
raw="$results_dir/http-raw/$name"
report="$results_dir/$name.md"
mkdir -p "$raw"
tsv="$raw/results.tsv"
: > "$tsv"

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# ---------------------------------------------------------------- tools
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v curl >/dev/null 2>&1 || need+=(curl)
[ -f /usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so ] || need+=(opensc)
if [[ ",$dbs," == *,postgres,* ]] && ! [ -x /usr/lib/postgresql/15/bin/postgres ]; then need+=(postgresql); fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v dotnet >/dev/null 2>&1 || { echo "run.sh: the .NET 10 SDK (dotnet) is required" >&2; exit 1; }

if [ "$build" = true ]; then
  log "building the appliance, the baseline and the driver (Release)"
  for project in src/Api/DevRift.Hsm.Api.csproj bench/http/Baseline/DevRift.Hsm.Bench.Baseline.csproj \
                 bench/http/Driver/DevRift.Hsm.Bench.Driver.csproj; do
    build_log=$(dotnet build "$repo/$project" -c Release -nologo -v quiet -clp:ErrorsOnly 2>&1) \
      || { printf '%s\n' "$build_log" >&2; echo "run.sh: building $project failed" >&2; exit 1; }
  done
fi
appliance_dll="$repo/src/Api/bin/Release/net10.0/DevRift.Hsm.Api.dll"
baseline_dll="$repo/bench/http/Baseline/bin/Release/net10.0/DevRift.Hsm.Bench.Baseline.dll"
driver() { dotnet "$repo/bench/http/Driver/bin/Release/net10.0/DevRift.Hsm.Bench.Driver.dll" "$@"; }

# ---------------------------------------------------------------- clean-up of everything started here
work=$(mktemp -d /tmp/devrift-hbench.XXXXXX)
chmod 700 "$work"
pids=()
pg_dbs=()
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
cleanup() {
  local pid db
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  for db in "${pg_dbs[@]}"; do as_postgres psql -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$port" $((port + 1)); do port_free "$p" || { echo "run.sh: 127.0.0.1:$p is in use (--port)" >&2; exit 1; }; done
app_url=http://127.0.0.1:$port
base_url=http://127.0.0.1:$((port + 1))

wait_healthy() { # URL PID
  for _ in $(seq 1 120); do
    curl -fsS -o /dev/null "$1/healthz" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "run.sh: the server on $1 exited during start-up" >&2; return 1; }
    sleep 0.5
  done
  echo "run.sh: $1 did not become healthy in 60 s" >&2
  return 1
}
stop_server() { # PID
  kill "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
# keep_server_problems LABEL: the appliance's warnings and errors (its logs never carry secrets) beside the wrk output,
# so that an unexpected status in the report can be traced to its cause after the data directory is gone.
keep_server_problems() {
  grep -E -A1 '^(warn|fail|crit):' "$work/$1/serve.log" > "$raw/$1-serve-problems.log" 2>/dev/null || true
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg | tr ' ' /; }
record() { local IFS=$'\t'; echo "$*" >> "$tsv"; }

# ---------------------------------------------------------------- the servers
log "starting the baseline on $base_url"
dotnet "$baseline_dll" --urls="$base_url" > "$raw/baseline.log" 2>&1 &
base_pid=$!
pids+=("$base_pid")
wait_healthy "$base_url" "$base_pid"

app_pid=
# start_appliance LABEL [host configuration…]: a fresh token and data directory, init, serve, bench settings.
start_appliance() {
  local label=$1; shift
  local dir="$work/$label"
  mkdir -p "$dir"
  "$repo/softhsm/setup.sh" "$dir/softhsm" devrift >/dev/null 2>&1
  export SOFTHSM2_CONF="$dir/softhsm/softhsm2.conf"
  (umask 077; dotnet "$appliance_dll" init --Data:Directory="$dir" --urls="$app_url" "$@" > "$dir/init.txt" 2>&1) \
    || { echo "run.sh: init failed:" >&2; grep -v -e sk_ -e 'operator token' "$dir/init.txt" >&2; return 1; }
  grep -o 'sk_test_[A-Za-z0-9_]*' "$dir/init.txt" | head -1 > "$dir/key"
  awk '/^ *operator token:/ { print $3; exit }' "$dir/init.txt" > "$dir/operator"
  local app_id
  app_id=$(grep -o 'app_[A-Za-z0-9]*' "$dir/init.txt" | head -1)
  [ -s "$dir/key" ] && [ -s "$dir/operator" ] && [ -n "$app_id" ] || { echo "run.sh: could not read the key and token from init" >&2; return 1; }
  dotnet "$appliance_dll" serve --Data:Directory="$dir" --urls="$app_url" "$@" > "$dir/serve.log" 2>&1 &
  app_pid=$!
  pids+=("$app_pid")
  wait_healthy "$app_url" "$app_pid"
  # Many distinct users send within the hour; a wrong-code run may use each of its users up to 90 times. The strict
  # lockout profile counts only lockout_threshold: under source_aware (a new application's default) the harness,
  # which sends no client_ip, would be refused with 429 after 5 failures per user.
  curl -fsS -o /dev/null -X PATCH "$app_url/admin/v1/applications/$app_id/settings" \
    -H "Authorization: Bearer $(cat "$dir/operator")" -H 'Content-Type: application/json' \
    -d '{"sends_per_application_per_hour": 10000000, "lockout_profile": "strict", "lockout_threshold": 100, "hard_lock_threshold": 100000}'
  key_file="$dir/key"
  secrets="$dir/secrets.tsv"
  : > "$secrets"
  enrolled=0
  wrong_used=0
  wrong_floor=0
}

# enrol TO: enrol users [enrolled, TO) into the running appliance.
enrol() {
  local to=$1 out rc=0
  [ "$to" -gt "$enrolled" ] || return 0
  log "$phase: enrolling users $enrolled..$((to - 1))"
  out=$(driver enrol --url "$app_url" --key-file "$key_file" --from "$enrolled" --to "$to" --secrets "$secrets" \
    --pid "$app_pid" --max-rss-mb "$max_rss_mb" --concurrency 32 --timeout-s 1200) || rc=$?
  log "$phase: $out"
  enrolled=$(wc -l < "$secrets")
  activation_step=$(sed -n 's/.*last_step=\([0-9]*\).*/\1/p' <<< "$out")
  record kind=enrol "phase=$phase" "$out" "rss_kb=$(rss_kb "$app_pid")" "hwm_kb=$(hwm_kb "$app_pid")" "load=$(loadavg)"
  [ "$enrolled" -gt 0 ] || { echo "run.sh: no user could be enrolled" >&2; return 1; }
  # Pools: the first fifth of the users takes the wrong codes, the rest the valid ones (so that a valid verify
  # never has a failure counter to reset). Every activation used its step.
  wrong_n=$((enrolled / 5))
  valid_n=$((enrolled - wrong_n))
  cut -f1 "$secrets" > "$work/users.txt"
  head -n "$wrong_n" "$secrets" > "$work/wrong-secrets.tsv"
  tail -n +"$((wrong_n + 1))" "$secrets" > "$work/valid-secrets.tsv"
  valid_step=${activation_step:-0}
  valid_cursor=$valid_n
  [ "$wrong_floor" -gt 0 ] || wrong_floor=$wrong_n
  return $rc
}

now_step() { echo $(( $(date +%s) / 30 )); }

# Codes for the valid pool: each user once per step, at the current step only (a code of the step before or after
# would cost the server more HMACs), and no run may cross into the next step.
prepare_valid() { # sets run_offset, run_limit and the pairs file for the appliance's next valid APP run
  local need_left=$((duration + 2)) now step left
  while :; do
    now=$(date +%s); step=$((now / 30)); left=$((30 - now % 30))
    if [ "$step" -gt "$valid_step" ]; then valid_step=$step; valid_cursor=0; fi
    if [ "$left" -ge "$need_left" ] && [ $((valid_n - valid_cursor)) -ge $((valid_n / 10 + 1)) ]; then break; fi
    sleep "$left"; sleep 0.2
  done
  pairs="$work/valid-$valid_step.txt"
  [ -s "$pairs" ] || driver codes --secrets "$work/valid-secrets.tsv" --step "$valid_step" --out "$pairs" >/dev/null
  run_offset=$valid_cursor
  run_limit=$((valid_n - valid_cursor))
}

# run_wrk SERVER SCENARIO CONNS ROUND [ENV…]: one wrk run, its raw output kept, its result recorded.
run_wrk() {
  local server=$1 scenario=$2 conns=$3 round=$4; shift 4
  local url=$app_url threads before after out file
  threads=$(( conns < 2 ? conns : 2 ))
  [ "$server" = baseline ] && url=$base_url
  file="$raw/$phase-$scenario-c$conns-r$round-$server.txt"
  before=$(loadavg)
  out=$(env HB_KEY="$(cat "$key_file")" HB_THREADS="$threads" "$@" \
    timeout $((duration + 60)) wrk -t"$threads" -c"$conns" -d"${duration}s" --timeout 10s -s "$here/lua/bench.lua" "$url" 2>&1) || true
  after=$(loadavg)
  printf '%s\n' "$out" > "$file"
  result=$(grep '^HB_RESULT ' <<< "$out" | head -1 | cut -d' ' -f2-)
  [ -n "$result" ] || { log "wrk gave no result for $phase $scenario c$conns $server (see $file)"; result="requests=0"; }
  # shellcheck disable=SC2086
  record kind=run "phase=$phase" "scenario=$scenario" "conns=$conns" "round=$round" "server=$server" \
    "load_before=$before" "load_after=$after" $result
  issued_max=$(sed -n 's/.*issued=\([0-9,]*\).*/\1/p' <<< "$result" | tr , '\n' | sort -n | tail -1)
  issued_all=$(sed -n 's/.*issued=\([0-9,]*\).*/\1/p' <<< "$result")
}

# scenario_pair SCENARIO CONNS ROUND: the appliance run, then the baseline run with the same requests.
scenario_pair() {
  local scenario=$1 conns=$2 round=$3 threads
  threads=$(( conns < 2 ? conns : 2 ))
  case "$scenario" in
    healthz)
      run_wrk appliance healthz "$conns" "$round" HB_MODE=healthz
      run_wrk baseline healthz "$conns" "$round" HB_MODE=healthz ;;
    factors)
      run_wrk appliance factors "$conns" "$round" HB_MODE=factors HB_FILE="$work/users.txt"
      run_wrk baseline factors "$conns" "$round" HB_MODE=factors HB_FILE="$work/users.txt" ;;
    send-email)
      send_tag="${phase//[^a-z0-9]/}c${conns}r${round}"
      run_wrk appliance send-email "$conns" "$round" HB_MODE=send-email HB_EXPECT=202 HB_TAG="$send_tag"
      send_issued=$issued_all
      run_wrk baseline send-email "$conns" "$round" HB_MODE=send-email HB_EXPECT=200 HB_TAG="b$send_tag" ;;
    verify-email)
      # The codes of the send run just before, read from the test outbox.
      driver email-codes --url "$app_url" --key-file "$key_file" --tag "$send_tag" --issued "$send_issued" \
        --out "$work/email-pairs.txt" >/dev/null
      run_wrk appliance verify-email "$conns" "$round" HB_MODE=verify-email HB_VALID=1 HB_FILE="$work/email-pairs.txt"
      # The baseline knows no replay: it cycles through the same requests for the whole duration.
      run_wrk baseline verify-email "$conns" "$round" HB_MODE=verify-email HB_VALID=1 HB_ONCE=0 HB_FILE="$work/email-pairs.txt" ;;
    wrong-app)
      local step pairs_w cap
      step=$(now_step)
      pairs_w="$work/wrong-$step.txt"
      [ -s "$pairs_w" ] || driver codes --secrets "$work/wrong-secrets.tsv" --step "$step" --wrong --out "$pairs_w" >/dev/null
      # Below lockout_threshold (100) for every user: each run starts at the top of the list, so the first users
      # take the most failures, at most (all failures so far) / (the first, smallest pool) + 1 per run. Keeping the
      # first term at 80 leaves room for 19 runs.
      cap=$(( (wrong_floor * 80 - wrong_used) / threads ))
      [ "$cap" -gt 0 ] || { log "$phase: the wrong-code pool is used up; skipping"; return 0; }
      run_wrk appliance wrong-app "$conns" "$round" HB_MODE=verify-app HB_EXPECT=401 HB_FILE="$pairs_w" \
        HB_ONCE=0 HB_MAXREQ="$cap"
      wrong_used=$(( wrong_used + $(tr , '\n' <<< "$issued_all" | awk '{ s += $1 } END { print s + 0 }') ))
      run_wrk baseline wrong-app "$conns" "$round" HB_MODE=verify-app HB_EXPECT=200 HB_FILE="$pairs_w" \
        HB_ONCE=0 ;;
    verify-app)
      prepare_valid
      run_wrk appliance verify-app "$conns" "$round" HB_MODE=verify-app HB_VALID=1 HB_FILE="$pairs" \
        HB_OFFSET="$run_offset" HB_LIMIT="$run_limit"
      valid_cursor=$(( valid_cursor + issued_max * threads ))
      run_wrk baseline verify-app "$conns" "$round" HB_MODE=verify-app HB_VALID=1 HB_ONCE=0 HB_FILE="$pairs" \
        HB_OFFSET="$run_offset" HB_LIMIT="$run_limit" ;;
  esac
}

# phase_runs "SCENARIO:CONNS …": every listed pair, in rounds (so each ratio's A and B are neighbours).
phase_runs() {
  local list=$1 r item
  log "$phase: warming up"
  run_wrk appliance healthz 32 0 HB_MODE=healthz > /dev/null
  run_wrk appliance factors 32 0 HB_MODE=factors HB_FILE="$work/users.txt" > /dev/null
  run_wrk baseline healthz 32 0 HB_MODE=healthz > /dev/null
  run_wrk baseline factors 32 0 HB_MODE=factors HB_FILE="$work/users.txt" > /dev/null
  for r in $(seq 1 "$rounds"); do
    log "$phase: round $r of $rounds (load $(loadavg))"
    for item in $list; do scenario_pair "${item%%:*}" "${item##*:}" "$r"; done
  done
  record kind=rss "phase=$phase" when=after-runs "rss_kb=$(rss_kb "$app_pid")" "hwm_kb=$(hwm_kb "$app_pid")" "enrolled=$enrolled"
}

# ---------------------------------------------------------------- PKCS#11 calls per request (pkcs11-spy)
spy_module=/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so
softhsm_module=/usr/lib/softhsm/libsofthsm2.so
spy_count() { # SCENARIO ENV…: 50 answered requests on one connection, the spy log's C_* lines between two marks
  local scenario=$1; shift
  local before after calls breakdown requests
  sleep 0.5
  before=$(stat -c %s "$spy_log")
  run_wrk appliance "$scenario" 1 spy HB_MAXREQ=50 "$@"
  sleep 0.5
  after=$(stat -c %s "$spy_log")
  breakdown=$(tail -c +"$((before + 1))" "$spy_log" | head -c "$((after - before))" \
    | sed -n 's/^[0-9][0-9]*: \(C_[A-Za-z]*\).*/\1/p' | sort | uniq -c | awk '{ printf "%s%s:%s", sep, $2, $1; sep = "," }')
  calls=$(tr , '\n' <<< "$breakdown" | awk -F: '{ s += $2 } END { print s + 0 }')
  requests=$(sed -n 's/^requests=\([0-9]*\).*/\1/p' <<< "$result")
  record kind=pkcs11 "scenario=$scenario" "requests=$requests" "calls=$calls" "breakdown=${breakdown:-none}" "wrk=$result"
  log "pkcs11-spy: $scenario: $calls calls for $requests requests (${breakdown:-none})"
}
spy_phase() {
  phase=spy
  spy_log="$work/spy.log"
  log "spy: PKCS#11 calls per request through $spy_module"
  PKCS11SPY=$softhsm_module PKCS11SPY_OUTPUT=$spy_log start_appliance spy \
    --Hsm:ModulePath="$spy_module" --Hsm:KeyRefreshInterval=0
  local saved=$duration
  duration=4
  enrol 200
  # What the server calls on its own while idle, over the same kind of window.
  local before after
  before=$(stat -c %s "$spy_log"); sleep "$duration"; after=$(stat -c %s "$spy_log")
  record kind=pkcs11 scenario=idle "seconds=$duration" "calls=$(tail -c +"$((before + 1))" "$spy_log" | head -c "$((after - before))" | grep -c '^[0-9][0-9]*: C_')"
  spy_count healthz HB_MODE=healthz
  spy_count factors HB_MODE=factors HB_FILE="$work/users.txt"
  send_tag=spy
  spy_count send-email HB_MODE=send-email HB_EXPECT=202 HB_TAG=spy
  driver email-codes --url "$app_url" --key-file "$key_file" --tag spy --issued "$issued_all" --out "$work/email-pairs.txt" >/dev/null
  spy_count verify-email HB_MODE=verify-email HB_VALID=1 HB_FILE="$work/email-pairs.txt"
  local step
  step=$(now_step)
  driver codes --secrets "$work/wrong-secrets.tsv" --step "$step" --wrong --out "$work/wrong-spy.txt" >/dev/null
  spy_count wrong-app HB_MODE=verify-app HB_EXPECT=401 HB_ONCE=0 HB_FILE="$work/wrong-spy.txt"
  prepare_valid
  spy_count verify-app HB_MODE=verify-app HB_VALID=1 HB_FILE="$pairs" HB_OFFSET="$run_offset" HB_LIMIT="$run_limit"
  duration=$saved
  stop_server "$app_pid"
  keep_server_problems spy
  rm -f "$spy_log"
}

# ---------------------------------------------------------------- the phases
first_list="healthz:1 factors:1 send-email:1 verify-email:1 wrong-app:1 verify-app:1 healthz:32 factors:32 send-email:32 verify-email:32 wrong-app:32 verify-app:32"
pg_first_list="factors:1 verify-app:1 factors:32 send-email:32 verify-email:32 wrong-app:32 verify-app:32"
later_list="verify-app:1 factors:32 wrong-app:32 verify-app:32"

pg_connect() { # a fresh database of our own, dropped on exit; sets pg_conn
  $sudo pg_ctlcluster 15 main start >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
  as_postgres psql -qtAc "SELECT 1 FROM pg_roles WHERE rolname='devrift_bench'" | grep -q 1 \
    || as_postgres psql -qc "CREATE ROLE devrift_bench LOGIN PASSWORD 'devrift_bench'" >/dev/null
  local db=devrift_hbench_$$
  as_postgres psql -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  as_postgres psql -qc "CREATE DATABASE $db OWNER devrift_bench" >/dev/null
  pg_dbs+=("$db")
  pg_conn="Host=127.0.0.1;Port=5432;Username=devrift_bench;Password=devrift_bench;Database=$db"
}

commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
src_commit=$(git -C "$repo" log -1 --format=%h -- src 2>/dev/null || echo unknown)
dirty=$(git -C "$repo" status --porcelain -- src 2>/dev/null | wc -l)
{
  echo "command=$command_line"
  echo "started=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit=$commit"
  echo "src_commit=$src_commit"
  echo "quick=$quick"
  echo "src_dirty_files=$dirty"
  echo "nproc=$(nproc)"
  echo "load_start=$(loadavg)"
  echo "memory=$(free -m | awk '/^Mem:/ { print $2 " MB total, " $7 " MB available" }')"
  echo "cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
  echo "os=$(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
  echo "dotnet=$(dotnet --version)"
  echo "wrk=$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
  echo "postgres=$(/usr/lib/postgresql/15/bin/postgres --version 2>/dev/null || echo none)"
  echo "softhsm=$(softhsm2-util --version 2>/dev/null)"
  echo "duration=$duration"
  echo "rounds=$rounds"
  echo "sizes=$sizes"
  echo "max_rss_mb=$max_rss_mb"
} > "$raw/facts.txt"

for db in "${db_list[@]}"; do
  case "$db" in
    sqlite) start_appliance sqlite ;;
    postgres) pg_connect; start_appliance postgres --Storage:ConnectionString="$pg_conn" ;;
    *) echo "run.sh: --dbs takes sqlite and/or postgres, not '$db'" >&2; exit 2 ;;
  esac
  record kind=rss "phase=$db" when=started "rss_kb=$(rss_kb "$app_pid")" "hwm_kb=$(hwm_kb "$app_pid")" enrolled=0
  for i in "${!size_list[@]}"; do
    phase=$db-${size_list[$i]}
    enrol "${size_list[$i]}" || log "$phase: enrolment stopped early; measuring with $enrolled users"
    record kind=rss "phase=$phase" when=after-enrol "rss_kb=$(rss_kb "$app_pid")" "hwm_kb=$(hwm_kb "$app_pid")" "enrolled=$enrolled"
    if [ "$i" -eq 0 ]; then
      if [ "$db" = sqlite ]; then phase_runs "$first_list"; else phase_runs "$pg_first_list"; fi
    else
      phase_runs "$later_list"
    fi
  done
  stop_server "$app_pid"
  keep_server_problems "$db"
done
[ "$spy" = true ] && spy_phase

echo "load_end=$(loadavg)" >> "$raw/facts.txt"
echo "finished=$(date -u '+%Y-%m-%d %H:%M UTC')" >> "$raw/facts.txt"
driver report --results "$tsv" --facts "$raw/facts.txt" --raw "bench/results/http-raw/$name" > "$report"
cat "$report"
log "wrote $report and $raw/"
