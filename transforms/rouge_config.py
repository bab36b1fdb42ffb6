"""Configuration of the ROUGE-L instruction filter: one frozen dataclass, validated when built.

Only this plain config crosses the pickling boundary; thresholds tables and token memos are
built on the worker (``DoFn.setup``). Defaults reproduce Self-Instruct / Alpaca: ROUGE-L F1
(``rouge_score``, no stemmer) of the instruction alone, drop when > 0.7 against any kept one.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from transforms.rouge import CANDIDATE_METHODS, TOKENIZERS
from transforms.text import stable_hash

# Sources where thousands of records share one instruction (a task definition or a template):
# the filter compares their distinct instructions and reports near-duplicate *tasks*.
TASK_SOURCES = ("sni", "niv1", "p3", "flan", "flan_cot")


@dataclass(frozen=True, kw_only=True)
class RougeConfig:
    """How instructions are compared and which ones are dropped.

    Attributes:
        threshold: drop an instruction whose ROUGE-L F1 with an already kept one is *greater*
            than this (Self-Instruct: 0.7).
        tokenizer: ``"rouge_score"`` (exactly the reference's tokens: ASCII letters and digits
            only, so non-Latin instructions have no tokens and are always kept) or
            ``"unicode"`` (``transforms.text.tokens``: words, characters for CJK/Thai).
        instruction_fields: record fields joined by a newline to form "the instruction".
            ``("definition",)`` is the instruction alone (Self-Instruct, Alpaca);
            ``("definition", "input")`` compares instruction and input together.
        task_sources: sources whose records share instructions (task definitions, templates);
            their unit is the distinct instruction of a task, compared only with other such
            units, and near-duplicates are reported in ``near_duplicate_tasks``.
        drop_near_duplicate_tasks: also remove every record of a near-duplicate task (default:
            report only).
        order_by: record fields giving the reference's order (compared as a tuple, missing
            values first). Input order is ``(source_file, source_index)``: files by path, then
            records in file order. Greedy decisions depend on this order.
        candidates: ``"prefix"`` (exact prefix-filter keys, 100% recall by construction) or
            ``"lsh"`` (MinHash banding; misses with probability <= ``lsh_max_miss`` per pair).
        lsh_max_miss: target miss probability of a pair at Jaccard t/(2-t) for ``"lsh"``.
        num_partitions: shuffle partitions of the candidate join and of the graph stages.
        batch_size: units per numpy batch on a worker.
        cc_rounds: rounds of the distributed connected-components algorithm; nodes not yet in a
            star after them (a few hundred of 1M measured after 3) are finished by a union-find
            on one worker. Exact for any value; more rounds = more shuffles, smaller remainder.
        use_rapidfuzz: use rapidfuzz's C++ LCS when installed (same results, ~15x faster).
        report_text_chars: characters of instruction text kept in report rows.
    """

    threshold: float = 0.7
    tokenizer: str = "rouge_score"
    instruction_fields: tuple[str, ...] = ("definition",)
    task_sources: tuple[str, ...] = TASK_SOURCES
    drop_near_duplicate_tasks: bool = False
    order_by: tuple[str, ...] = ("source_file", "source_index")
    candidates: str = "prefix"
    lsh_max_miss: float = 1e-6
    num_partitions: int = 32
    batch_size: int = 4096
    cc_rounds: int = 3
    use_rapidfuzz: bool = True
    report_text_chars: int = 300

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {self.tokenizer!r}")
        for name in ("instruction_fields", "task_sources", "order_by"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"{name} must be a sequence of names, not one string")
            object.__setattr__(self, name, tuple(value))
        if not self.instruction_fields or len(set(self.instruction_fields)) != len(
            self.instruction_fields
        ):
            raise ValueError(
                f"instruction_fields must be distinct names, got {self.instruction_fields}"
            )
        if not self.order_by:
            raise ValueError("order_by must name at least one field")
        if self.candidates not in CANDIDATE_METHODS:
            raise ValueError(
                f"candidates must be one of {CANDIDATE_METHODS}, got {self.candidates!r}"
            )
        if not 0.0 < self.lsh_max_miss < 0.5:
            raise ValueError(f"lsh_max_miss must be in (0, 0.5), got {self.lsh_max_miss}")
        for name in ("num_partitions", "batch_size", "cc_rounds", "report_text_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def fingerprint(self) -> str:
        """Short stable hash of every setting, for manifests."""
        return stable_hash(json.dumps(dataclasses.asdict(self), sort_keys=True), digest_size=6)
