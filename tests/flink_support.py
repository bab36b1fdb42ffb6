"""Run pipelines on a real Flink: the Beam Flink job server of deploy/flink/jobserver.sh.

    with flink_job_server() as endpoint:                  # "localhost:PORT"
        args = flink_pipeline_args(endpoint)              # LOOPBACK: workers in this process
        with beam.Pipeline(options=PipelineOptions(args)) as p: ...

    with flink_job_server() as endpoint, flink_worker_pool() as pool:
        args = flink_pipeline_args(endpoint, "EXTERNAL", worker_pool=pool)

The job server is a JVM with an embedded Flink (flink-master [local]); its jars are resolved by
Maven into ~/.cache/instructmix/flink/ on first use (jobserver.sh fetch), so the machine needs
java and, until that cache exists, mvn.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOBSERVER_SH = REPO / "deploy" / "flink" / "jobserver.sh"

#: Set to 1 to make a missing java/mvn a test failure instead of a skip (as CI=... does: CI's
#: machines have java and mvn, so there a skip would hide a broken setup).
REQUIRE_ENV = "INSTRUCTMIX_REQUIRE_FLINK"


def _cache_root() -> Path:
    return Path(os.environ.get("INSTRUCTMIX_CACHE") or Path.home() / ".cache" / "instructmix")


def flink_unavailable_reason() -> str | None:
    """Why a Flink job server cannot be started here, or None if it can."""
    if shutil.which("java") is None:
        return "java is not on PATH (the Flink job server is a JVM)"
    if shutil.which("mvn") is None and not glob.glob(str(_cache_root() / "flink/*/lib/.complete")):
        return "mvn is not on PATH and no job server is cached (jobserver.sh fetch needs Maven)"
    return None


def require_flink() -> None:
    """Skip the calling test when Flink can't run here; fail it instead under CI or with
    INSTRUCTMIX_REQUIRE_FLINK=1."""
    import pytest

    reason = flink_unavailable_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1" or os.environ.get("CI"):
        pytest.fail(f"Flink tests must run here (CI or {REQUIRE_ENV}=1) but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_for_port(proc: subprocess.Popen, port: int, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited with code {proc.returncode} before listening on port {port}; "
                f"log {log}:\n{_tail(log)}"
            )
        if _port_open(port):
            return
        time.sleep(0.25)
    raise TimeoutError(
        f"{what} did not listen on port {port} within {timeout:.0f} s; log {log}:\n{_tail(log)}"
    )


def _stop_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """Stop the process group that proc leads (it was started with start_new_session)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # Children (e.g. SDK workers of a worker pool) may outlive the leader: clear the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def fetch_job_server(timeout: float = 900.0) -> None:
    """Resolve the job server's jars into the cache (a no-op when they are there)."""
    res = subprocess.run(
        ["bash", str(JOBSERVER_SH), "fetch"],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if res.returncode != 0:
        raise RuntimeError(f"jobserver.sh fetch failed ({res.returncode}):\n{res.stderr[-4000:]}")


@contextlib.contextmanager
def flink_job_server(
    job_port: int | None = None,
    *,
    startup_timeout: float = 120.0,
    fetch_timeout: float = 900.0,
    log_path: str | os.PathLike | None = None,
) -> Iterator[str]:
    """Start a Flink job server (embedded Flink) on free ports; yield "localhost:PORT".

    The fetch (first use: Maven resolves ~160 jars) is bounded by fetch_timeout, the start by
    startup_timeout. The server's output goes to log_path (default: a temporary file that is
    removed at the end; its tail is in any startup error).
    """
    fetch_job_server(fetch_timeout)
    port = job_port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="instructmix-flink-"))
    log = Path(log_path) if log_path else workdir / "jobserver.log"
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    "bash",
                    str(JOBSERVER_SH),
                    "start",
                    str(port),
                    "0",
                    "0",
                    "--",
                    f"--artifacts-dir={workdir / 'artifacts'}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_for_port(proc, port, startup_timeout, "Flink job server", log)
            yield f"localhost:{port}"
        finally:
            _stop_group(proc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def flink_worker_pool(
    port: int | None = None,
    *,
    startup_timeout: float = 60.0,
    log_path: str | os.PathLike | None = None,
) -> Iterator[str]:
    """Start a Python SDK worker pool (for --environment_type=EXTERNAL); yield "localhost:PORT".

    The pool starts each SDK worker as `instructmix-sdk-worker` (`pipelines.sdk_worker`, as a
    deployment would: Beam's default `python -c ...` skips `pipelines.worker_start`) found on
    PATH, so this interpreter's directory goes first on PATH, and this process's sys.path
    becomes the workers' PYTHONPATH: the workers import the same code (pipelines, transforms,
    test modules) as the submitter.
    """
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="instructmix-workers-"))
    log = Path(log_path) if log_path else workdir / "worker_pool.log"
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "apache_beam.runners.worker.worker_pool_main",
                    f"--service_port={port}",
                    f"--container_executable={_sdk_worker_executable(env['PATH'])}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(REPO),
                start_new_session=True,
            )
        try:
            _wait_for_port(proc, port, startup_timeout, "Beam worker pool", log)
            yield f"localhost:{port}"
        finally:
            _stop_group(proc, grace=5.0)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _sdk_worker_executable(path: str) -> str:
    found = shutil.which("instructmix-sdk-worker", path=path)
    if not found:
        raise RuntimeError(
            "instructmix-sdk-worker is not on PATH: install the project (pip install -e .)"
        )
    return found


def flink_pipeline_args(
    endpoint: str,
    environment: str = "LOOPBACK",
    *,
    worker_pool: str | None = None,
    parallelism: int = 2,
    quiet: bool = True,
) -> list[str]:
    """Pipeline options for a job server at endpoint ("localhost:PORT").

    environment: LOOPBACK (SDK workers run inside the submitting process) or EXTERNAL (workers
    from a worker pool at worker_pool, see flink_worker_pool).
    quiet: the job server applies each pipeline's default_sdk_harness_log_level to its own root
    logger, and Beam's default (INFO) makes an embedded Flink log thousands of lines per job.
    """
    args = [
        "--runner=PortableRunner",
        f"--job_endpoint={endpoint}",
        f"--environment_type={environment}",
        f"--parallelism={parallelism}",
    ]
    if environment == "EXTERNAL":
        if not worker_pool:
            raise ValueError("EXTERNAL needs worker_pool='localhost:PORT' (see flink_worker_pool)")
        args.append(f"--environment_config={worker_pool}")
    elif worker_pool:
        raise ValueError(f"worker_pool is only used with EXTERNAL, not {environment}")
    if quiet:
        # WARN, not WARNING: the Java side parses it as its own LogLevel enum, Python accepts both.
        args.append("--default_sdk_harness_log_level=WARN")
    return args
