"""Shim for Beam's ``--setup_file``: Dataflow and Flink workers install the project with it.

All metadata lives in pyproject.toml; workers run ``pip install .`` on this directory, which
ships the ``pipelines`` and ``transforms`` packages and their dependencies.
"""

from setuptools import setup

setup()
