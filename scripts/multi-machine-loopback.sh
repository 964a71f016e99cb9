#!/usr/bin/env bash
# docs/operations.md's multi-machine recipe ("One machine per role") tried on one machine: each
# role on loopback, in a folder of its own and started with only the settings the recipe gives
# it (`env -i`): a Prefect server with the work pool, an S3-compatible object store (moto's
# server), a Dask scheduler and two workers (outside the checkout, which they only import), a
# fresh PostgreSQL database as the registry, and the flow's machine (a Prefect worker of the
# pool). Runs one quick night of generated sales as a run of the deployment, checks that it
# completed on the Dask workers, reported to the one Prefect server and left its models in the
# object store, then stops everything it started and drops the database. Downloads nothing.
#
#   scripts/multi-machine-loopback.sh     # from anywhere; needs `make install` and PostgreSQL
#   scripts/multi-machine-loopback.sh --cluster-only ENV_FILE
#
# --cluster-only starts only the Prefect server, the object store (bucket `nights`) and the Dask
# scheduler and workers, writes the settings a flow's machine needs to reach them to ENV_FILE
# (VAR=VALUE lines, written whole once all are up), and keeps them until it gets SIGTERM or
# SIGINT, then stops them (`shelfcast bench scale --cluster loopback` runs it so).
#
# SHELFCAST_LOOPBACK_POSTGRES: a libpq URL allowed to create databases (default
# postgresql://postgres@127.0.0.1:5432/postgres). SHELFCAST_LOOPBACK_KEEP=1 keeps the folder
# (logs of every role) after a success; after a failure it is always kept.
set -euo pipefail

