"""A large instruction set with planted paraphrases, for the ROUGE-L filter benchmark.

Real instructions from ``../shared/data`` (Alpaca, Self-Instruct seeds, Dolly, LIMA, SNI and
NIv1 definitions) are the skeletons; real text from the same files is the vocabulary (with its
natural, Zipf-like word frequencies). Each generated instruction is either

* new: a skeleton whose content words are re-drawn from the vocabulary (so it shares the
  skeleton's function words and shape, as machine-generated instructions do); a quarter of the
  drawn words come from an open-ended Zipf tail of made-up words (names, jargon), so the
  vocabulary keeps growing with the set as real text does (Heaps' law: Alpaca's instructions
  grow as ~N^0.58, i.e. ~100k distinct words at 1M instructions; this generator gives ~105k), or
* planted: an edit of an earlier generated instruction (substitutions, deletions, insertions,
  swaps, a clause moved, a polite prefix, case and punctuation changes), with an edit rate
  spread so that ROUGE-L F1 to the original falls on both sides of 0.7.

The same seed gives the same list on every machine. Run
``python -m bench.paraphrases --n 20000 --out /tmp/para.jsonl`` to write one.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

_WORD = re.compile(r"[A-Za-z0-9']+")
_STOP_WORDS = """a an the of to in on for and or with by from as at is are be was were this that
these those it its your you i me my we our they their he she his her them what which who whom how
why when where given following each any all some can could would should will do does not no if
then than into about over under between more most less one two three"""
_STOP = frozenset(_STOP_WORDS.split())
_STOP_SORTED = sorted(_STOP)  # a list in a fixed order: sets iterate in hash-seed order
_SYLLABLE_TEXT = "ka ri to mu sel van dor pli ne gus tha bre cor lim fen sa qui zo ex dra"
_SYLLABLES = _SYLLABLE_TEXT.split()
_PREFIXES = (
    ["please"],
    ["can", "you"],
    ["i", "want", "you", "to"],
    ["your", "task", "is", "to"],
    ["could", "you", "please"],
)
_SUFFIXES = (["in", "detail"], ["for", "me"], ["please"], ["briefly"], ["step", "by", "step"])


def synthetic_word(rank: int) -> str:
    """A made-up lower-case word for a tail rank (distinct ranks give distinct words)."""
    out = []
    while True:
        rank, digit = divmod(rank, len(_SYLLABLES))
        out.append(_SYLLABLES[digit])
        if rank == 0:
            return "".join(out) + "x"
        rank -= 1


def _read_json_or_jsonl(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def real_instructions(data: Path = DATA) -> list[str]:
    """Every English instruction text in the shared data, in file order."""
    out: list[str] = []
    out += [
        r["instruction"] for r in _read_json_or_jsonl(data / "alpaca/en/alpaca_data-0-3252.json")
    ]
    out += [r["instruction"] for r in _read_json_or_jsonl(data / "self_instruct/seed_tasks.jsonl")]
    for path in sorted((data / "dolly").glob("*.jsonl")):
        out += [r["instruction"] for r in _read_json_or_jsonl(path)]
    for path in sorted((data / "lima").glob("*.json")):
        out += [r["instruction"] for r in _read_json_or_jsonl(path)]
    for path in sorted((data / "sni/tasks").glob("*.json")):
        definition = json.loads(path.read_text(encoding="utf-8"))["Definition"]
        out.append(" ".join(definition) if isinstance(definition, list) else definition)
    for path in sorted((data / "natural_instructions_v1/tasks").glob("*.json")):
        task = json.loads(path.read_text(encoding="utf-8"))
        out += [task.get("Prompt", ""), task.get("Definition", "")]
    return [s for s in out if s and s.strip()]


def _vocabulary(data: Path) -> tuple[list[str], np.ndarray]:
    """Words of real instruction, input and output text with their frequencies."""
    counts: Counter[str] = Counter()
    for rec in _read_json_or_jsonl(data / "alpaca/en/alpaca_data-0-3252.json"):
        for field in ("instruction", "input", "output"):
            counts.update(w.lower() for w in _WORD.findall(rec.get(field, "")))
    for path in sorted((data / "lima").glob("*.json")):
        for rec in _read_json_or_jsonl(path):
            counts.update(w.lower() for w in _WORD.findall(rec.get("output", "")))
    words = sorted(w for w in counts if w not in _STOP and len(w) > 1)
    freq = np.array([counts[w] for w in words], dtype=np.float64)
    return words, freq / freq.sum()


class ParaphraseGenerator:
    """Deterministic stream of instructions; ``planted[i]`` is the index it paraphrases or -1."""

    def __init__(
        self,
        seed: int = 0,
        *,
        paraphrase_rate: float = 0.2,
        substitution: tuple[float, float] = (0.5, 1.0),
        tail_rate: float = 0.25,
        tail_exponent: float = 1.5,
        tail_scale: float = 100.0,
        data: Path = DATA,
    ) -> None:
        self._rng = np.random.default_rng(seed)
        self._skeletons = [_WORD.findall(s) for s in real_instructions(data)]
        self._skeletons = [s for s in self._skeletons if 2 <= len(s) <= 80]
        self._words, self._p = _vocabulary(data)
        self._cdf = np.cumsum(self._p)
        self._paraphrase_rate = paraphrase_rate
        self._substitution = substitution
        self._tail_rate = tail_rate
        self._tail_exponent = tail_exponent
        self._tail_scale = tail_scale
        self._pool: list[list[str]] = []
        self._word_buffer: list[str] = []
        self.planted: list[int] = []

    def _word(self) -> str:
        if not self._word_buffer:
            rng = self._rng
            idx = np.searchsorted(self._cdf, rng.random(4096) * self._cdf[-1])
            tail = rng.random(4096) < self._tail_rate
            # Zipf-Mandelbrot tail, P(k) ~ (k + scale)^-exponent: no single made-up word is common.
            u = np.maximum(rng.random(4096), 1e-12)
            x = self._tail_scale * (u ** (-1.0 / (self._tail_exponent - 1.0)) - 1.0)
            ranks = np.minimum(x, 1e15).astype(np.int64)
            self._word_buffer = [
                synthetic_word(int(r)) if t else self._words[min(i, len(self._words) - 1)]
                for i, t, r in zip(idx.tolist(), tail.tolist(), ranks.tolist())
            ]
        return self._word_buffer.pop()

    def _new(self) -> list[str]:
        rng = self._rng
        skeleton = self._skeletons[rng.integers(len(self._skeletons))]
        p = rng.uniform(*self._substitution)
        out = []
        for k, w in enumerate(skeleton):
            lw = w.lower()
            keep_first = k == 0 and rng.random() < 0.7
            if lw in _STOP or keep_first or rng.random() >= p:
                out.append(w)
            else:
                out.append(self._word())
            if rng.random() < 0.05:
                out.append(self._word())
        return out

    def _paraphrase(self, src: list[str]) -> list[str]:
        rng = self._rng
        out = list(src)
        rate = rng.choice(
            [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45], p=[0.1, 0.15, 0.2, 0.2, 0.15, 0.1, 0.1]
        )
        n_ops = rng.binomial(max(len(out), 1), rate)
        for _ in range(n_ops):
            op = rng.integers(6)
            if not out:
                out.append(self._word())
                continue
            i = int(rng.integers(len(out)))
            if op == 0:
                out[i] = self._word()
            elif op == 1 and len(out) > 1:
                del out[i]
            elif op == 2:
                out.insert(i, self._word())
            elif op == 3 and i + 1 < len(out):
                out[i], out[i + 1] = out[i + 1], out[i]
            elif op == 4 and len(out) > 4:
                out = out[i:] + out[:i]
            else:
                out.insert(i, _STOP_SORTED[rng.integers(len(_STOP_SORTED))])
        if rng.random() < 0.15:
            out = list(_PREFIXES[rng.integers(len(_PREFIXES))]) + out
        if rng.random() < 0.1:
            out = out + list(_SUFFIXES[rng.integers(len(_SUFFIXES))])
        return out

    def _render(self, words: list[str]) -> str:
        rng = self._rng
        text = " ".join(words)
        if rng.random() < 0.2:
            text = text.upper() if rng.random() < 0.1 else text.lower()
        text = text[:1].upper() + text[1:]
        return text + (".", "?", "!", "", " :")[rng.integers(5)]

    def __iter__(self) -> Iterator[str]:
        while True:
            if self._pool and self._rng.random() < self._paraphrase_rate:
                src = int(self._rng.integers(len(self._pool)))
                words = self._paraphrase(self._pool[src])
                self.planted.append(src)
            else:
                words = self._new()
                self.planted.append(-1)
            self._pool.append(words)
            yield self._render(words)


def generate(n: int, seed: int = 0, **kwargs) -> tuple[list[str], list[int]]:
    """``n`` instructions and, for each, the index of the instruction it paraphrases (or -1)."""
    gen = ParaphraseGenerator(seed, **kwargs)
    it = iter(gen)
    texts = [next(it) for _ in range(n)]
    return texts, gen.planted[:n]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    texts, planted = generate(args.n, args.seed)
    with open(args.out, "w", encoding="utf-8") as f:
        f.writelines(
            json.dumps({"index": i, "instruction": text, "paraphrase_of": src}) + "\n"
            for i, (text, src) in enumerate(zip(texts, planted))
        )


if __name__ == "__main__":
    main()
