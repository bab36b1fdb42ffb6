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
    StandardOptions,
)

DEFAULT_RUNNER = "FnApiRunner"


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Options from Beam arguments, with the quiet offline default runner."""
    options = PipelineOptions(beam_args)
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = DEFAULT_RUNNER
    return options


def runner_description(options: PipelineOptions) -> dict:
    """What actually runs the job, for the manifest and the summary."""
    runner = options.view_as(StandardOptions).runner
    name = runner if isinstance(runner, str) else type(runner).__name__
    described = {"runner": name}
    if name in ("FnApiRunner", "DirectRunner", "SwitchingDirectRunner"):
        direct = options.view_as(DirectOptions)
        described["mode"] = direct.direct_running_mode
        described["workers"] = direct.direct_num_workers
    portable = options.view_as(PortableOptions)
    if portable.job_endpoint:
        described["job_endpoint"] = portable.job_endpoint
        described["environment_type"] = portable.environment_type
    return described


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
