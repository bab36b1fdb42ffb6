"""Memory of the dedup DoFns per call, on any runner: which stage holds what, and does it grow.

    INSTRUCTMIX_DOFN_PROBE=/tmp/probe.jsonl python -m bench.dedup_bench --n 300000 --only flink
    python -m bench.dofn_probe /tmp/probe.jsonl          # one line per DoFn

With the variable set, ``install()`` (called by the bench) replaces the dedup DoFn classes by
subclasses that append, per ``process`` call, the worker's pid, the call's input (values and
pickled bytes of a grouped shard) and the process's VmRSS before and after to the file. The
subclasses live at the top level of this module, so worker processes unpickle them by name;
the workers read the path from the same variable (worker pools pass the environment on).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict

from transforms import clusters, dedup

ENV = "INSTRUCTMIX_DOFN_PROBE"
_DOFNS = {
    dedup: (
        "_FingerprintFn",
        "_ExactShardFn",
        "_BucketShardFn",
        "_SignatureShardFn",
        "_VerifyShardFn",
        "_DecideShardFn",
    ),
    clusters: ("_RouteFn", "_LargeStarFn", "_SmallStarFn", "_ResolveFn"),
}


def rss_mb() -> int:
    """This process's resident set size now (VmRSS), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def _input_size(element) -> list[int] | None:
    """[values, bytes] of a grouped (shard, blobs) element or of one packed batch."""
    if isinstance(element, bytes):
        return [1, len(element)]
    if isinstance(element, tuple) and len(element) == 2 and not isinstance(element[1], bytes):
        values = list(element[1])
        return [len(values), sum(len(v) for v in values if isinstance(v, bytes))]
    return None


def _probe_class(base: type, name: str) -> type:
    def process(self, element, *args):
        before, start = rss_mb(), time.time()
        outputs = list(base.process(self, element, *args))
        row = {
            "dofn": name,
            "pid": os.getpid(),
            "t": start,
            "input": _input_size(element),
            "outputs": len(outputs),
            "rss_before_mb": before,
            "rss_after_mb": rss_mb(),
        }
        with open(os.environ[ENV], "a") as f:
            f.write(json.dumps(row) + "\n")
        yield from outputs

    return type(f"Probe{name}", (base,), {"process": process, "__module__": __name__})


for _module, _names in _DOFNS.items():
    for _name in _names:
        globals()[f"Probe{_name}"] = _probe_class(getattr(_module, _name), _name)


def install() -> bool:
    """Swap the probes in when ``INSTRUCTMIX_DOFN_PROBE`` names a file (before building)."""
    if not os.environ.get(ENV):
        return False
    for module, names in _DOFNS.items():
        for name in names:
            setattr(module, name, globals()[f"Probe{name}"])
    return True


def summary(path: str) -> None:
    """Per DoFn: calls, worker pids, largest input per call, RSS at the first and last call."""
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    by_dofn = defaultdict(list)
    for row in rows:
        by_dofn[row["dofn"]].append(row)
    t0 = min(r["t"] for r in rows)
    for name, calls in sorted(by_dofn.items(), key=lambda kv: min(r["t"] for r in kv[1])):
        calls.sort(key=lambda r: r["t"])
        inputs = [r["input"] for r in calls if r["input"]]
        print(
            json.dumps(
                {
                    "dofn": name,
                    "calls": len(calls),
                    "pids": sorted({r["pid"] for r in calls}),
                    "t_s": [round(calls[0]["t"] - t0, 1), round(calls[-1]["t"] - t0, 1)],
                    "max_input_values": max((i[0] for i in inputs), default=0),
                    "max_input_mb": round(max((i[1] for i in inputs), default=0) / 1e6, 1),
                    "rss_first_call_mb": calls[0]["rss_before_mb"],
                    "rss_last_call_mb": calls[-1]["rss_after_mb"],
                    "rss_max_mb": max(r["rss_after_mb"] for r in calls),
                    "max_rss_growth_in_a_call_mb": max(
                        r["rss_after_mb"] - r["rss_before_mb"] for r in calls
                    ),
                }
            )
        )


if __name__ == "__main__":
    summary(sys.argv[1])
