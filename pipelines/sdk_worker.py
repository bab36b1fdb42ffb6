"""``instructmix-sdk-worker``: a Beam SDK worker for Beam's Python worker pool that imports
``pipelines.worker_start`` before it connects.

    python -m apache_beam.runners.worker.worker_pool_main --service_port=50000 \\
        --container_executable=instructmix-sdk-worker

By default the pool starts each worker as ``python -c "...SdkHarness(...).run()"``, which reads
no pipeline options, so no ``--beam_plugins``. Given an executable, the pool passes it a
container's boot flags; like Beam's own command, the worker uses two of them (its id and the
control endpoint) and Beam's defaults for the rest.
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="instructmix-sdk-worker", description=__doc__)
    parser.add_argument("--id", required=True, help="the worker id the runner gave")
    parser.add_argument("--control_endpoint", required=True, help="the runner's control API")
    args, _boot_flags = parser.parse_known_args(argv)  # logging, artifact, provision: unused

    import pipelines.worker_start  # noqa: F401  (before any channel opens)
    from apache_beam.runners.worker.sdk_worker import SdkHarness

    SdkHarness(args.control_endpoint, worker_id=args.id).run()


if __name__ == "__main__":
    main()
