#!/usr/bin/env bash
# Beam Flink job server with an embedded Flink, assembled from Maven Central (see jobserver/pom.xml).
#
#   jobserver.sh fetch
#       Resolve the job server's classpath into
#       ${INSTRUCTMIX_CACHE:-$HOME/.cache/instructmix}/flink/<beam version>-flink<flink minor>/lib.
#       Idempotent: does nothing when that lib is complete for the current pom.
#   jobserver.sh start [JOB_PORT [ARTIFACT_PORT [EXPANSION_PORT]]] [-- DRIVER_ARGS...]
#       Fetch if needed, then run the job server in the foreground (exec, so the pid is java's).
#       JOB_PORT defaults to 8099. ARTIFACT_PORT and EXPANSION_PORT default to 0 (the server picks
#       free ones; the Python SDK learns the artifact endpoint from the job service, so nothing
#       needs to know them). Pass -1 as EXPANSION_PORT to run no Java expansion service.
#       DRIVER_ARGS go to FlinkJobServerDriver as they are (e.g. --artifacts-dir=/some/dir).
#   jobserver.sh lib
#       Print the lib directory (after fetching if needed).
#
# Pipelines then use: --runner=PortableRunner --job_endpoint=localhost:JOB_PORT
#   --environment_type=LOOPBACK (or EXTERNAL with a worker pool) --parallelism=N
#
# Environment:
#   INSTRUCTMIX_CACHE             cache root (default ~/.cache/instructmix)
#   INSTRUCTMIX_FLINK_PARALLELISM Flink default parallelism and task slots (default: nproc, max 4)
#   INSTRUCTMIX_FLINK_LOG_LEVEL   java.util.logging root level (default WARNING; INFO is verbose)
#   INSTRUCTMIX_FLINK_JAVA_OPTS   extra JVM options (e.g. -Xmx4g)
#   INSTRUCTMIX_MVN_ARGS          extra Maven arguments for fetch (e.g. -o, or -Dbeam.version=...)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/jobserver/pom.xml"

die() { echo "jobserver.sh: $*" >&2; exit 1; }

pom_prop() {  # first <name>value</name> in the pom's properties
  sed -n "s:.*<$1>\([^<\$]*\)</$1>.*:\1:p" "$pom" | head -n1
}

beam_version="$(pom_prop beam.version)"
flink_minor="$(pom_prop flink.minor)"
# A -Dbeam.version=... or -Dflink.minor=... in INSTRUCTMIX_MVN_ARGS names the directory too.
for a in ${INSTRUCTMIX_MVN_ARGS:-}; do
  case "$a" in
    -Dbeam.version=*) beam_version="${a#-Dbeam.version=}" ;;
    -Dflink.minor=*) flink_minor="${a#-Dflink.minor=}" ;;
  esac
done
[[ -n "$beam_version" && -n "$flink_minor" ]] || die "cannot read beam.version/flink.minor from $pom"

cache_root="${INSTRUCTMIX_CACHE:-$HOME/.cache/instructmix}"
base="$cache_root/flink/${beam_version}-flink${flink_minor}"
lib="$base/lib"
# What the lib was built from: the pom and the Maven overrides. A change means a new fetch.
stamp="$( { cat "$pom"; echo "${INSTRUCTMIX_MVN_ARGS:-}"; } | sha256sum | cut -d' ' -f1)"

need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH: $2"; }

lib_complete() { [[ -f "$lib/.complete" && "$(cat "$lib/.complete")" == "$stamp" ]]; }

fetch() {
  if lib_complete; then return 0; fi
  need mvn "install Maven 3.x (e.g. apt-get install maven) to resolve the job server's jars"
  need java "install a JDK 11+ (e.g. apt-get install openjdk-17-jdk-headless)"
  mkdir -p "$base"
  # Serialize concurrent fetches (parallel test workers); the second one finds the lib complete.
  exec 9>"$base/.fetch.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  if lib_complete; then exec 9>&-; return 0; fi
  local tmp log start
  tmp="$(mktemp -d "$base/.lib.XXXXXX")"
  log="$base/fetch.log"
  start=$(date +%s)
  echo "jobserver.sh: resolving Beam ${beam_version} / Flink ${flink_minor} job server into $lib" >&2
  # shellcheck disable=SC2086
  if ! mvn -B -ntp -f "$pom" ${INSTRUCTMIX_MVN_ARGS:-} \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$log" 2>&1; then
    rm -rf "$tmp"
    grep -E '^\[ERROR\]' "$log" | head -n 20 >&2 || tail -n 40 "$log" >&2
    exec 9>&-
    die "Maven could not resolve the job server (full log: $log)"
  fi
  ls "$tmp"/beam-runners-flink-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "no beam-runners-flink jar resolved (log: $log)"; }
  echo "$stamp" >"$tmp/.complete"
  rm -rf "$lib"
  mv "$tmp" "$lib"
  echo "jobserver.sh: $(ls "$lib"/*.jar | wc -l) jars in $lib ($(( $(date +%s) - start )) s)" >&2
  exec 9>&-
}

java_major() {
  local v
  v="$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
  case "$v" in 1.*) v="${v#1.}" ;; esac
  echo "${v%%[.-]*}"
}

