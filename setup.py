"""Shim for Beam's ``--setup_file``: Dataflow and Flink workers install the project with it.

All metadata lives in pyproject.toml; workers run ``pip install .`` on this directory, which
ships the ``pipelines`` and ``transforms`` packages and their dependencies. The one thing that
needs setup.py is the C extension ``transforms._sigkernel`` (normalised ASCII text, word
shingles and MinHash signatures, see ``transforms/minhash.py``): it is optional, so a machine
without a C compiler still installs the project and does the same in Python and numpy.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "transforms._sigkernel",
            ["transforms/_sigkernel.c"],
            optional=True,
            extra_compile_args=["-O3"],
        )
    ]
)
