"""Text normalisation and tokenisation shared by every stage that counts tokens.

Scripts written without spaces (Chinese, Japanese, Thai, Lao, Khmer, Myanmar, Tibetan) are
tokenised per character; everything else per run of letters, digits and combining marks, so a
Hindi word keeps its vowel signs and a Chinese sentence never becomes one giant "word". The
same tokenizer feeds shingles (dedup), ROUGE-L (unicode mode) and template tokens (leakage).
"""

from __future__ import annotations

import hashlib
import unicodedata

import regex

# Scripts whose words are not separated by spaces: tokenised one character at a time.
NO_SPACE_SCRIPTS = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tibetan}"

_TOKEN = regex.compile(
    r"(?V1)[" + NO_SPACE_SCRIPTS + r"]|[[\p{L}\p{N}\p{M}]--[" + NO_SPACE_SCRIPTS + r"]]+"
)
_NO_SPACE_CHAR = regex.compile(r"[" + NO_SPACE_SCRIPTS + r"]")
_WHITESPACE = regex.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed: the form exact duplicates are compared in."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def tokens(text: str) -> list[str]:
    """Unicode-aware tokens of normalised text (characters for scripts without spaces)."""
    return _TOKEN.findall(normalize_text(text))


def has_no_space_script(text: str) -> bool:
    """True when the text contains any character of a script written without spaces."""
    return _NO_SPACE_CHAR.search(text) is not None


def stable_hash(*parts: str, digest_size: int = 16) -> str:
    """Hex BLAKE2b of the parts, each prefixed by its length; identical on every runner."""
    data = [part.encode("utf-8") for part in parts]
    framed = b"".join([b for d in data for b in (len(d).to_bytes(8, "little"), d)])
    return hashlib.blake2b(framed, digest_size=digest_size).hexdigest()
