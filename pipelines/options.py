"""The only module that knows ``PipelineOptions``: runner defaults and a readable runner name.

Beam 2.77's ``DirectRunner`` first tries Prism, a Go binary it downloads at run time; offline
that costs a failed download (or a DNS time-out) before it falls back. The default here is the
runner the fallback ends on anyway, named explicitly: ``FnApiRunner`` — in-process, or one
process per worker with ``--direct_num_workers=N --direct_running_mode=multi_processing``.
Pass ``--runner`` to choose any other (DirectRunner, PrismRunner, FlinkRunner,
PortableRunner, DataflowRunner).
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    PortableOptions,
    SetupOptions,
    StandardOptions,
)

from pipelines.local_runner import bounded_input_messages, without_timed_flushes
from transforms.worker import fix_receive_window, hold_freed_memory, keeps_malloc_defaults

DEFAULT_RUNNER = "FnApiRunner"
WORKER_START = "pipelines.worker_start"  # imported first by each worker (--beam_plugins)
_DIRECT_RUNNERS = ("FnApiRunner", "DirectRunner", "SwitchingDirectRunner")


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Options from Beam arguments, with the quiet offline default runner, and
    ``WORKER_START`` among the modules each worker imports first."""
    options = PipelineOptions(beam_args)
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = DEFAULT_RUNNER
    setup = options.view_as(SetupOptions)
    if WORKER_START not in (setup.beam_plugins or []):
        setup.beam_plugins = [*(setup.beam_plugins or []), WORKER_START]
    return options


def _runner_name(options: PipelineOptions) -> str:
    runner = options.view_as(StandardOptions).runner
    return runner if isinstance(runner, str) else type(runner).__name__


def runner_description(options: PipelineOptions) -> dict:
    """What actually runs the job, for the manifest and the summary."""
    name = _runner_name(options)
    described = {"runner": name}
    if name in _DIRECT_RUNNERS:
        direct = options.view_as(DirectOptions)
        described["mode"] = direct.direct_running_mode
        described["workers"] = direct.direct_num_workers
    portable = options.view_as(PortableOptions)
    if portable.job_endpoint:
        described["job_endpoint"] = portable.job_endpoint
        described["environment_type"] = portable.environment_type
    return described


def runs_in_process(options: PipelineOptions) -> bool:
    """True when the job's workers run in this very process (the default runner's default)."""
    return _runner_name(options) in _DIRECT_RUNNERS and (
        options.view_as(DirectOptions).direct_running_mode != "multi_processing"
    )


def prepare_process(options: PipelineOptions) -> None:
    """Settings this process needs when it runs the job (local runners) or is its worker.

    Beam's Python runner flushes its data channels by size only (its timed flush loses data
    under load) and sends its workers their input in messages of ~10 MB (not a bundle's whole
    input as one): ``pipelines.local_runner``. That runner runs local jobs, and jobs sent to an
    embedded job service (``--runner=PortableRunner --job_endpoint=embed``); other runners
    never read the settings. In-process, the runner moves every shuffle as one large buffer:
    freed memory is kept for reuse instead of being returned to the kernel and faulted in
    again (``transforms.worker.hold_freed_memory``; ~10% less CPU for the dedup stage, peak
    +5-13%). ``INSTRUCTMIX_MALLOC_DEFAULTS=1`` keeps glibc's defaults. Workers that run in
    this process (``--environment_type=LOOPBACK``) keep gRPC's initial receive window, as
    workers elsewhere do (``pipelines.worker_start``).
    """
    without_timed_flushes()
    bounded_input_messages()
    fix_receive_window()
    if runs_in_process(options) and not keeps_malloc_defaults():
        hold_freed_memory()


DRY_RUN = "a dry run (--dry_run): the job graph was built, nothing ran"
TEMPLATE_STAGED = "a template was staged (--template_location): the job runs when launched"


def job_runs_later(options: PipelineOptions) -> str | None:
    """Why the job's outputs will not exist when ``pipeline.run()`` returns (``DRY_RUN`` or
    ``TEMPLATE_STAGED``), or None.

    ``--dry_run`` builds the job graph and submits nothing; ``--template_location`` stages a
    classic template to be launched later. Steps after the pipeline (reconciliation, manifest,
    publication) must not run then: there is nothing to check yet.
    """
    from apache_beam.options.pipeline_options import GoogleCloudOptions, TestOptions

    if options.view_as(TestOptions).dry_run:
        return DRY_RUN
    if options.view_as(GoogleCloudOptions).template_location:
        return TEMPLATE_STAGED
    return None
