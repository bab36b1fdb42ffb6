#!/usr/bin/env bash
# Build the instructmix image and its Dataflow flex template, and launch jobs from it.
#
#   deploy/dataflow/build_and_launch.sh build
#       Cloud Build builds deploy/dataflow/Dockerfile from a minimal context into $IMAGE, then
#       `gcloud dataflow flex-template build` writes the template spec to $TEMPLATE.
#   deploy/dataflow/build_and_launch.sh run INPUTS OUTPUT [CONFIG]
#   deploy/dataflow/build_and_launch.sh refresh INPUTS STATE PUBLISH [CONFIG]
#       `gcloud dataflow flex-template run` with mode=run|refresh. INPUTS is comma-separated.
#
# Environment (required): PROJECT, REGION, BUCKET.
# Optional: REPOSITORY (Artifact Registry repo, default instructmix), TAG (default: git short
#   hash, or a timestamp), IMAGE, TEMPLATE, SERVICE_ACCOUNT (worker service account e-mail),
#   MAX_WORKERS, MACHINE_TYPE, LANGUAGES, EXTRA_PARAMETERS (more key=value pairs, ~-separated),
#   DRY_RUN=1 (print the commands instead of running them; tests/test_deploy.py uses it).
#
# Not run on the development machine (no Docker engine, no Google Cloud credentials there).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

die() { echo "build_and_launch.sh: $*" >&2; exit 2; }

: "${PROJECT:?set PROJECT (Google Cloud project id)}"
: "${REGION:?set REGION (e.g. europe-west4)}"
: "${BUCKET:?set BUCKET (Cloud Storage bucket for templates, staging and temp files)}"
REPOSITORY="${REPOSITORY:-instructmix}"
if [[ -z "${TAG:-}" ]]; then
  TAG="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || date -u +%Y%m%d-%H%M%S)"
fi
IMAGE="${IMAGE:-$REGION-docker.pkg.dev/$PROJECT/$REPOSITORY/instructmix:$TAG}"
TEMPLATE="${TEMPLATE:-gs://$BUCKET/templates/instructmix-$TAG.json}"

# Files the Dockerfile COPYs (tests/test_deploy.py checks this list against the Dockerfile).
CONTEXT_FILES=(pyproject.toml setup.py README.md pipelines transforms deploy/dataflow/main.py)

run() {  # run a command, or print it (shell-quoted) when DRY_RUN=1
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}

build() {
  local ctx
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' RETURN
  # A minimal build context: the checkout may hold a .venv, outputs and caches.
  (cd "$repo" && tar --exclude='__pycache__' --exclude='*.pyc' -cf - "${CONTEXT_FILES[@]}") \
    | tar -xf - -C "$ctx"
  cp "$here/Dockerfile" "$ctx/Dockerfile"
  run gcloud builds submit "$ctx" --project "$PROJECT" --region "$REGION" --tag "$IMAGE"
  run gcloud dataflow flex-template build "$TEMPLATE" \
    --project "$PROJECT" \
    --image "$IMAGE" \
    --sdk-language PYTHON \
    --metadata-file "$here/metadata.json"
}

launch() {  # launch MODE then key=value template parameters
  local mode="$1"
  shift
  # "~" separates parameters (gcloud's ^~^ syntax) because INPUTS holds commas.
  local params="^~^mode=$mode~sdk_container_image=$IMAGE"
  local kv
  for kv in "$@" ${LANGUAGES:+languages=$LANGUAGES}; do
    params+="~$kv"
  done
  [[ -n "${EXTRA_PARAMETERS:-}" ]] && params+="~$EXTRA_PARAMETERS"
  local -a extra=()
  [[ -n "${SERVICE_ACCOUNT:-}" ]] && extra+=(--service-account-email "$SERVICE_ACCOUNT")
  [[ -n "${MAX_WORKERS:-}" ]] && extra+=(--max-workers "$MAX_WORKERS")
  [[ -n "${MACHINE_TYPE:-}" ]] && extra+=(--worker-machine-type "$MACHINE_TYPE")
  run gcloud dataflow flex-template run "instructmix-$mode-$(date -u +%Y%m%d-%H%M%S)" \
    --project "$PROJECT" \
    --region "$REGION" \
    --template-file-gcs-location "$TEMPLATE" \
    --staging-location "gs://$BUCKET/staging" \
    --temp-location "gs://$BUCKET/temp" \
    --parameters "$params" \
    "${extra[@]}"
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  build)
    build
    ;;
  run)
    [[ $# -ge 2 && $# -le 3 ]] || die "usage: $0 run INPUTS OUTPUT [CONFIG]"
    launch run "input=$1" "output=$2" ${3:+"config=$3"}
    ;;
  refresh)
    [[ $# -ge 3 && $# -le 4 ]] || die "usage: $0 refresh INPUTS STATE PUBLISH [CONFIG]"
    launch refresh "input=$1" "state=$2" "publish=$3" ${4:+"config=$4"}
    ;;
  *)
    die "usage: $0 build | run INPUTS OUTPUT [CONFIG] | refresh INPUTS STATE PUBLISH [CONFIG]"
    ;;
esac
