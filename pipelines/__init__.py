"""instructmix pipelines: options, the batch run, the nightly refresh and the CLI."""

__version__ = "0.1.0"
