"""Dataflow flex-template entry point: template parameters → one ``instructmix`` command.

The launcher starts (parameters of metadata.json, then Dataflow's own options)

    python main.py --mode=refresh --input=gs://raw/sni/,gs://raw/chat/*.jsonl \
        --state=gs://b/state --publish=gs://b/publish [--config=…] --runner=DataflowRunner …

and this turns it into the command line every other deployment runs,

    instructmix refresh --input gs://raw/sni/ gs://raw/chat/*.jsonl --state … --publish … -- …

checks it with that command's own parser, and calls the CLI. Nothing else happens here, so a
template launch, ``docker run IMAGE instructmix …`` and the Kubernetes jobs cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys

MODES = ("run", "refresh")


@dataclasses.dataclass(frozen=True)
class Parameter:
    """A template parameter: its CLI flag, the modes that take it, whether they need it."""

    flag: str
    modes: tuple[str, ...]
    required: bool = False
    is_list: bool = False  # comma-separated in the template, one CLI argument per item


# Every parameter of metadata.json except "mode" (tests/test_deploy.py keeps the two in step).
PARAMETERS = {
    "input": Parameter("--input", MODES, required=True, is_list=True),
    "output": Parameter("--output", ("run",), required=True),
    "state": Parameter("--state", ("refresh",), required=True),
    "publish": Parameter("--publish", ("refresh",), required=True),
    "config": Parameter("--config", MODES),
    "languages": Parameter("--languages", MODES),
}


class TemplateParameterError(ValueError):
    """The template parameters do not make a valid instructmix command."""


def split_parameters(argv: list[str]) -> tuple[str | None, dict[str, str | None], list[str]]:
    """(mode, template parameter values, remaining Beam/Dataflow options)."""
    parser = argparse.ArgumentParser(prog="main.py", add_help=False, allow_abbrev=False)
    parser.add_argument("--mode")
    for name in PARAMETERS:
        parser.add_argument(f"--{name}")
    known, beam_args = parser.parse_known_args(argv)
    values = {name: getattr(known, name) for name in PARAMETERS}
    return known.mode, values, [a for a in beam_args if a != "--"]


def command_line(argv: list[str]) -> list[str]:
    """The ``instructmix`` arguments (without the program name) for a template launch."""
    mode, values, beam_args = split_parameters(argv)
    if mode not in MODES:
        raise TemplateParameterError(f"mode must be one of {list(MODES)}, got {mode!r}")
    args = [mode]
    for name, parameter in PARAMETERS.items():
        value = values[name]
        if value is not None and not value.strip():
            value = None  # an empty optional parameter means "not given"
        if value is None:
            if parameter.required and mode in parameter.modes:
                raise TemplateParameterError(f"mode {mode!r} needs the parameter {name!r}")
            continue
        if mode not in parameter.modes:
            raise TemplateParameterError(f"mode {mode!r} does not take the parameter {name!r}")
        items = [v.strip() for v in value.split(",") if v.strip()] if parameter.is_list else [value]
        args += [parameter.flag, *items]
    check_accepted(mode, args[1:])
    return args + ["--", *beam_args] if beam_args else args


def check_accepted(mode: str, args: list[str]) -> None:
    """Parse ``args`` with the mode's own parser; every flag must be one it knows."""
    try:
        module = importlib.import_module(f"pipelines.{mode}")
    except ImportError as error:
        raise TemplateParameterError(f"this image has no 'instructmix {mode}': {error}") from error
    try:
        _, unknown = module.parse_args(args)
    except SystemExit as error:  # argparse already printed what is wrong
        raise TemplateParameterError(f"instructmix {mode} rejected {args}") from error
    if unknown:
        raise TemplateParameterError(f"instructmix {mode} does not accept {unknown}")


def main(argv: list[str] | None = None) -> int:
    try:
        args = command_line(list(sys.argv[1:] if argv is None else argv))
    except TemplateParameterError as error:
        print(f"instructmix flex template: error: {error}", file=sys.stderr)
        return 2
    from pipelines import cli

    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