write_conf() {  # $1 = parallelism; prints the conf directory
  local dir="$base/conf/p$1" tmpf
  mkdir -p "$dir"
  tmpf="$(mktemp "$dir/.tmp.XXXXXX")"
  cat >"$tmpf" <<EOF
# Written by deploy/flink/jobserver.sh: Flink settings for every job of this job server.
parallelism.default: $1
taskmanager.numberOfTaskSlots: $1
EOF
  if (( $1 > 4 )); then
    # Every shuffle needs buffers for parallelism^2 channels: the embedded Flink's default 64 MB
    # of network memory stops a job at parallelism 8 ("Insufficient number of network buffers").
    local net=$(( 4 * $1 * $1 ))
    printf 'taskmanager.memory.network.min: %smb\ntaskmanager.memory.network.max: %smb\n' \
      "$net" "$net" >>"$tmpf"
  fi
  mv "$tmpf" "$dir/flink-conf.yaml"
  tmpf="$(mktemp "$dir/.tmp.XXXXXX")"
  cat >"$tmpf" <<EOF
# Written by deploy/flink/jobserver.sh: java.util.logging levels for the job server.
handlers=java.util.logging.ConsoleHandler
java.util.logging.ConsoleHandler.level=ALL
java.util.logging.SimpleFormatter.format=%1\$tF %1\$tT %4\$s %3\$s: %5\$s%6\$s%n
.level=${INSTRUCTMIX_FLINK_LOG_LEVEL:-WARNING}
# "JobService started on ...", job submissions and their end states.
org.apache.beam.runners.jobsubmission.level=INFO
org.apache.beam.runners.flink.FlinkJobInvoker.level=INFO
# At the end of each stage it logs "Error cleaning up servers" (call already closed) with a
# whole environment proto; the job is not affected. Real failures still reach the pipeline.
org.apache.beam.runners.fnexecution.control.DefaultJobBundleFactory.level=SEVERE
# Noise of an embedded Flink: long operator names, no delegation tokens, no log file for the UI.
org.apache.flink.metrics.MetricGroup.level=SEVERE
org.apache.flink.runtime.security.token.level=SEVERE
org.apache.flink.runtime.webmonitor.WebMonitorUtils.level=SEVERE
# Each pipeline's default_sdk_harness_log_level (Python option, default INFO) resets the root
# level above for the whole server: pass WARN (tests/flink_support.py does) to keep it quiet.
EOF
  mv "$tmpf" "$dir/logging.properties"
  echo "$dir"
}

is_port() { [[ "$1" =~ ^-?[0-9]+$ ]]; }

start() {
  local job_port=8099 artifact_port=0 expansion_port=0
  if [[ $# -gt 0 ]] && is_port "$1"; then job_port="$1"; shift; fi
  if [[ $# -gt 0 ]] && is_port "$1"; then artifact_port="$1"; shift; fi
  if [[ $# -gt 0 ]] && is_port "$1"; then expansion_port="$1"; shift; fi
  if [[ $# -gt 0 && "$1" == "--" ]]; then shift; fi
  need java "install a JDK 11+ (e.g. apt-get install openjdk-17-jdk-headless)"
  fetch
  local par="${INSTRUCTMIX_FLINK_PARALLELISM:-}"
  if [[ -z "$par" ]]; then
    par="$(nproc 2>/dev/null || echo 2)"
    (( par > 4 )) && par=4
  fi
  local conf
  conf="$(write_conf "$par")"
  local -a jvm=(-Djava.util.logging.config.file="$conf/logging.properties")
  if (( $(java_major) >= 9 )); then
    # What Flink's own launcher passes on Java 11+/17 (env.java.opts.all in its default config).
    jvm+=(
      --add-exports=java.base/sun.net.util=ALL-UNNAMED
      --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
      --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED
      --add-opens=java.base/java.lang=ALL-UNNAMED
      --add-opens=java.base/java.net=ALL-UNNAMED
      --add-opens=java.base/java.io=ALL-UNNAMED
      --add-opens=java.base/java.nio=ALL-UNNAMED
      --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
      --add-opens=java.base/java.lang.reflect=ALL-UNNAMED
      --add-opens=java.base/java.text=ALL-UNNAMED
      --add-opens=java.base/java.time=ALL-UNNAMED
      --add-opens=java.base/java.util=ALL-UNNAMED
      --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
      --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED
      --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED
    )
  fi
  # shellcheck disable=SC2086
  exec java "${jvm[@]}" ${INSTRUCTMIX_FLINK_JAVA_OPTS:-} -cp "$lib/*" \
    org.apache.beam.runners.flink.FlinkJobServerDriver \
    --flink-master='[local]' \
    --flink-conf-dir="$conf" \
    --job-host=localhost \
    --job-port="$job_port" \
    --artifact-port="$artifact_port" \
    --expansion-port="$expansion_port" \
    "$@"
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  fetch) fetch ;;
  start) start "$@" ;;
  lib) fetch; echo "$lib" ;;
  *) echo "usage: $0 fetch | start [JOB_PORT [ARTIFACT_PORT [EXPANSION_PORT]]] [-- DRIVER_ARGS...] | lib" >&2; exit 2 ;;
esac
