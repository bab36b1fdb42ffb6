"""The refresh's user-facing error (its own module so the CLI need not import Beam graphs)."""


class PublishRefusedError(RuntimeError):
    """The night's own checks failed: nothing was committed or published."""
