"""Kernels of language ID: config, text preparation, the decision and its reasons, codes,
declared names, model loading. No Beam pipelines here (see test_langid_stage.py)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import ClassVar

import pytest
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.localfilesystem import LocalFileSystem

from transforms import langid
from transforms.langid import (
    CODE_ONLY,
    EMPTY,
    FALLBACK_CONFLICT,
    LOW_CONFIDENCE,
    MIXED_SCRIPT,
    SCRIPT_MISMATCH,
    SYMBOLS_ONLY,
    TOO_SHORT,
    UND,
    Decision,
    LanguageIdentifier,
    agreement_row,
    base_language,
    chinese_script,
    declared_codes,
    default_model_path,
    language_code,
    languages_agree,
    load_model,
    normalize_label,
    prepare_text,
    script_counts,
    split_key,
    strip_code,
)
from transforms.langid_config import LangIdConfig, LanguageFilterConfig
from transforms.schema import new_record

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Hand-written sentences (not from any data set), one per language and script.
SENTENCES = {
    "en": "Hello, how are you today my friend? I hope the weather is nice where you live.",
    "fi": "Tämä on suomenkielinen lause, jossa kerrotaan säästä ja sen muutoksista.",
    "de": "Heute regnet es den ganzen Tag, deshalb bleiben wir lieber zu Hause.",
    "es": "Mañana vamos a visitar a mis abuelos que viven en el campo.",
    "fr": "Nous avons passé une excellente soirée avec nos amis au restaurant.",
    "ru": "Сегодня мы пошли в парк и долго гуляли вдоль реки.",
    "ar": "ذهبنا إلى السوق صباحا واشترينا الكثير من الفواكه الطازجة.",
    "fa": "امروز هوا خیلی خوب است و ما به پارک رفتیم تا قدم بزنیم.",
    "hi": "आज मौसम बहुत अच्छा है और हम पार्क में घूमने गए।",
    "ja": "今日はとても良い天気なので、公園に散歩に行きました。",
    "ko": "오늘은 날씨가 좋아서 친구들과 공원에 산책을 갔습니다.",
    "zh-Hans": "今天天气很好，我们一起去公园散步了。",
    "zh-Hant": "今天天氣很好，我們一起去公園散步了。",
    "sr-Cyrl": "Данас је лепо време и ми смо отишли у шетњу по граду.",
    "el": "Σήμερα ο καιρός είναι πολύ ωραίος και πήγαμε βόλτα στο πάρκο.",
    "th": "วันนี้อากาศดีมากเราจึงไปเดินเล่นที่สวนสาธารณะ",
    "tr": "Bugün hava çok güzel olduğu için parkta yürüyüş yaptık.",
}

ENGLISH_INSTRUCTION = "In this task you are given a sentence. Classify its sentiment."


@pytest.fixture(scope="module")
def identifier() -> LanguageIdentifier:
    return LanguageIdentifier.default()


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"max_chars": 8},
        {"threshold": 1.0},
        {"threshold": -0.1},
        {"min_chars": -1},
        {"min_script_share": 1.5},
        {"dense_script_weight": 0.5},
        {"split_key_order": ("input", "input")},
        {"split_key_order": ("input", "title")},
        {"split_key_order": ()},
        {"batch_size": 0},
        {"model_path": "  "},
        {"fallback_conflict_threshold": 0.0},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        LangIdConfig(**bad)


def test_config_is_frozen_keyword_only_and_fingerprinted():
    config = LangIdConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.threshold = 0.1  # type: ignore[misc]
    with pytest.raises(TypeError):
        LangIdConfig("model.bin")  # type: ignore[misc]
    assert config.fingerprint() == LangIdConfig().fingerprint()
    assert config.fingerprint() != LangIdConfig(threshold=0.6).fingerprint()
    assert LangIdConfig(split_key_order=["instruction", "input"]).split_key_order == (
        "instruction",
        "input",
    )


def test_filter_config_parses_and_keeps_subtags():
    config = LanguageFilterConfig.parse("en, zh,sr")
    assert config.languages == ("en", "zh", "sr")
    assert config.keeps("zh-Hans") and config.keeps("zh-Hant") and config.keeps("sr-Latn")
    assert config.keeps("en") and not config.keeps("eo") and not config.keeps("zhx")
    assert not config.keeps(None) and not config.keeps(UND)
    assert LanguageFilterConfig.parse(["und"]).keeps(None)
    with pytest.raises(ValueError):
        LanguageFilterConfig.parse("")
    with pytest.raises(TypeError):
        LanguageFilterConfig(languages="en")


# --- text preparation ------------------------------------------------------------------------


def test_prepare_text_collapses_whitespace_and_cuts_at_a_word():
    assert prepare_text("  one\ntwo\r\n\tthree\x00four  ", 100) == "one two three four"
    assert prepare_text(None, 50) == "" and prepare_text("", 50) == ""
    text = "word " * 100
    prepared = prepare_text(text, 42)
    assert len(prepared) <= 42 and prepared.endswith("word") and "\n" not in prepared
    unbroken = "x" * 500  # no space to back off to: a hard cut
    assert prepare_text(unbroken, 64) == "x" * 64


def test_strip_code_keeps_prose_and_counts_code_lines():
    text = "Why does this fail?\n```python\nx = f(1)\n```\ndef f(x):\n    return x + 1\nThanks!"
    prose, code = strip_code(text)
    assert "Why does this fail?" in prose and "Thanks!" in prose
    assert "return" not in prose and "def" not in prose and code >= 4
    assert strip_code("Just a plain sentence, nothing else.") == (
        "Just a plain sentence, nothing else.",
        0,
    )


# --- the decision and its reasons ------------------------------------------------------------


@pytest.mark.parametrize("expected", sorted(SENTENCES))
def test_real_sentences_get_their_language(identifier, expected):
    decision = identifier.decide(SENTENCES[expected])
    assert decision.lang == expected and decision.reason == "ok"
    assert 0.5 <= decision.score <= 1.0


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", EMPTY),
        (None, EMPTY),
        ("   \n\t ", EMPTY),
        ("ok", TOO_SHORT),
        ("Thanks a lot", TOO_SHORT),
        ("你好世界", TOO_SHORT),  # 4 Han characters weigh 12 < 20
        ("😀😂🎉👍", SYMBOLS_ONLY),
        ("12345 + 678 = 999 !!!", SYMBOLS_ONLY),
        ("→ ★ ♥ ✓ … — ©", SYMBOLS_ONLY),
        ("def f(x):\n    return x ** 2\n", CODE_ONLY),
        ("for (int i = 0; i < n; i++) { total += a[i]; }", CODE_ONLY),
        ("```js\nconst answer = compute(42);\nconsole.log(answer);\n```", CODE_ONLY),
        ("SELECT name, price FROM products WHERE price > 10;", CODE_ONLY),
        ("Hello world again 你好世界朋友们 привет мир снова", MIXED_SCRIPT),
        ("qwrtpsdfgh zxcvbnm kjhgf lkjh qwrt zxcv", LOW_CONFIDENCE),
    ],
)
def test_no_language_goes_to_und_with_its_reason(identifier, text, reason):
    decision = identifier.decide(text)
    assert decision.lang == UND
    assert decision.reason == reason


def test_script_counts_split_mixed_runs():
    # "UX的全名是User" is one run of letters in two scripts: each part is counted apart.
    assert script_counts("UX的全名是User", 3.0) == {"Latn": 6.0, "Hani": 12.0}
    assert script_counts("Привет, мир! Hello", 1.0) == {"Cyrl": 9.0, "Latn": 5.0}
    assert script_counts("12 + 3 = 15 ✓", 3.0) == {}


def test_dense_scripts_count_more_per_character(identifier):
    # 7 Han characters weigh 21 >= 20 letters; the same count of Latin letters is too short.
    assert identifier.decide("我们明天去北京").lang == "zh-Hans"
    assert identifier.decide("abcdefg").reason == TOO_SHORT
    heavy = LanguageIdentifier(identifier.model, LangIdConfig(dense_script_weight=1.0))
    assert heavy.decide("我们明天去北京").reason == TOO_SHORT


def test_thresholds_are_configurable(identifier):
    text = "The quick brown fox jumps over the lazy dog."
    assert identifier.decide(text).lang == "en"
    strict = LanguageIdentifier(identifier.model, LangIdConfig(threshold=0.999))
    decision = strict.decide(text)
    assert decision.lang == UND and decision.reason == LOW_CONFIDENCE
    assert 0.0 < decision.score < 0.999
    short = LanguageIdentifier(identifier.model, LangIdConfig(min_chars=200))
    assert short.decide(text).reason == TOO_SHORT


def test_text_in_capitals_is_read_lowercased(identifier):
    assert identifier.decide("TELL ME WHO YOU ARE RIGHT NOW PLEASE").lang == "en"
    raw = LanguageIdentifier(identifier.model, LangIdConfig(lowercase=False))
    assert raw.decide("TELL ME WHO YOU ARE RIGHT NOW PLEASE").lang != "en"


def test_urls_are_not_language(identifier):
    assert identifier.decide("https://example.com/some/long/path?query=value").reason in {
        SYMBOLS_ONLY,
        TOO_SHORT,
    }
    text = SENTENCES["fi"] + " https://example.com/a/b/c user@example.org"
    assert identifier.decide(text).lang == "fi"


def test_code_with_a_question_is_decided_by_the_prose(identifier):
    text = (
        "Miksi tämä funktio palauttaa aina väärän arvon, vaikka syöte on oikein?\n"
        "```python\ndef add(a, b):\n    return a - b\n```"
    )
    assert identifier.decide(text).lang == "fi"


def test_script_gate_rejects_labels_in_another_script(identifier):
    # lid.176.ftz scores this short Han text as Russian (p~1.0); the script says Chinese.
    text = "辣椒炒肉好吃极了真的"
    assert identifier.decide(text).lang == "zh-Hans"
    ungated = LanguageIdentifier(identifier.model, LangIdConfig(script_gate=False))
    assert ungated.decide(text).lang != "zh-Hans"


def test_cantonese_needs_cantonese_characters(identifier):
    assert identifier.decide("佢哋今日去咗公園度玩，好開心嘅。").lang == "yue"
    assert base_language(identifier.decide("说出四种由低温引起的疾病。").lang) == "zh"


def test_prefix_length_bounds_the_work(identifier):
    long_text = SENTENCES["de"] + " " + SENTENCES["en"] * 20
    short = LanguageIdentifier(identifier.model, LangIdConfig(max_chars=64))
    assert short.decide(long_text).lang == "de"  # only the German head is read


def test_memo_is_bounded_and_transparent(identifier):
    small = LanguageIdentifier(identifier.model, LangIdConfig(cache_size=2))
    texts = [SENTENCES["fi"], SENTENCES["de"], SENTENCES["es"], SENTENCES["fi"]]
    assert small.decide_many(texts) == identifier.decide_many(texts)
    assert 0 < len(small._memo) <= 2
    assert [small.decide(text) for text in texts] == identifier.decide_many(texts)
    assert 0 < len(small._memo) <= 2


# --- codes -----------------------------------------------------------------------------------


def test_labels_are_normalised():
    assert normalize_label("__label__en") == "en"
    assert normalize_label("__label__als") == "gsw"
    assert normalize_label("__label__bh") == "bho"
    assert normalize_label("__label__sh") == "hbs"
    assert normalize_label("__label__ceb") == "ceb"
    assert normalize_label("__label__zh", "这是简体中文的句子") == "zh-Hans"
    assert normalize_label("__label__zh", "這是繁體中文的句子") == "zh-Hant"
    assert normalize_label("__label__zh", "大家好") == "zh-Hans"  # script-neutral text
    assert normalize_label("__label__sr", "Ово је ћирилица") == "sr-Cyrl"
    assert normalize_label("__label__sr", "Ovo je latinica") == "sr-Latn"
    assert chinese_script("我们") == "Hans" and chinese_script("我們") == "Hant"
    assert chinese_script("大家") is None
    assert base_language("zh-Hant") == "zh" and base_language(None) == UND


SNI_LANGUAGES = (
    "English Spanish Japanese Persian Hindi French Chinese Bengali Gujarati German Telugu "
    "Italian Marathi Polish Punjabi Portuguese Tamil Turkish Urdu Arabic Catalan Croatian "
    "Czech Dutch Filipino Galician Greek Hebrew Indonesian Kannada Korean Malayalam Oriya "
    "Romanian Russian Swedish Thai Vietnamese Basque Bulgarian Burmese Finnish Hausa Igbo "
    "Lao Malay Somali Swahili Yoruba Zulu Amharic Kinyarwanda Wolof Tagalog Estonian"
)


def test_every_sni_language_name_has_a_code():
    sni_languages = [*SNI_LANGUAGES.split(), "Central Khmer", "Panjabi", "Modern Greek (1453-)"]
    sni_languages.append("Swahili (macrolanguage)")
    codes = {name: language_code(name) for name in sni_languages}
    assert all(codes.values()), [name for name, code in codes.items() if not code]
    assert codes["Central Khmer"] == "km" and codes["Persian"] == "fa"
    assert codes["Modern Greek (1453-)"] == "el" and codes["Filipino"] == "fil"
    assert language_code("Klingon") is None and language_code("") is None
    assert language_code("zh-Hant") == "zh-Hant"  # already a code
    assert declared_codes(["English", "Spanish", "English", "Klingon"]) == ["en", "es"]


def test_agreement_is_reported_not_resolved():
    assert languages_agree(["en"], "en") is True
    assert languages_agree(["en"], "fi") is False  # the Finnish SNI translations
    assert languages_agree(["en", "es"], "es") is True
    assert languages_agree(["zh"], "zh-Hant") is True
    assert languages_agree(["fil"], "tl") is True
    assert languages_agree(["hr"], "hbs") is True
    assert languages_agree([], "en") is None
    assert languages_agree(["en"], UND) is None
    row = agreement_row((("task1", "English", "fi"), 7))
    assert row == {
        "task": "task1",
        "declared_input_language": "English",
        "lang": "fi",
        "count": 7,
        "agrees": False,
    }


# --- the split key ---------------------------------------------------------------------------

ORDER = ("input", "instruction", "output")


def _d(lang, reason="ok", score=0.9):
    return Decision(lang, score if lang != UND else None, reason)


def test_split_key_falls_back_only_without_language_signal():
    scripts = {"input": None, "instruction": "Latn", "output": "Latn"}
    got = split_key(
        {"input": _d(UND, EMPTY), "instruction": _d("en"), "output": _d("fi")}, scripts, ORDER
    )
    assert got == Decision("en", 0.9, "instruction")
    got = split_key(
        {"input": _d(UND, CODE_ONLY), "instruction": _d(UND, EMPTY), "output": _d("fi")},
        scripts,
        ORDER,
    )
    assert got.lang == "fi" and got.reason == "output"
    got = split_key(
        {"input": _d(UND, LOW_CONFIDENCE), "instruction": _d("en"), "output": _d("en")},
        scripts,
        ORDER,
    )
    assert got.lang == UND and got.reason == "input:low_confidence"
    got = split_key(
        {"input": _d(UND, MIXED_SCRIPT), "instruction": _d("en"), "output": _d("en")},
        scripts,
        ORDER,
    )
    assert got.reason == "input:mixed_script"
    got = split_key(
        {"input": _d(UND, EMPTY), "instruction": _d(UND, EMPTY), "output": _d(UND, EMPTY)},
        scripts,
        ORDER,
    )
    assert got == Decision(UND, None, "input:empty")
    got = split_key(
        {"input": _d(UND, TOO_SHORT), "instruction": _d("en"), "output": _d("en")},
        {"input": "Kana", "instruction": "Latn"},
        ORDER,
    )
    assert got == Decision(UND, None, SCRIPT_MISMATCH)


def _record(input_text, definition=ENGLISH_INSTRUCTION, output="positive"):
    return new_record(input=input_text, definition=definition, output=output, task="t")


def test_identify_fills_every_lang_field(identifier):
    fields = identifier.identify(_record(SENTENCES["fi"]))
    assert fields == {
        "lang": "fi",
        "lang_score": pytest.approx(identifier.decide(SENTENCES["fi"]).score),
        "lang_instruction": "en",
        "lang_output": UND,
        "lang_reason": "input",
    }
    assert identifier.identify(_record("Guam"))["lang_reason"] == "instruction"
    assert identifier.identify(_record(""))["lang"] == "en"
    out = identifier.identify_records([_record(SENTENCES["de"])])[0]
    assert out["lang"] == "de" and set(out) == set(new_record())


def test_short_foreign_input_does_not_borrow_the_instruction_language(identifier):
    # Japanese one-word input under an English instruction: another script.
    fields = identifier.identify(_record("面白い"))
    assert fields["lang"] == UND and fields["lang_reason"] == SCRIPT_MISMATCH
    # Short Spanish question, same script, but the model is sure it is not English.
    fields = identifier.identify(_record("¿No sería prudente?"))
    assert fields["lang"] == UND and fields["lang_reason"] == FALLBACK_CONFLICT
    # A chat record: empty instruction, the reply decides.
    record = new_record(input="hi", definition=None, output=SENTENCES["en"])
    assert identifier.identify(record)["lang_reason"] == "output"


def test_sni_outputs_given_as_lists_are_read(identifier):
    record = dict(_record(SENTENCES["es"]), output=["", SENTENCES["fr"]])
    assert identifier.identify(record)["lang_output"] == "fr"


# --- the model -------------------------------------------------------------------------------


def test_default_model_is_bundled_and_loaded_once():
    path = default_model_path()
    assert path.endswith("lid.176.ftz") and Path(path).is_file()
    assert load_model(None) is load_model(None)


def test_model_from_a_local_path_and_errors(tmp_path):
    copy = tmp_path / "lid.176.ftz"
    shutil.copy(default_model_path(), copy)
    model = load_model(str(copy))
    assert model is load_model(f"file://{copy}") or model is load_model(str(copy))
    assert LanguageIdentifier(model).decide(SENTENCES["fi"]).lang == "fi"
    with pytest.raises(FileNotFoundError):
        load_model(str(tmp_path / "missing.bin"))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a fastText model"):
        load_model(str(junk))


class _RemoteFS(LocalFileSystem):
    """A stand-in remote filesystem (``lidtest://``) over local files, counting opens."""

    opened: ClassVar[list[str]] = []

    @classmethod
    def scheme(cls):
        return "lidtest"

    @staticmethod
    def _local(path: str) -> str:
        return path[len("lidtest://") :]

    def match(self, patterns, limits=None):
        return super().match([self._local(p) for p in patterns], limits)

    def open(
        self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO
    ):
        _RemoteFS.opened.append(path)
        return super().open(self._local(path), mime_type, compression_type)


def test_remote_model_is_copied_once_through_beam_filesystems(tmp_path, monkeypatch):
    monkeypatch.setattr(langid.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    source = tmp_path / "bucket" / "lid.176.ftz"
    source.parent.mkdir()
    shutil.copy(default_model_path(), source)
    url = f"lidtest://{source}"
    _RemoteFS.opened.clear()
    first = langid.local_model_file(url)
    second = langid.local_model_file(url)
    assert first == second and Path(first).read_bytes() == source.read_bytes()
    assert _RemoteFS.opened == [url]  # the second call reused the local copy
    langid.clear_model_cache()
    model = load_model(url)
    assert LanguageIdentifier(model).decide(SENTENCES["ru"]).lang == "ru"
    langid.clear_model_cache()


# --- real data -------------------------------------------------------------------------------


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data not present")
def test_finnish_sni_translations_declare_english_but_are_finnish(identifier):
    path = DATA / "sni/finnish_translations/fin-translated-task1289_trec_classification.json"
    task = json.loads(path.read_text(encoding="utf-8"))
    assert task["Input_language"] == ["English"]
    langs = [
        identifier.identify(
            new_record(
                input=inst["input"], definition=task["Definition"][0], output=inst["output"][0]
            )
        )["lang"]
        for inst in task["Instances"][:100]
    ]
    assert langs.count("fi") >= 95
    declared = declared_codes(task["Input_language"])
    assert sum(1 for lang in langs if languages_agree(declared, lang)) <= 2