CLUSTER_ENV=
if [[ ${1:-} == --cluster-only ]]; then
  CLUSTER_ENV=${2:?--cluster-only needs the file to write the cluster settings to}
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/.venv/bin
ADMIN_URL=${SHELFCAST_LOOPBACK_POSTGRES:-postgresql://postgres@127.0.0.1:5432/postgres}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shelfcast-loopback.XXXXXX")
DATABASE=shelfcast_loopback_$(date +%s)_$$
AS_OF=2017-12-31
RUN_TIMEOUT_S=1500
GROUPS_STARTED=()   # each role's process group: stopping it stops the role's children too
WAITING_ON=         # the process group of a long command this shell waits on
STARTED=$(date +%s)

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

free_port() {
  "$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# a machine's environment: nothing from this shell but the variables given (and the venv)
BASE_ENV=(PATH="$BIN:/usr/bin:/bin" LANG=C.UTF-8)
machine_env() {
  local home=$1; shift
  env -i "${BASE_ENV[@]}" HOME="$home" "$@"
}

# start NAME FOLDER VAR=VALUE... -- COMMAND...: a role in the background, its own process group
start() {
  local name=$1 folder=$2; shift 2
  local vars=()
  while [[ $1 != -- ]]; do vars+=("$1"); shift; done
  shift
  mkdir -p "$folder"
  (cd "$folder" && exec setsid env -i "${BASE_ENV[@]}" HOME="$folder" "${vars[@]}" "$@") \
    >"$WORK/logs/$name.log" 2>&1 &
  GROUPS_STARTED+=("$!")
  disown "$!"  # stopped by its group at the end, not reported as a job
}

# long COMMAND...: run it in a process group of its own and wait for it, so that a signal to
# this script stops it at once (bash runs a trap only once a foreground command has ended)
long() {
  local code=0
  set -m
  "$@" &
  WAITING_ON=$!
  set +m
  wait "$WAITING_ON" || code=$?
  WAITING_ON=
  return "$code"
}

# wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$(( $(date +%s) + seconds ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) > deadline )); then
      say "FAILED: $what did not come up in $seconds s (logs: $WORK/logs)"
      return 1
    fi
    sleep 1
  done
}

stop_everything() {
  local code=$? group alive
  trap - EXIT INT TERM
  exec 1>&3 2>&4  # the script's own output, also when a signal came during a redirected command
  if [[ -n $WAITING_ON ]]; then kill -TERM -- "-$WAITING_ON" 2>/dev/null || true; fi
  for group in "${GROUPS_STARTED[@]}"; do kill -TERM -- "-$group" 2>/dev/null || true; done
  for _ in $(seq 30); do
    alive=0
    for group in "${GROUPS_STARTED[@]}"; do pgrep -g "$group" >/dev/null && alive=1; done
    (( alive )) || break
    sleep 1
  done
  for group in "${GROUPS_STARTED[@]}"; do kill -KILL -- "-$group" 2>/dev/null || true; done
  sleep 1
  for group in "${GROUPS_STARTED[@]}"; do
    if pgrep -g "$group" >/dev/null; then say "LEFT RUNNING: process group $group"; code=1; fi
  done
  if [[ -z $CLUSTER_ENV ]]; then
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$DATABASE\" WITH (FORCE)" >/dev/null \
      || { say "could not drop database $DATABASE"; code=1; }
  fi
  if (( code == 0 )) && [[ -z ${SHELFCAST_LOOPBACK_KEEP:-} ]]; then
    rm -rf "$WORK"
  else
    say "logs of every role: $WORK/logs"
  fi
  local dropped=", dropped database $DATABASE"
  [[ -n $CLUSTER_ENV ]] && dropped=" (the cluster only)"
  say "stopped everything it started$dropped; $(( $(date +%s) - STARTED )) s in all"
  (( code == 0 )) && say "RESULT: ok" || say "RESULT: FAILED (exit $code)"
  exit "$code"
}
exec 3>&1 4>&2
trap stop_everything EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/logs"
PREFECT_PORT=$(free_port); S3_PORT=$(free_port); DASK_PORT=$(free_port)
PREFECT_API_URL=http://127.0.0.1:$PREFECT_PORT/api
DASK_ADDRESS=tcp://127.0.0.1:$DASK_PORT
# the object store's endpoint and credentials: the flow's machine and every Dask worker
OBJECT_STORE=(AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PORT" AWS_ACCESS_KEY_ID=shelfcast-loopback
              AWS_SECRET_ACCESS_KEY=loopback-not-a-secret AWS_DEFAULT_REGION=us-east-1)
ONE_THREAD=(TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1)
say "working folder $WORK; Prefect API $PREFECT_API_URL, Dask $DASK_ADDRESS, S3 :$S3_PORT"

# -- the object store ----------------------------------------------------------------------------
start object-store "$WORK/object-store" -- moto_server -H 127.0.0.1 -p "$S3_PORT"

# -- the Prefect server --------------------------------------------------------------------------
PREFECT_SERVER=(PREFECT_HOME="$WORK/prefect-server/home" PREFECT_SERVER_ANALYTICS_ENABLED=false)
start prefect-server "$WORK/prefect-server" "${PREFECT_SERVER[@]}" -- \
  prefect server start --host 127.0.0.1 --port "$PREFECT_PORT"

# -- the Dask scheduler and two workers: the checkout importable, no Shelfcast settings ---------
DASK_MACHINE=(PYTHONPATH="$ROOT")
start dask-scheduler "$WORK/dask-scheduler" "${DASK_MACHINE[@]}" -- \
  dask scheduler --host 127.0.0.1 --port "$DASK_PORT" --no-dashboard
for n in 1 2; do
  start "dask-worker-$n" "$WORK/dask-worker-$n" "${DASK_MACHINE[@]}" "${ONE_THREAD[@]}" \
    "${OBJECT_STORE[@]}" PREFECT_SERVER_EPHEMERAL_ENABLED=false -- \
    dask worker "$DASK_ADDRESS" --name "w$n" --nthreads 1 --nworkers 1 --host 127.0.0.1 \
      --no-dashboard
done

wait_for "the object store" 60 "$BIN/python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$S3_PORT/', timeout=2)"
machine_env "$WORK" "${OBJECT_STORE[@]}" python -c "import boto3; boto3.client('s3').create_bucket(Bucket='nights')"
say "object store: bucket nights on :$S3_PORT"
wait_for "the Prefect server" 240 "$BIN/python" -c "import urllib.request as u; u.urlopen('$PREFECT_API_URL/health', timeout=2)"
wait_for "two Dask workers" 120 "$BIN/python" -c "
from distributed import Client
with Client('$DASK_ADDRESS', timeout=5) as client:
    client.wait_for_workers(2, timeout=5)"
say "Prefect server, Dask scheduler and two workers up"

if [[ -n $CLUSTER_ENV ]]; then
  printf '%s\n' PREFECT_API_URL="$PREFECT_API_URL" SHELFCAST_DASK_ADDRESS="$DASK_ADDRESS" \
    SHELFCAST_ARTIFACT_STORE=s3://nights/shelfcast "${OBJECT_STORE[@]}" "${ONE_THREAD[@]}" \
    >"$CLUSTER_ENV.partial"
  mv "$CLUSTER_ENV.partial" "$CLUSTER_ENV"
  say "cluster settings in $CLUSTER_ENV; running until SIGTERM or SIGINT"
  trap 'exit 0' INT TERM  # the end the caller asks for
  long sleep infinity
  exit 0
fi

# -- the registry: a fresh PostgreSQL database -------------------------------------------------
psql -q "$ADMIN_URL" -c "CREATE DATABASE \"$DATABASE\"" >/dev/null
REGISTRY_URL="postgresql+psycopg://${ADMIN_URL#postgresql://}"
REGISTRY_URL="${REGISTRY_URL%/*}/$DATABASE"
say "registry: database $DATABASE"

# -- the flow's machine: a Prefect worker of the pool, the registry and the store ---------------
FLOW_MACHINE=(PREFECT_API_URL="$PREFECT_API_URL"
              SHELFCAST_HOME="$WORK/flow/home" SHELFCAST_DATABASE_URL="$REGISTRY_URL"
              SHELFCAST_ARTIFACT_STORE=s3://nights/shelfcast SHELFCAST_DASK_ADDRESS="$DASK_ADDRESS"
              SHELFCAST_CHECKOUT="$ROOT" SHELFCAST_TIMEZONE=UTC "${OBJECT_STORE[@]}")
mkdir -p "$WORK/flow"
on_flow_machine() { (cd "$ROOT" && machine_env "$WORK/flow" "${FLOW_MACHINE[@]}" "$@"); }

on_flow_machine shelfcast db upgrade >/dev/null
on_flow_machine shelfcast generate --out "$WORK/flow/sales.csv" --stores 2 --items 2 \
  --start 2016-01-01 --end "$AS_OF" --seed 1 >/dev/null
on_flow_machine shelfcast ingest "$WORK/flow/sales.csv"

(cd "$WORK/prefect-server" && machine_env "$WORK/prefect-server" "${PREFECT_SERVER[@]}" \
  PREFECT_API_URL="$PREFECT_API_URL" prefect work-pool create shelfcast --type process) >/dev/null
on_flow_machine prefect --no-prompt deploy --all >"$WORK/logs/deploy.log" 2>&1
say "work pool shelfcast, deployment nightly-retrain"

start prefect-worker "$WORK/flow" "${FLOW_MACHINE[@]}" -- prefect worker start --pool shelfcast
say "running one quick night ($AS_OF) as a run of the deployment ..."
NIGHT_STARTED=$(date +%s)
long on_flow_machine prefect deployment run nightly-retrain/nightly-retrain \
  --param profile=quick --param "as_of=$AS_OF" --watch --watch-timeout "$RUN_TIMEOUT_S" \
  >"$WORK/logs/run.log" 2>&1 \
  || { tail -5 "$WORK/logs/run.log"; say "FAILED: the deployment run did not complete"; exit 1; }
say "the night's run completed in $(( $(date +%s) - NIGHT_STARTED )) s"

# -- checks: the registry, the store, the one Prefect API, the workers ---------------------------
on_flow_machine python - <<'EOF'
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from sqlalchemy import select

from compression.variants import VARIANTS
from storage.catalog import get_catalog
from storage.models import ModelVersion, TrainingRun
from storage.store import read_bytes

with get_catalog().session() as session:
    (night,) = session.scalars(select(TrainingRun)).all()
    versions = session.scalars(select(ModelVersion)).all()
assert night.status == "completed", night.status
assert sorted(v.variant for v in versions) == sorted(v.name for v in VARIANTS)
for version in versions:
    assert version.artifact_uri.startswith("s3://nights/shelfcast/"), version.artifact_uri
    assert len(read_bytes(version.artifact_uri)) == version.artifact_bytes
print(f"registry: night {night.as_of} {night.status}, {len(versions)} model versions, each "
      f"in s3://nights/shelfcast/; build {night.timings_s.get('build_s')} s")

with get_client(sync_client=True) as client:
    # the night that ran (the deployment's schedule adds the coming nights, not started)
    (flow_run,) = [run for run in client.read_flow_runs() if run.start_time]
    runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
done = {run.name for run in runs if run.state_name == "Completed"}
on_workers = {f"train {v.name}" for v in VARIANTS if v.has_own_weights} | \
    {f"export {v.name}" for v in VARIANTS}
assert flow_run.state_name == "Completed", flow_run.state_name
assert on_workers <= done, sorted(on_workers - done)
print(f"Prefect server: flow run {flow_run.name} {flow_run.state_name}, {len(runs)} task runs, "
      f"all {len(on_workers)} trainings and exports among them")
EOF
for n in 1 2; do
  grep -q -E '\] (train|export) [a-z0-9_]+ \.\.\.$' "$WORK/logs/dask-worker-$n.log" \
    || { say "FAILED: dask worker $n ran no training or export"; exit 1; }
  if grep -q -i -E 'temporary server|uvicorn' "$WORK/logs/dask-worker-$n.log" \
      || find "$WORK/dask-worker-$n" "$WORK/flow" -name 'prefect.db*' | grep -q .; then
    say "FAILED: dask worker $n started a Prefect server"; exit 1
  fi
done
for group in "${GROUPS_STARTED[@]:2}"; do  # the Dask processes and the flow's machine
  if pgrep -g "$group" -f uvicorn >/dev/null; then
    say "FAILED: a Prefect server runs in process group $group"; exit 1
  fi
done
say "both Dask workers ran trainings and exports; no Prefect server but the one"
