"""The ``publish`` section: what the nightly refresh accepts before it publishes a snapshot."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class PublishConfig:
    """Args:
    waive_leakage: leakage shards (fnmatch patterns, e.g. ``"task:task1146_*"`` or ``"*"``)
        whose flags do not stop a refresh from publishing. Any other flagged shard does.
    """

    waive_leakage: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.waive_leakage, str):
            raise TypeError("waive_leakage must be a list of patterns, not one string")
        object.__setattr__(self, "waive_leakage", tuple(self.waive_leakage))
