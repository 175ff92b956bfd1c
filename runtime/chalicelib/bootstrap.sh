#!/bin/bash
# jobscheduler instance bootstrap (EC2 user data), rendered per job by
# runtime/chalicelib/bootstrap.py. It runs the job's container, reports the
# exit code to the service, and shuts the instance down (which terminates it).
#
# It relies only on what the stack's image ships: the ECS-optimised Amazon
# Linux 2023 AMI, which aws/amazon-ecs-ami builds from AL2023 minimal (bash,
# coreutils, systemd, curl-minimal 8.x, whose curl signs with --aws-sigv4, and
# python3, which dnf needs) by adding Docker, the ECS agent and a few packages,
# but no AWS CLI. So the three AWS calls (ECR GetAuthorizationToken, SSM
# GetParameter, Secrets Manager GetSecretValue) are signed by curl with the
# instance role's credentials from the metadata service, and python3 reads the
# JSON answers. The tests run it with a PATH holding only these commands:
# Commands: bash curl date docker mktemp python3 rm shutdown sleep systemctl
#
# Runtime overrides (for tests and the local instance emulator):
#   JOBSCHEDULER_IMDS_ENDPOINT       instance metadata base URL
#   JOBSCHEDULER_AWS_ENDPOINT        one base URL for every AWS API call
#   JOBSCHEDULER_SPOT_POLL_SECONDS   spot interruption poll interval
#   JOBSCHEDULER_STOP_GRACE_SECONDS  docker stop grace on interruption
#   JOBSCHEDULER_RETRY_BASE_SECONDS  first retry delay (doubles each try)
set -euo pipefail

# Rendered per job. Every value is a single-quoted literal on purpose:
# nothing in it may expand, hence the SC2016 exception for this block.
# shellcheck disable=SC2016
{
JS_JOB_ID=@@JOB_ID@@
JS_IMAGE=@@IMAGE@@
JS_CALLBACK_URL=@@CALLBACK_URL@@
JS_HEARTBEAT_URL=@@HEARTBEAT_URL@@
JS_CALLBACK_SECRET=@@CALLBACK_SECRET@@
JS_REGION=@@REGION@@
JS_LOG_GROUP=@@LOG_GROUP@@
JS_ECR_REGISTRY=@@ECR_REGISTRY@@
JS_ECR_REGION=@@ECR_REGION@@
JS_DEAD_MAN_MINUTES=@@DEAD_MAN_MINUTES@@
JS_KEEP_ON_FAILURE=@@KEEP_ON_FAILURE@@
JS_HEARTBEAT_INTERVAL=@@HEARTBEAT_INTERVAL@@
JS_GPUS=@@GPUS@@
JS_ENV_ARGS=(@@ENV_ARGS@@)
JS_COMMAND=(@@COMMAND@@)
JS_SECRET_NAMES=(@@SECRET_NAMES@@)
JS_SECRET_SERVICES=(@@SECRET_SERVICES@@)
JS_SECRET_REGIONS=(@@SECRET_REGIONS@@)
JS_SECRET_REQUESTS=(@@SECRET_REQUESTS@@)
}

