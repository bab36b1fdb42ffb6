"""Prompt/completion JSONL: P3/T0 renderings in GPT-3 fine-tuning layout, OpenAI legacy files.

``{"prompt": ..., "completion": ...}`` per line. A trailing ``<|endoftext|>`` (GPT-3's stop
token, on every P3 completion) is stripped; nothing else is touched.

Task and template live in the file name. Rule: a P3 file is named
``<dataset>[_<subset>]_<template name>`` (``ag_news_classify_with_choices.jsonl``,
``glue_mrpc_equivalent.jsonl``); the task is the *longest* known PromptSource dataset name
(``KNOWN_P3_DATASETS``, P3's ``dataset_subset`` spelling) that prefixes the stem followed by
``_``, the template id is the rest (``ag_news`` / ``classify_with_choices``), ``source`` = p3.
With no known prefix, a completion ending in ``<|endoftext|>`` still marks P3 (task = the first
``_``-separated token, template = the rest); otherwise it is an OpenAI legacy fine-tuning file:
``source`` = openai_legacy, ``task`` = the whole stem, no template. ``label``/``label_space`` stay empty: the rendered file
does not carry the template's answer choices (``promptsource.load_template_sets`` has them,
keyed by the same ``dataset_subset`` task name and template name).
"""

from __future__ import annotations

from collections.abc import Iterator

from transforms.formats.common import FileContext, leftovers, metadata_json, require_text
from transforms.formats.errors import RecordError
from transforms.schema import new_record

FORMAT = "prompt_completion"
DESCRIPTION = (
    "prompt/completion JSONL (P3/T0 GPT-3 fine-tuning renderings, OpenAI legacy fine-tuning)"
)
END_OF_TEXT = "<|endoftext|>"

# PromptSource datasets as P3 names them (dataset and subset joined by "_"): T0's training and
# evaluation mixtures, T0+/T0++ additions, and the datasets with templates in shared/data.
KNOWN_P3_DATASETS = frozenset(
    [
        "adversarial_qa_dbert",
        "adversarial_qa_dbidaf",
        "adversarial_qa_droberta",
        "ag_news",
        "ai2_arc_ARC_Challenge",
        "ai2_arc_ARC_Easy",
        "amazon_polarity",
        "amazon_reviews_multi_en",
        "anli",
        "app_reviews",
        "cnn_dailymail_3.0.0",
        "common_gen",
        "commonsense_qa",
        "cos_e_v1.11",
        "cosmos_qa",
        "dbpedia_14",
        "dream",
        "duorc_ParaphraseRC",
        "duorc_SelfRC",
        "emotion",
        "financial_phrasebank_sentences_allagree",
        "gigaword",
        "glue_cola",
        "glue_mnli",
        "glue_mnli_matched",
        "glue_mnli_mismatched",
        "glue_mrpc",
        "glue_qnli",
        "glue_qqp",
        "glue_rte",
        "glue_sst2",
        "glue_stsb",
        "glue_wnli",
        "hellaswag",
        "hotpot_qa_distractor",
        "hotpot_qa_fullwiki",
        "imdb",
        "kilt_tasks_hotpotqa",
        "lambada",
        "multi_news",
        "multi_nli",
        "openbookqa_main",
        "paws_labeled_final",
        "piqa",
        "qasc",
        "quail",
        "quarel",
        "quartz",
        "quoref",
        "race_all",
        "race_high",
        "race_middle",
        "ropes",
        "rotten_tomatoes",
        "samsum",
        "sciq",
        "snli",
        "social_i_qa",
        "squad",
        "squad_adversarial_AddSent",
        "squad_v2",
        "sst_default",
        "story_cloze_2016",
        "super_glue_axb",
        "super_glue_axg",
        "super_glue_boolq",
        "super_glue_cb",
        "super_glue_copa",
        "super_glue_multirc",
        "super_glue_record",
        "super_glue_rte",
        "super_glue_wic",
        "super_glue_wsc.fixed",
        "trec",
        "trivia_qa_unfiltered",
        "tweet_eval_emoji",
        "tweet_eval_emotion",
        "tweet_eval_hate",
        "tweet_eval_irony",
        "tweet_eval_offensive",
        "tweet_eval_sentiment",
        "tweet_eval_stance_abortion",
        "tweet_eval_stance_atheism",
        "tweet_eval_stance_climate",
        "tweet_eval_stance_feminist",
        "tweet_eval_stance_hillary",
        "web_questions",
        "wiki_bio",
        "wiki_hop_original",
        "wiki_qa",
        "winogrande_winogrande_debiased",
        "winogrande_winogrande_xl",
        "wiqa",
        "xnli_en",
        "xsum",
        "yelp_review_full",
    ]
)


def split_p3_name(stem: str) -> tuple[str, str | None] | None:
    """``(task, template)`` for a P3 file stem, or None when no known dataset prefixes it."""
    if stem in KNOWN_P3_DATASETS:
        return stem, None
    best = None
    for cut in range(len(stem)):
        if stem[cut] == "_" and stem[:cut] in KNOWN_P3_DATASETS:
            best = cut
    if best is None:
        return None
    return stem[:best], stem[best + 1 :]


def strip_end_of_text(text: str) -> str:
    """The completion without GPT-3's trailing stop token."""
    return text.removesuffix(END_OF_TEXT)


def expand(doc: object, ctx: FileContext) -> Iterator[dict]:
    """One record per prompt/completion pair."""
    if not isinstance(doc, dict):
        raise RecordError("wrong_type", "a prompt/completion record must be a JSON object")
    prompt = require_text(doc, "prompt")
    raw_completion = require_text(doc, "completion")
    completion = strip_end_of_text(raw_completion)
    stem = ctx.stem
    p3 = split_p3_name(stem)
    if p3 is None and completion != raw_completion:
        task, _, template = stem.partition("_")
        p3 = task, template or None
    extra = leftovers(doc, ("prompt", "completion"))
    if p3 is not None:
        task, template = p3
        yield new_record(
            source="p3",
            task=task,
            template_id=template,
            input=prompt,
            output=completion,
            metadata=metadata_json(extra),
        )
    else:
        yield new_record(
            source="openai_legacy",
            task=stem,
            input=prompt,
            output=completion,
            metadata=metadata_json(extra),
        )