JS_IMDS=${JOBSCHEDULER_IMDS_ENDPOINT:-http://169.254.169.254}
JS_AWS_ENDPOINT=${JOBSCHEDULER_AWS_ENDPOINT:-}
JS_SPOT_POLL=${JOBSCHEDULER_SPOT_POLL_SECONDS:-5}
JS_STOP_GRACE=${JOBSCHEDULER_STOP_GRACE_SECONDS:-90}
JS_RETRY_BASE=${JOBSCHEDULER_RETRY_BASE_SECONDS:-2}
JS_CALLBACK_TRIES=10
JS_CONTAINER_NAME=jobscheduler-job
JS_INSTANCE_ID=unknown
JS_EXIT_CODE=
JS_FINISHED=0
JS_HELPER_PIDS=()
JS_SECRET_PAIRS=()
JS_DOCKER_RUN=()
JS_NAP_PID=
JS_WORK_DIR=

# Logs go to fd 3 (the original stdout) so that a log line written inside a
# command substitution reaches the console instead of the captured value.
exec 3>&1
log() { printf '[jobscheduler %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&3; }

# Sleeps in the background so that a TERM to this (sub)shell ends it at once.
nap() {
  sleep "$1" &
  JS_NAP_PID=$!
  wait "$JS_NAP_PID" || true
}
stop_nap() { if [[ -n $JS_NAP_PID ]]; then kill "$JS_NAP_PID" 2>/dev/null || true; fi; }

# Delay before retry number $1: base * 2^(n-1), capped at a minute.
backoff() {
  python3 -c 'import sys; print(min(float(sys.argv[1]) * 2 ** (int(sys.argv[2]) - 1), 60))' \
    "$JS_RETRY_BASE" "$1"
}

# retry TRIES COMMAND...: runs COMMAND until it succeeds, at most TRIES times.
retry() {
  local tries=$1 n=1
  shift
  until "$@"; do
    if ((n >= tries)); then
      log "$1 failed $n times; giving up"
      return 1
    fi
    log "$1 failed; try $((n + 1)) of $tries soon"
    nap "$(backoff "$n")"
    n=$((n + 1))
  done
}

# --- instance metadata (IMDSv2: a session token for every read) ---
imds_token() {
  curl -sS --fail --max-time 5 -X PUT \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$JS_IMDS/latest/api/token"
}
imds_get() {
  local token
  token=$(imds_token) || return 1
  curl -sS --fail --max-time 5 -H "X-aws-ec2-metadata-token: $token" \
    "$JS_IMDS/latest/meta-data/$1"
}
read_instance_id() {
  local id
  id=$(retry 5 imds_get instance-id) || return 1
  # Keep it JSON- and log-stream-safe whatever the endpoint answers.
  JS_INSTANCE_ID=${id//[^A-Za-z0-9-]/}
}
# The instance role's credentials as a curl config (user and session token
# header): they reach curl through a pipe, never its argv.
curl_credentials() {
  local role
  role=$(imds_get iam/security-credentials/) || return 1
  imds_get "iam/security-credentials/${role%%$'\n'*}" | python3 -c 'import json, sys; c = json.load(sys.stdin)
print("user =", json.dumps(c["AccessKeyId"] + ":" + c["SecretAccessKey"]))
print("header =", json.dumps("x-amz-security-token: " + c["Token"]))'
}
spot_action_pending() {
  local token code
  token=$(imds_token 2>/dev/null) || return 1
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    -H "X-aws-ec2-metadata-token: $token" \
    "$JS_IMDS/latest/meta-data/spot/instance-action") || true
  [[ $code == 200 ]]
}

# --- AWS APIs: curl signs (SigV4), python3 reads the JSON ---
# aws_call API REGION TARGET REQUEST: POSTs the JSON REQUEST (rendered per job,
# never built here) to TARGET, an awsJson1.1 operation of the API whose
# endpoint is https://API.REGION.<the partition's domain>; prints the answer.
aws_call() {
  local config url=${JS_AWS_ENDPOINT%/} answer
  config=$(curl_credentials) || return 1
  if [[ -z $url ]]; then
    url=https://$1.$2.$(imds_get services/domain) || return 1
  fi
  # The signing name is the API's without "api." (api.ecr signs as ecr).
  answer=$(curl -sS --connect-timeout 5 --max-time 30 -w '\n%{http_code}' \
    --aws-sigv4 "aws:amz:$2:${1#api.}" -K <(printf '%s\n' "$config") \
    -H 'Content-Type: application/x-amz-json-1.1' -H "X-Amz-Target: $3" \
    --data-binary "$4" "$url/") || return 1
  if [[ ${answer##*$'\n'} != 2?? ]]; then
    log "$3: HTTP ${answer##*$'\n'} ${answer%$'\n'*}"
    return 1
  fi
  printf '%s' "${answer%$'\n'*}"
}
# json_text PATH [b64]: the text at dotted PATH (list indexes are numbers) of
# the JSON on stdin, base64-decoded with b64, then a '.' so that $(...) keeps
# the text's own trailing newlines.
json_text() {
  python3 -c 'import base64, json, sys
try:
    v = json.load(sys.stdin)
    for k in sys.argv[1].split("."): v = v[int(k)] if isinstance(v, list) else v[k]
    v = base64.b64decode(v).decode() if sys.argv[2:] else v
    assert isinstance(v, str) and "\0" not in v
except (AssertionError, IndexError, KeyError, TypeError, ValueError):
    sys.exit(sys.argv[1] + ": no text in the answer")
sys.stdout.write(v + ".")' "$@"
}

# --- talking to the service ---
# POSTs JSON body $2 to URL $1 and prints the HTTP status (000: no answer).
# The secret reaches curl through a pipe, never argv, so ps cannot show it.
api_post() {
  curl -s -o /dev/null -w '%{http_code}' --connect-timeout 5 --max-time 15 \
    -X POST -H 'Content-Type: application/json' \
    -H @<(printf 'Authorization: Bearer %s\n' "$JS_CALLBACK_SECRET") \
    --data-binary "$2" "$1" || true
}
heartbeat_loop() {
  trap 'stop_nap; exit 0' TERM
  while true; do
    log "heartbeat: HTTP $(api_post "$JS_HEARTBEAT_URL" '{}')"
    nap "$JS_HEARTBEAT_INTERVAL"
  done
}
report_result() {
  local code=$1 status=FinishedNOK body http n=1
  if ((code == 0)); then status=FinishedOK; fi
  body=$(printf '{"status": "%s", "exitCode": %d, "instanceId": "%s"}' \
    "$status" "$code" "$JS_INSTANCE_ID")
  while true; do
    http=$(api_post "$JS_CALLBACK_URL" "$body")
    case $http in
      2?? | 409) log "reported $status (exit $code): HTTP $http"; return 0 ;;
      000 | 408 | 429 | 5??) ;;  # transient: try again
      *) log "callback refused with HTTP $http; not retrying"; return 1 ;;
    esac
    if ((n >= JS_CALLBACK_TRIES)); then
      log "callback failed $n times (last HTTP $http); giving up"
      return 1
    fi
    nap "$(backoff "$n")"
    n=$((n + 1))
  done
}

# --- spot interruption ---
preempted() { [[ -e $JS_WORK_DIR/preempted ]]; }
watch_spot() {
  trap 'stop_nap; exit 0' TERM
  until spot_action_pending; do nap "$JS_SPOT_POLL"; done
  # Mark first: the main loop must know this was a preemption, not a failure.
  : >"$JS_WORK_DIR/preempted"
  log "spot interruption notice: stopping the container (grace ${JS_STOP_GRACE}s)"
  docker stop --time "$JS_STOP_GRACE" "$JS_CONTAINER_NAME" >/dev/null 2>&1 ||
    log "docker stop failed (no container yet?)"
}

start_helpers() {
  if ((JS_HEARTBEAT_INTERVAL > 0)); then
    heartbeat_loop &
    JS_HELPER_PIDS+=($!)
  fi
  watch_spot &
  JS_HELPER_PIDS+=($!)
}
stop_helpers() {
  local pid
  for pid in "${JS_HELPER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  JS_HELPER_PIDS=()
}

# --- the container ---
docker_ready() { docker info >/dev/null 2>&1; }
ensure_docker() {
  docker_ready && return 0
  if command -v systemctl >/dev/null; then
    log "starting the docker daemon"
    systemctl start docker || return 1
  fi
  retry 5 docker_ready
}
# The ECS-optimised AMI enables the ECS agent, which would retry joining a
# cluster (there is none) for the instance's whole life. Its unit is ordered
# after cloud-final, which runs this script: queue the stop, do not wait.
stop_ecs_agent() {
  command -v systemctl >/dev/null || return 0
  if systemctl disable --now --no-block ecs.service >/dev/null 2>&1; then
    log "ECS agent disabled: no cluster to join"
  fi
}
ecr_login() {
  local token
  [[ -n $JS_ECR_REGISTRY ]] || return 0
  token=$(aws_call api.ecr "$JS_ECR_REGION" AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken '{}' |
    json_text authorizationData.0.authorizationToken b64) || return 1
  # The token is "AWS:<password>".
  token=${token%.}
  printf '%s\n' "${token#*:}" | docker login --username AWS --password-stdin "$JS_ECR_REGISTRY" >/dev/null
}
pull_image() {
  retry 3 ecr_login || return 1
  log "pulling $JS_IMAGE"
  retry 5 docker pull --quiet "$JS_IMAGE"
}
# Prints the value of secret number $1, then a '.' (see json_text).
fetch_secret() {
  local target=AmazonSSM.GetParameter field=Parameter.Value
  if [[ ${JS_SECRET_SERVICES[$1]} == secretsmanager ]]; then
    target=secretsmanager.GetSecretValue field=SecretString
  fi
  aws_call "${JS_SECRET_SERVICES[$1]}" "${JS_SECRET_REGIONS[$1]}" "$target" "${JS_SECRET_REQUESTS[$1]}" |
    json_text "$field"
}
# Values stay in memory: they reach docker only through its environment.
resolve_secrets() {
  local i value
  for i in "${!JS_SECRET_NAMES[@]}"; do
    log "resolving secret ${JS_SECRET_NAMES[$i]}"
    value=$(retry 3 fetch_secret "$i") || return 1
    JS_SECRET_PAIRS+=("${JS_SECRET_NAMES[$i]}=${value%.}")
  done
}
prepare_container() { ensure_docker && pull_image && resolve_secrets; }

build_docker_run() {
  JS_DOCKER_RUN=(docker run --name "$JS_CONTAINER_NAME" "${JS_ENV_ARGS[@]}")
  # A GPU job's instance boots the GPU image, whose NVIDIA container toolkit hands docker the GPUs.
  if ((JS_GPUS > 0)); then JS_DOCKER_RUN+=(--gpus all); fi
  if [[ -n $JS_LOG_GROUP ]]; then
    JS_DOCKER_RUN+=(--log-driver awslogs
      --log-opt "awslogs-group=$JS_LOG_GROUP"
      --log-opt "awslogs-stream=$JS_JOB_ID/$JS_INSTANCE_ID"
      --log-opt "awslogs-region=$JS_REGION")
  fi
  JS_DOCKER_RUN+=("$JS_IMAGE" "${JS_COMMAND[@]}")
}
# Runs in a background subshell: the exported secrets live and die with it.
# Secret names never start with JS_, so exporting cannot clobber the argv.
exec_container() {
  if ((${#JS_SECRET_PAIRS[@]} > 0)); then export "${JS_SECRET_PAIRS[@]}"; fi
  exec "${JS_DOCKER_RUN[@]}"
}
run_container() {
  local pid
  build_docker_run
  log "starting the container"
  exec_container &
  pid=$!
  JS_SECRET_PAIRS=()
  JS_EXIT_CODE=0
  wait "$pid" || JS_EXIT_CODE=$?
  log "container exited with code $JS_EXIT_CODE"
}

# --- the end, reached on every path ---
finish() {
  JS_FINISHED=1
  stop_helpers
  if preempted; then
    log "preempted by a spot interruption: the service reschedules, no result reported"
  else
    # 125 is docker's own "could not run" code: the job never got to run.
    report_result "${JS_EXIT_CODE:-125}" || true
  fi
  rm -rf "$JS_WORK_DIR"
  if held_for_debugging; then
    # The service terminates it when the hold ends; the dead-man timer covers the hold too.
    log "the run failed: the instance stays up ${JS_KEEP_ON_FAILURE}s for debugging (SSM Session Manager)"
    return 0
  fi
  log "shutting the instance down"
  shutdown -h now || log "shutdown failed"
}
held_for_debugging() {
  ((JS_KEEP_ON_FAILURE > 0)) && ! preempted && [[ "${JS_EXIT_CODE:-125}" != 0 ]]
}
on_exit() {
  local status=$?
  trap - EXIT
  set +e
  if ((JS_FINISHED == 0)); then
    log "bootstrap stopped unexpectedly (status $status)"
    finish
  fi
}
# The instance itself is going down (spot reclaim or the dead-man timer):
# there is nothing to report and nobody left to report it.
on_term() {
  JS_FINISHED=1
  stop_helpers
  log "terminated by the system"
  exit 143
}

main() {
  trap on_exit EXIT
  trap on_term TERM
  log "job $JS_JOB_ID: bootstrap starting"
  # Launched with shutdown behaviour "terminate": this bounds the instance's
  # life even if the service and this script both fail.
  if shutdown -h "+$JS_DEAD_MAN_MINUTES"; then
    log "dead-man shutdown armed for +$JS_DEAD_MAN_MINUTES min"
  else
    log "could not arm the dead-man shutdown"
  fi
  stop_ecs_agent
  JS_WORK_DIR=$(mktemp -d)
  read_instance_id || log "no instance id from the metadata service"
  log "instance $JS_INSTANCE_ID"
  start_helpers
  if ! prepare_container; then
    log "could not prepare the container"
  elif ! preempted; then
    run_container
  fi
  finish
}

main
