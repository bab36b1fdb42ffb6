"""The project's own demo-data generator: a raw corpus in every format the readers support.

Everything is written by this module from small hand-written vocabularies and sentence
templates (nine languages); nothing is copied from ``shared/data``. Each file follows the real
upstream layout of its format (key names, nesting, indentation, escaping), so the readers meet
the same quirks as on real data: SNI task files of two schema generations, NIv1, Flan 2022
JSONL (plain and gzip), Flan CoT TSV, P3 per-template JSONL, PromptSource YAML, Self-Instruct
seed tasks (one of them a ``.json`` that holds JSON Lines), Alpaca JSON/JSONL, Dolly, LIMA in
two layouts, OpenAI ``messages`` (plain and zstd), ShareGPT and a generic CSV.

What it plants on purpose, so every later stage has work:
- classification tasks (sentiment, 4-label topic, 3-label NLI) rendered with several templates
  drawn independently of the label, and ONE leaky task (P3 ``demopolarity``) whose template
  spells the label ("Say POSITIVE:" is only used for positive reviews);
- exact and near duplicates across files (Alpaca records repeated in Dolly and in the Alpaca
  JSONL, some with a one-word edit);
- malformed input, counted exactly: a truncated JSON array file (1 dead letter), a JSONL line
  in Latin-1 (1), a JSONL line that is not JSON (1), a record missing its required field (1),
  a field of the wrong type (1), an empty file (1).

``generate_corpus`` returns, per format, the files (relative to ``out_dir``), the number of
valid records a reader must produce and the number of dead letters it must emit, plus the same
per file. A record is one SNI/NIv1 instance, Flan line, TSV row, P3 line, Self-Instruct seed
*instance*, Alpaca/Dolly/LIMA item, chat conversation or CSV row; PromptSource YAML yields
template sets, not records. Files are streamed (memory stays flat at any ``scale``) and the
bytes depend only on ``seed`` and ``scale``.

    python -m pipelines.generate /tmp/demo-raw --scale 1 --seed 0
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import itertools
import json
import os
import random
import uuid
from collections.abc import Callable, Iterable

import yaml
import zstandard

from pipelines.demo_vocabulary import (  # noqa: F401 - re-exported for tests
    LANGS,
    LANG_CODES,
    SENTIMENT,
    TOPICS,
    NLI_LABELS,
    _SURNAMES,
    _COUNTRIES,
    _CITIES,
    _TEAMS,
    _COMPANIES,
    _UNIVERSITIES,
    _WEEKDAYS,
    _WEEKDAYS_ES,
    _MONTHS,
    _ISSUES,
    _JOBS,
    _RIVERS,
    _PRIZES,
    _SUBJECTS,
    _FESTIVALS,
    _TOWNS,
    _ES_CITIES,
)


def _fullname(rng: random.Random) -> str:
    return f"{rng.choice(LANGS['en']['names'])} {rng.choice(_SURNAMES)}"


def _number(value: float, lang: str) -> str:
    """A number as a writer of ``lang`` prints it (decimal comma where that is the custom)."""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return text.replace(".", LANGS[lang]["decimal"])


class _Slots(dict):
    """Slot values drawn lazily, the first time a template asks for them (``format_map``):
    a sentence uses three to five of the thirty-odd slots, so drawing all of them would
    triple the generator's run time. Deterministic: the draw order is the template's."""

    def __init__(self, rng: random.Random, makers: dict):
        super().__init__()
        self._rng = rng
        self._makers = makers

    def __missing__(self, key: str):
        value = self[key] = self._makers[key](self._rng, self)
        return value


def _other(pool: list, taken: str, rng: random.Random) -> str:
    """A value of ``pool`` different from ``taken``."""
    value = rng.choice(pool)
    while value == taken:
        value = rng.choice(pool)
    return value


def _lang_makers(lang: str) -> dict:
    spec = LANGS[lang]
    return {
        "name": lambda r, s: r.choice(spec["names"]),
        "name2": lambda r, s: _other(spec["names"], s["name"], r),
        "place": lambda r, s: r.choice(spec["places"]),
        "n": lambda r, s: r.randint(*spec["n_range"]),
        "a": lambda r, s: r.randint(12, 995),
        "b": lambda r, s: r.randint(2, 11),
        "diff": lambda r, s: s["a"] - s["b"],
        # Temperatures and distances with one decimal, printed the way ``lang`` prints them.
        "celsius": lambda r, s: r.randint(-200, 450) / 10,
        "c": lambda r, s: _number(s["celsius"], lang),
        "f": lambda r, s: _number(s["celsius"] * 9 / 5 + 32, lang),
        "kilometres": lambda r, s: r.randint(10, 400) / 10,
        "km": lambda r, s: _number(s["kilometres"], lang),
        "minutes": lambda r, s: round(s["kilometres"] * 12),
    }


_LANG_MAKERS = {code: _lang_makers(code) for code in LANGS}


def _slots(lang: str, rng: random.Random) -> _Slots:
    """Slot values for ``lang``; computed slots (diff, f, minutes) are always right."""
    return _Slots(rng, _LANG_MAKERS[lang])


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


_NO_SPACE = ("zh", "ja")


def _join(lang: str, sentences: Iterable[str]) -> str:
    """Sentences joined as the language writes them (no spaces in Chinese and Japanese)."""
    return ("" if lang in _NO_SPACE else " ").join(sentences)


# ---------------------------------------------------------------------------------------------
# Content kernels: plain functions of (rng, ...) -> text; no I/O.
# ---------------------------------------------------------------------------------------------


def review(lang: str, label: str, rng: random.Random) -> str:
    """A short product review in ``lang`` whose sentiment is ``label``.

    A slotted context sentence plus one or two sentiment sentences (and sometimes a second
    context sentence), so two reviews rarely share more than one sentence.
    """
    spec = LANGS[lang]
    slots = _slots(lang, rng)
    first, second = rng.sample(spec["ctx"], 2)
    opinion = rng.sample(spec["pos" if label == "positive" else "neg"], rng.choice((1, 2, 2, 3)))
    parts = [_capitalize(first.format_map(slots)), *opinion]
    if rng.random() < 0.5:
        parts.append(_capitalize(second.format_map(_slots(lang, rng))))
    return _join(lang, parts)


def chat_pair(lang: str, rng: random.Random) -> tuple[str, str, str]:
    """One (user prompt, assistant answer, kind) exchange in ``lang``."""
    spec = LANGS[lang]
    # Reviews and sums have far more distinct values than temperatures and distances, so they
    # are drawn more often: accidental exact duplicates stay rare at scale 100.
    (kind,) = rng.choices(("money", "temp", "walk", "sentiment"), weights=(3, 1.5, 1.5, 4))
    if kind == "sentiment":
        label = rng.choice(SENTIMENT)
        question, answer = spec["sentiment"]
        text = review(lang, label, rng)
        answer = answer.format(label=spec["labels"][label], reason=spec["reasons"][label])
        return f"{question}\n\n{text}", answer, kind
    question, answer = spec[kind]
    slots = _slots(lang, rng)
    return question.format_map(slots), answer.format_map(slots), kind


_TOPIC_LEADS = {
    "World": [
        "Leaders of {country} and {country2} met in {city} on {weekday} to discuss {issue}.",
        "Thousands marched through {city} on {weekday} demanding action on {issue}.",
        (
            "The government of {country} called early elections for {month} after a row over "
            "{issue}."
        ),
        "Aid agencies said {n},000 people had been displaced by floods in northern {country}.",
        "The foreign minister of {country} arrived in {city} for {m} days of talks on {issue}.",
    ],
    "Sports": [
        "{team} beat {team2} {a}-{b} on {weekday} to go {m} points clear at the top.",
        "{surname} scored twice as {team} came from behind to win the cup semi-final.",
        "{team} have signed midfielder {fullname} on a {m}-year deal.",
        "Sprinter {fullname} won the 200 metres in {sec} seconds at the {city} meeting.",
        "{team} sacked their coach after {n} matches without a win.",
    ],
    "Business": [
        "{company} shares rose {pct} percent after quarterly profit beat forecasts.",
        "{company} said it would cut {n}00 jobs as demand for its products slowed.",
        "{company} agreed to buy {company2} for {bn} billion dollars in cash and stock.",
        "Inflation in {country} eased to {pct} percent in {month}, the statistics office said.",
        "{company} will open {n} new stores in {country} by the end of {month}.",
    ],
    "Science and Technology": [
        "Researchers at {univ} have built a battery that charges fully in {n} minutes.",
        "{company} unveiled a phone with a {m}-day battery life at its {month} event.",
        "A study of {n},000 volunteers links regular walking to better sleep.",
        "Astronomers in {country} spotted a comet that returns every {yrs} years.",
        "Engineers at {univ} tested a drone that flew {n} kilometres on solar power alone.",
    ],
}
_TOPIC_FOLLOWS = {
    "World": [
        "Officials said further talks were planned for next month.",
        "Observers described the mood as tense but calm.",
        "The foreign ministry declined to comment on the reports.",
        "Regional partners called for restraint on all sides.",
    ],
    "Sports": [
        "The coach praised the team's resilience after the match.",
        "Tickets for the final sold out within hours.",
        "The club will face {team3} in the next round.",
        "Fans celebrated in the streets until late at night.",
    ],
    "Business": [
        "Analysts expect the trend to continue into next year.",
        "The company will report full-year results in {month}.",
        "Investors reacted cautiously to the news.",
        "The central bank is expected to hold interest rates steady.",
    ],
    "Science and Technology": [
        "The findings were published in a peer-reviewed journal.",
        "The team plans larger trials next year.",
        "Independent experts called the results promising but preliminary.",
        "The device is expected to go on sale in {month}.",
    ],
}


_EN_MAKERS = {
    "country": lambda r, s: r.choice(_COUNTRIES),
    "country2": lambda r, s: _other(_COUNTRIES, s["country"], r),
    "city": lambda r, s: r.choice(_CITIES),
    "weekday": lambda r, s: r.choice(_WEEKDAYS),
    "month": lambda r, s: r.choice(_MONTHS),
    "issue": lambda r, s: r.choice(_ISSUES),
    "n": lambda r, s: r.randint(2, 40),
    "m": lambda r, s: r.randint(2, 9),
    "a": lambda r, s: r.randint(0, 5),
    "b": lambda r, s: r.randint(0, 5),
    "team": lambda r, s: r.choice(_TEAMS),
    "team2": lambda r, s: _other(_TEAMS, s["team"], r),
    "team3": lambda r, s: _other([t for t in _TEAMS if t != s["team2"]], s["team"], r),
    "surname": lambda r, s: r.choice(_SURNAMES),
    "fullname": lambda r, s: _fullname(r),
    "sec": lambda r, s: f"{r.uniform(19.6, 21.4):.2f}",
    "company": lambda r, s: r.choice(_COMPANIES),
    "company2": lambda r, s: _other(_COMPANIES, s["company"], r),
    "pct": lambda r, s: f"{r.uniform(0.5, 9.5):.1f}",
    "bn": lambda r, s: r.randint(2, 60),
    "univ": lambda r, s: r.choice(_UNIVERSITIES),
    "yrs": lambda r, s: r.randint(6, 200),
    "name": lambda r, s: r.choice(LANGS["en"]["names"]),
    "name2": lambda r, s: _other(LANGS["en"]["names"], s["name"], r),
    "job": lambda r, s: r.choice(_JOBS),
    "year": lambda r, s: r.randint(1985, 2022),
    "river": lambda r, s: r.choice(_RIVERS),
    "prize": lambda r, s: r.choice(_PRIZES),
    "subject": lambda r, s: r.choice(_SUBJECTS),
    "festival": lambda r, s: r.choice(_FESTIVALS),
    "town": lambda r, s: r.choice(_TOWNS),
    "km": lambda r, s: r.randint(2, 12),
    "h": lambda r, s: r.randint(1, 12),
    "age": lambda r, s: r.randint(9, 17),
    "k": lambda r, s: r.randint(3, 30),
}


def _en_slots(rng: random.Random) -> _Slots:
    """Slot values for the English news, NLI, summary and question templates."""
    return _Slots(rng, _EN_MAKERS)


def news(topic: str, rng: random.Random) -> str:
    """A two-sentence English news snippet about ``topic`` (one of ``TOPICS``)."""
    slots = _en_slots(rng)
    lead = rng.choice(_TOPIC_LEADS[topic]).format_map(slots)
    follow = rng.choice(_TOPIC_FOLLOWS[topic]).format_map(slots)
    return f"{lead} {follow}"


# (premise, entailed, neutral, contradicted) hypotheses; English.
_NLI = [
    (
        "{name} is playing the guitar in a park in {city} on {weekday} afternoon.",
        "{name} is playing an instrument.",
        "{name} is playing for money.",
        "{name} is asleep at home.",
    ),
    (
        "{name} and {name2} are cooking dinner for {n} guests in {town}.",
        "People are preparing food.",
        "The guests are family members.",
        "Nobody is cooking.",
    ),
    (
        "A group of {n} cyclists is riding along the coast near {city} in {month}.",
        "Several people are riding bikes.",
        "The cyclists are training for a race.",
        "The cyclists are sitting in a café.",
    ),
    (
        "{name} is reading a newspaper on the {h} o'clock train to {city}.",
        "{name} is travelling.",
        "{name} is going to work.",
        "{name} is driving a car.",
    ),
    (
        "The museum in {city} closed {m} hours early on {weekday} because of a power cut.",
        "The museum was not open all day on {weekday}.",
        "The power cut lasted several hours.",
        "The museum stayed open late on {weekday}.",
    ),
    (
        "{name} painted the kitchen walls of the flat in {town} bright yellow in {month}.",
        "The kitchen has been painted.",
        "{name} chose the colour alone.",
        "The kitchen walls have never been painted.",
    ),
    (
        "{n} children are building a sandcastle on the beach near {town} on {weekday}.",
        "Kids are playing on the sand.",
        "The children are on holiday.",
        "The children are inside a classroom.",
    ),
    (
        "{name} missed the {h} o'clock bus and walked {km} kilometres to the office in {town}.",
        "{name} went to the office on foot.",
        "{name} arrived late to a meeting.",
        "{name} took the bus to the office.",
    ),
    (
        "A woman in a red coat is feeding {n} ducks by a pond in {city}.",
        "Someone is feeding birds.",
        "The woman comes to the pond every day.",
        "The woman is swimming in the pond.",
    ),
    (
        "{name} won {n} games of chess in a row at the club on {weekday}.",
        "{name} played chess on {weekday}.",
        "{name} is the best player at the club.",
        "{name} lost every game on {weekday}.",
    ),
]


def nli(label: str, rng: random.Random) -> tuple[str, str]:
    """(premise, hypothesis) whose relation is ``label`` (one of ``NLI_LABELS``)."""
    slots = _en_slots(rng)
    premise, *hypotheses = rng.choice(_NLI)
    hypothesis = hypotheses[NLI_LABELS.index(label)]
    return premise.format_map(slots), hypothesis.format_map(slots)


# (passage sentences, summary) schemata for summarisation; English.
_SUMMARY = [
    (
        [
            "The town of {town} held its annual {festival} on {weekday}.",
            "Organisers said about {n},000 visitors attended, more than in any previous year.",
            "Volunteers ran {k} stalls and the local school choir opened the event.",
            "Shop owners reported busy trading throughout the weekend.",
        ],
        "{town}'s annual {festival} drew a record {n},000 visitors on {weekday}.",
    ),
    (
        [
            "{team} and {team2} met on {weekday} in front of a full stadium.",
            "The visitors took an early lead, but {surname} equalised before half-time.",
            "{team} scored the winner in the final minutes to win {a}-{b}.",
            "The result lifts {team} to within {m} points of the top.",
        ],
        "{team} beat {team2} with a late winner on {weekday}.",
    ),
    (
        [
            "{company} reported its results for the quarter on {weekday}.",
            "Sales rose {pct} percent, helped by strong demand in {country}.",
            "The chief executive said the company would hire {n}00 more staff.",
            "Shares closed higher after the announcement.",
        ],
        "{company}'s sales rose {pct} percent and it plans to hire {n}00 more staff.",
    ),
    (
        [
            "A storm brought heavy rain and strong winds to {town} overnight.",
            "Firefighters answered {k} calls about fallen trees and flooded cellars.",
            "The main road to {city} was closed for {m} hours on {weekday} morning.",
            "No injuries were reported, the council said.",
        ],
        "A storm closed the road to {city} for {m} hours but caused no injuries.",
    ),
    (
        [
            "The library in {town} reopened on {weekday} after a {m}-month renovation.",
            "The building now has a children's floor and {k} new study rooms.",
            "The work cost {bn} million dollars, paid for mainly by the council.",
            "About {n}00 people visited on the first day.",
        ],
        "{town}'s library reopened on {weekday} after a {m}-month renovation.",
    ),
]


def summary(rng: random.Random) -> tuple[str, str]:
    """(passage, one-sentence summary) in English."""
    slots = _en_slots(rng)
    if slots["a"] <= slots["b"]:
        slots["a"] = slots["b"] + 1
    sentences, short = rng.choice(_SUMMARY)
    body = " ".join(s.format_map(slots) for s in sentences)
    return body, short.format_map(slots)


# (fact, question, answer) schemata for question generation and closed QA; English.
_FACTS = [
    (
        "{fullname} moved to {city} in {year} to work as a {job}.",
        "When did {fullname} move to {city}?",
        "In {year}.",
    ),
    (
        "The bridge over the River {river} was finished in {year} after {m} years of work.",
        "How long did it take to build the bridge over the River {river}?",
        "{m} years.",
    ),
    (
        "{fullname} won the {prize} in {year} for a novel about {subject}.",
        "Which prize did {fullname} win in {year}?",
        "The {prize}.",
    ),
    (
        "The library in {town} holds more than {n},000 books in {m} languages.",
        "How many languages are the books in the {town} library written in?",
        "{m} languages.",
    ),
    (
        "{company} opened its first shop in {city} in {year}.",
        "Where did {company} open its first shop?",
        "In {city}.",
    ),
    (
        "{fullname} has worked as a {job} in {town} for {k} years.",
        "What is {fullname}'s job?",
        "{fullname} is a {job}.",
    ),
    (
        "The ferry from {town} to {city} takes {m} hours and leaves every {weekday}.",
        "How long does the ferry from {town} to {city} take?",
        "{m} hours.",
    ),
]


def fact_question(rng: random.Random) -> tuple[str, str, str]:
    """(fact sentence, question it answers, short answer) in English."""
    slots = _en_slots(rng)
    fact, question, answer = rng.choice(_FACTS)
    return fact.format_map(slots), question.format_map(slots), answer.format_map(slots)


# Spanish -> English sentence pairs.
_TRANSLATION = [
    ("{name} vive en {city} desde {year}.", "{name} has lived in {city} since {year}."),
    (
        "Mañana vamos a visitar a mis abuelos en {city}.",
        "Tomorrow we are going to visit my grandparents in {city}.",
    ),
    ("El tren a {city} sale a las {h} y media.", "The train to {city} leaves at half past {h}."),
    (
        "Necesito comprar {k} kilos de naranjas para el fin de semana.",
        "I need to buy {k} kilos of oranges for the weekend.",
    ),
    (
        "{name} trabaja en un hospital y estudia inglés por las noches.",
        "{name} works at a hospital and studies English in the evenings.",
    ),
    (
        "La reunión de hoy se ha aplazado hasta el {weekday_es}.",
        "Today's meeting has been postponed until {weekday}.",
    ),
    (
        "Hemos reservado una mesa para {k} personas a las nueve.",
        "We have booked a table for {k} people at nine.",
    ),
    (
        "El museo de {city} es gratis los domingos por la tarde.",
        "The museum in {city} is free on Sunday afternoons.",
    ),
    (
        "Mi hermana tiene {age} años y quiere ser médica.",
        "My sister is {age} years old and wants to be a doctor.",
    ),
    (
        "¿Sabes si la farmacia de la plaza abre el {weekday_es}?",
        "Do you know whether the pharmacy on the square opens on {weekday}?",
    ),
]


def translation(rng: random.Random) -> tuple[str, str]:
    """(Spanish source, English reference) of one or two sentences."""
    pairs = rng.sample(_TRANSLATION, rng.choice((2, 3)))
    day = rng.randrange(7)
    slots = {
        "name": rng.choice(LANGS["es"]["names"]),
        "city": rng.choice(_ES_CITIES),
        "year": rng.randint(1990, 2022),
        "h": rng.randint(1, 12),
        "k": rng.randint(2, 12),
        "weekday_es": _WEEKDAYS_ES[day],
        "weekday": _WEEKDAYS[day],
        "age": rng.randint(9, 17),
    }
    return (
        " ".join(p[0].format_map(slots) for p in pairs),
        " ".join(p[1].format_map(slots) for p in pairs),
    )


# (informal, formal) English rewrites.
_FORMAL = [
    (
        "hey {name}, can u send me the report by {weekday}? thx",
        "Hello {name}, could you please send me the report by {weekday}? Thank you.",
    ),
    (
        "cant make it to the {weekday} meeting at {h}, sorry!! can we move it",
        (
            "I am afraid I cannot attend the meeting on {weekday} at {h} o'clock. Could we "
            "reschedule it?"
        ),
    ),
    (
        "the printer on floor {m} next to {name2}s desk is broken AGAIN, someone pls fix it",
        (
            "The printer on floor {m} next to {name2}'s desk is out of order again. Could someone "
            "please arrange a repair?"
        ),
    ),
    (
        "{name2} says the invoice is wrong, its {n}0 not {k}0 euros",
        (
            "{name2} has pointed out that the invoice is incorrect: the amount should be {n}0 euros, "
            "not {k}0 euros."
        ),
    ),
    (
        "gonna be like {k} mins late, traffic on the way to {town} is crazy",
        "I will be approximately {k} minutes late because of heavy traffic on the way to {town}.",
    ),
    (
        "thx for the help on {weekday} {name}, u saved me",
        "Thank you for your help on {weekday}, {name}. It was greatly appreciated.",
    ),
    (
        "can we get {m} more chairs for the training room on {weekday}? its packed",
        (
            "Could we please have {m} additional chairs for the training room on {weekday}? It is "
            "currently full."
        ),
    ),
    (
        "reminder: team lunch {weekday} at {h}, dont forget",
        "This is a reminder that the team lunch will take place on {weekday} at {h} o'clock.",
    ),
]


def formal_rewrite(rng: random.Random) -> tuple[str, str]:
    """(informal message, formal rewrite) in English."""
    slots = _en_slots(rng)
    # Two requests in one message, as people write them: far more distinct messages.
    first, second = rng.sample(_FORMAL, 2)
    return (
        f"{first[0].format_map(slots)} also {second[0].format_map(slots)}",
        f"{first[1].format_map(slots)} {second[1].format_map(slots)}",
    )


# (sentence, paraphrase) pairs; English.
_PARAPHRASE = [
    (
        "{name} could not sleep on {weekday} night because the neighbours in {town} were very loud.",
        "The neighbours in {town} were so noisy on {weekday} night that {name} was unable to sleep.",
    ),
    (
        "The {month} meeting of the {town} choir was cancelled because {k} people were ill.",
        "Because {k} people were ill, the {town} choir did not meet in {month}.",
    ),
    (
        "{fullname} has taught maths at the school in {town} for {m} years.",
        "For {m} years, {fullname} has been a maths teacher at the {town} school.",
    ),
    (
        "The shop in {town} sold out of umbrellas within {m} hours of the {weekday} storm warning.",
        (
            "Within {m} hours of the {weekday} storm warning, every umbrella in the {town} shop had "
            "been sold."
        ),
    ),
    (
        "{company} moved its head office from {city} to {town} in {year}.",
        "In {year}, {company} relocated its headquarters from {city} to {town}.",
    ),
    (
        "{name} trained for {k} weeks before running the {year} {town} half marathon.",
        "Before the {year} {town} half marathon, {name} spent {k} weeks training.",
    ),
]


def paraphrase(rng: random.Random) -> tuple[str, str]:
    """(sentence, paraphrase) in English."""
    slots = _en_slots(rng)
    sentence, para = rng.choice(_PARAPHRASE)
    return sentence.format_map(slots), para.format_map(slots)


def word_problem(rng: random.Random) -> tuple[str, str]:
    """(English arithmetic word problem, numeric answer)."""
    name = rng.choice(LANGS["en"]["names"])
    town = rng.choice(_TOWNS)
    kind = rng.randrange(5)
    if kind == 0:
        a, b = rng.randint(3, 400), rng.randint(2, 300)
        question = f"{name} has {a} stamps and buys {b} more at the market in {town}. How many "
        return question + f"stamps does {name} have now?", str(a + b)
    if kind == 1:
        speed, hours = rng.randint(40, 160), rng.randint(2, 9)
        question = f"A train from {town} travels {speed * hours} kilometres in {hours} hours. "
        return question + "What is its average speed in kilometres per hour?", str(speed)
    if kind == 2:
        pages, days = rng.randint(5, 90), rng.randint(3, 60)
        question = f"{name} reads {pages} pages a day. How many pages does {name} read in {days} "
        return question + "days?", str(pages * days)
    if kind == 3:
        total, absent = rng.randint(120, 900), rng.randint(1, 60)
        question = f"The school in {town} has {total} pupils and {absent} of them are ill today. "
        return question + "How many pupils are at school?", str(total - absent)
    boxes, per_box = rng.randint(3, 90), rng.randint(4, 48)
    question = f"A shop in {town} has {boxes} boxes with {per_box} pencils in each box. How many "
    return question + "pencils does the shop have?", str(boxes * per_box)


# (question, correct answer, rationale) for chain-of-thought multiple choice; English science.
_SCIENCE = [
    (
        "What do plants need in order to make food?",
        "sunlight",
        (
            "Plants make food through photosynthesis. Photosynthesis requires sunlight. Plants need "
            "sunlight to make food."
        ),
    ),
    (
        "What allows fish to breathe underwater?",
        "gills",
        (
            "Fish take oxygen from water. Gills absorb oxygen from water. Gills allow fish to breathe "
            "underwater."
        ),
    ),
    (
        "What kind of energy does a moving car have?",
        "kinetic energy",
        (
            "Moving objects have kinetic energy. A moving car is a moving object. A moving car has "
            "kinetic energy."
        ),
    ),
    (
        "What happens to water when it freezes?",
        "it expands",
        (
            "Water turns into ice when it freezes. Ice takes up more space than liquid water. Water "
            "expands when it freezes."
        ),
    ),
    (
        "What do magnets attract?",
        "iron",
        "Magnets attract some metals. Iron is a magnetic metal. Magnets attract iron.",
    ),
    (
        "What do seeds need to sprout?",
        "water",
        (
            "Seeds sprout when conditions are right. Germination requires water. Seeds need water to "
            "sprout."
        ),
    ),
    (
        "What helps bees make honey?",
        "nectar",
        (
            "Bees collect nectar from flowers. Honey is made from nectar. Nectar helps bees make "
            "honey."
        ),
    ),
    (
        "What can cause soil erosion?",
        "wind",
        (
            "Erosion moves soil from one place to another. Wind can carry loose soil away. Wind can "
            "cause soil erosion."
        ),
    ),
    (
        "What keeps mammals warm in cold weather?",
        "fur",
        (
            "Mammals must keep a steady body temperature. Fur traps a layer of warm air. Fur keeps "
            "mammals warm in cold weather."
        ),
    ),
    (
        "What produces sound in a guitar?",
        "vibrating strings",
        (
            "Sound is produced by vibrations. Plucked guitar strings vibrate. Vibrating strings "
            "produce sound in a guitar."
        ),
    ),
    (
        "What do the lungs supply to the blood?",
        "oxygen",
        (
            "The lungs take in air. Oxygen from the air passes into the blood. The lungs supply "
            "oxygen to the blood."
        ),
    ),
    (
        "What makes the day and night cycle on Earth?",
        "Earth's rotation",
        (
            "Earth spins on its axis once a day. The side facing the Sun has day. Earth's rotation "
            "makes the day and night cycle."
        ),
    ),
]
_DISTRACTORS = [
    "sand",
    "plastic",
    "moonlight",
    "salt",
    "glass",
    "copper wire",
    "sugar",
    "cold air",
    "feathers",
    "rubber",
    "wood",
    "gravel",
    "noise",
    "smoke",
    "potential energy",
    "it shrinks",
    "lungs",
    "fins",
    "the Moon",
    "clouds",
    "aluminum",
    "oil",
    "paper",
    "stone",
    "heat",
    "shadows",
    "ice",
    "dust",
]
_OPTION_LETTERS = "ABCDEFGH"


def cot_row(rng: random.Random) -> tuple[str, str, str]:
    """(question with 8 options, "(X)", rationale) in the Flan CoT (QASC) TSV layout.

    Half are science questions, half arithmetic ones whose rationale is computed, so the rows
    are not all near-copies of a dozen questions.
    """
    if rng.random() < 0.5:
        question, correct, rationale = rng.choice(_SCIENCE)
        options = [correct, *rng.sample([d for d in _DISTRACTORS if d != correct], 7)]
    else:
        name = rng.choice(LANGS["en"]["names"])
        count, price = rng.randint(3, 12), rng.randint(2, 15)
        total = count * price
        question = (
            f"{name} buys {count} notebooks that cost {price} dollars each. How much "
            f"does {name} spend?"
        )
        correct = f"{total} dollars"
        wrong = sorted({total + d for d in range(-20, 21) if d and total + d > 0})
        options = [correct, *(f"{w} dollars" for w in rng.sample(wrong, 7))]
        rationale = (
            f"Each notebook costs {price} dollars. {count} notebooks cost {count} "
            f"times {price} dollars. {name} spends {total} dollars."
        )
    rng.shuffle(options)
    letter = _OPTION_LETTERS[options.index(correct)]
    listed = "\\n".join(f"- ({_OPTION_LETTERS[i]}) {o}" for i, o in enumerate(options))
    return f"{question}\\nOptions:\\n{listed}", f"({letter})", rationale


# Long-form English advice, for LIMA-style and near-duplicate material.
_ADVICE = {
    "How can I sleep better at night?": [
        "Go to bed and get up at the same time every day, even at weekends.",
        "Keep the bedroom cool, dark and quiet.",
        "Avoid coffee and strong tea after lunch.",
        "Put your phone away at least half an hour before bed.",
        "A short walk in daylight helps to set your body clock.",
        "Heavy meals late in the evening make it harder to fall asleep.",
        "If you cannot sleep after twenty minutes, get up and read until you feel tired.",
        "Keep naps short and take them before mid-afternoon.",
        "Write tomorrow's to-do list before bed so your mind can let go of it.",
        "A warm shower an hour before bed can help you relax.",
        "Alcohol may make you drowsy, but it lowers the quality of your sleep.",
        "Use the bed for sleep only, not for work or long phone calls.",
    ],
    "What is a good way to start saving money?": [
        "Write down everything you spend for one month to see where the money goes.",
        "Move a fixed amount to a savings account on the day you are paid.",
        "Cancel subscriptions you have not used in the last two months.",
        "Cook at home more often and take lunch to work.",
        "Wait a day before any purchase that was not on your list.",
        "Build an emergency fund that covers three months of basic costs.",
        "Compare prices for insurance and energy once a year.",
        "Pay off expensive debts first, starting with the highest interest rate.",
        "Set a small, concrete goal, such as a holiday or a new bike.",
        "Use cash for daily shopping if cards make it too easy to overspend.",
        "Sell things you no longer use instead of letting them gather dust.",
        "Check your progress every month and celebrate small milestones.",
    ],
    "How should I prepare for my first 10 km run?": [
        "Increase your weekly distance slowly, by no more than about ten percent.",
        "Run most of your training at an easy pace where you can still talk.",
        "Add one slightly faster session each week once the easy runs feel comfortable.",
        "Rest at least one day between harder runs.",
        "Buy shoes in a running shop where you can try them on properly.",
        "Practise drinking water during longer training runs.",
        "Do not try new food or new shoes on race day.",
        "Start the race slower than you think you should.",
        "Stretch gently after running, not before.",
        "Sleep well in the week before the race.",
        "Walk the first kilometre of each run if you feel stiff.",
        "Plan how you will get to the start so you are not rushing.",
    ],
    "How can I learn a new language on my own?": [
        "Study for a short time every day rather than for hours once a week.",
        "Learn the most common words first; they cover most everyday conversation.",
        "Listen to podcasts or radio in the language while commuting.",
        "Read simple books for children or graded readers.",
        "Speak out loud, even if you are only talking to yourself.",
        "Find a conversation partner online and meet once a week.",
        "Keep a small notebook for new words and review it often.",
        "Watch films with subtitles in the language you are learning.",
        "Do not worry about mistakes; they are how you learn.",
        "Label objects around your home with their names.",
        "Write a few sentences every evening about your day.",
        "Set a clear goal, such as ordering a meal or reading a news article.",
    ],
}
_ADVICE_OPENINGS = [
    "Here are a few things that usually help.",
    "There is no single trick, but these habits make a real difference.",
    "Good question. Small, steady changes work best.",
    "Start with one or two of these and add more once they feel natural.",
]
_ADVICE_CLOSINGS = [
    "Give it a few weeks before you judge the results.",
    "Be patient with yourself; progress is rarely a straight line.",
    "If problems persist, it is worth asking a professional for advice.",
    "Most people notice a difference within a month.",
]


def advice(rng: random.Random) -> tuple[str, str]:
    """(English question, multi-paragraph answer of 4–5 tips)."""
    question = rng.choice(sorted(_ADVICE))
    tips = rng.sample(_ADVICE[question], rng.choice((4, 5)))
    lines = [rng.choice(_ADVICE_OPENINGS), ""]
    lines += [f"{i}. {tip}" for i, tip in enumerate(tips, 1)]
    lines += ["", rng.choice(_ADVICE_CLOSINGS)]
    return question, "\n".join(lines)


def near_duplicate(text: str, rng: random.Random) -> str:
    """``text`` with a one-word edit: what dedup must still recognise as the same record."""
    words = text.split(" ")
    if len(words) < 6:
        return text + " Thanks!"
    i = rng.randrange(1, len(words) - 1)
    return " ".join(words[:i] + ["really"] + words[i:])


# ---------------------------------------------------------------------------------------------
# Writers: streaming, byte-deterministic.
# ---------------------------------------------------------------------------------------------

_STREAM_SENTINEL = "\u0001instructmix-stream\u0001"


def write_json_document(
    handle, document, items: Iterable, *, key: str | None, indent: int, ensure_ascii: bool
) -> int:
    """Write ``document`` with ``items`` streamed in as ``document[key]`` (or as the top-level
    array when ``key`` is None); returns the number of items.

    The bytes equal ``json.dumps(full_document, indent=indent, ensure_ascii=ensure_ascii)``
    without ever holding the whole list, so a 6,000-instance task file costs one instance of
    memory.
    """
    iterator = iter(items)
    first = next(iterator, _STREAM_SENTINEL)
    if key is None:
        skeleton = [_STREAM_SENTINEL]
    else:
        skeleton = {k: ([_STREAM_SENTINEL] if k == key else v) for k, v in document.items()}
    if first is _STREAM_SENTINEL:  # no items: what json.dumps writes for an empty list
        empty = [] if key is None else {k: ([] if k == key else v) for k, v in skeleton.items()}
        handle.write(json.dumps(empty, indent=indent, ensure_ascii=ensure_ascii))
        return 0
    text = json.dumps(skeleton, indent=indent, ensure_ascii=ensure_ascii)
    marker = json.dumps(_STREAM_SENTINEL, ensure_ascii=ensure_ascii)
    head, tail = text.split(marker)
    pad = head[head.rindex("\n") + 1 :]
    handle.write(head)
    count = 0
    for item in itertools.chain([first], iterator):
        if count:
            handle.write(",\n" + pad)
        handle.write(
            json.dumps(item, indent=indent, ensure_ascii=ensure_ascii).replace("\n", "\n" + pad)
        )
        count += 1
    handle.write(tail)
    return count


def _jsonl(record: dict, *, ensure_ascii: bool = False) -> str:
    return json.dumps(record, ensure_ascii=ensure_ascii) + "\n"


class _Corpus:
    """Collects what each file contributes, per format, while the files are written."""

    def __init__(self, out_dir: str, seed: int, scale: int):
        self.out_dir = out_dir
        self.seed = seed
        self.scale = scale
        self.description: dict[str, dict] = {}

    def rng(self, *key) -> random.Random:
        """An RNG that depends only on the seed and ``key`` (not on the order files are made)."""
        digest = hashlib.blake2b(json.dumps([self.seed, *key]).encode(), digest_size=8).digest()
        return random.Random(int.from_bytes(digest, "big"))

    def n(self, base: int) -> int:
        return base * self.scale

    def path(self, rel: str) -> str:
        full = os.path.join(self.out_dir, *rel.split("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        return full

    def add(self, fmt: str, rel: str, records: int, malformed: int = 0, **extra) -> None:
        entry = self.description.setdefault(
            fmt, {"files": [], "records": 0, "malformed": 0, "per_file": {}}
        )
        entry["files"].append(rel)
        entry["records"] += records
        entry["malformed"] += malformed
        entry["per_file"][rel] = {"records": records, "malformed": malformed}
        for name, value in extra.items():
            if isinstance(value, int) and not isinstance(value, bool):
                entry[name] = entry.get(name, 0) + value
            elif isinstance(value, list):
                entry.setdefault(name, []).extend(value)
            else:
                entry[name] = value

    def text_file(self, rel: str):
        return open(self.path(rel), "w", encoding="utf-8", newline="\n")


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


# ---------------------------------------------------------------------------------------------
# Super-NaturalInstructions (current schema and one old-schema draft).
# ---------------------------------------------------------------------------------------------

_DEMO_URL = "https://github.com/instructmix/demo"


def _sni_header(
    *,
    source: str,
    categories: list[str],
    definition: str,
    languages: tuple[str, str, str],
    domains: list[str],
    positive: list[dict],
    negative: list[dict],
) -> dict:
    inp, out, ins = languages
    return {
        "Contributors": ["instructmix demo generator"],
        "Source": [source],
        "URL": [_DEMO_URL],
        "Categories": categories,
        "Reasoning": [],
        "Definition": [definition],
        "Input_language": [inp],
        "Output_language": [out],
        "Instruction_language": [ins],
        "Domains": domains,
        "Positive Examples": positive,
        "Negative Examples": negative,
        "Instances": None,
        "Instance License": ["Apache 2.0"],
    }


def _write_sni(corpus: _Corpus, rel: str, header: dict, task_prefix: str, count: int, make):
    """Stream an SNI task file; ``make(rng)`` returns (input, [outputs])."""
    rng = corpus.rng(rel)

    def instances():
        for _ in range(count):
            text, outputs = make(rng)
            yield {"id": f"{task_prefix}-{_uuid(rng).hex}", "input": text, "output": outputs}

    with corpus.text_file(rel) as handle:
        written = write_json_document(
            handle, header, instances(), key="Instances", indent=4, ensure_ascii=False
        )
    corpus.add("sni", rel, written)


def _sni_sentiment(corpus: _Corpus, number: int, lang: str) -> None:
    spec = LANGS[lang]
    ex = corpus.rng("sni-examples", lang)
    language = spec["language"]
    header = _sni_header(
        source="demo_reviews",
        categories=["Sentiment Analysis"],
        definition=(
            f"In this task, you are given a product review written in {language}. Classify "
            'the review as "positive" if the writer is satisfied with the purchase, or as '
            '"negative" if the writer is not.'
        ),
        languages=(language, "English", "English"),
        domains=["Reviews"],
        positive=[
            {
                "input": review(lang, "positive", ex),
                "output": "positive",
                "explanation": "The writer praises the product, so the review is positive.",
            },
            {
                "input": review(lang, "negative", ex),
                "output": "negative",
                "explanation": "The writer complains about the product, so the review is negative.",
            },
        ],
        negative=[
            {
                "input": review(lang, "positive", ex),
                "output": "negative",
                "explanation": "The writer is satisfied with the purchase, so the answer should "
                'be "positive".',
            },
            {
                "input": review(lang, "negative", ex),
                "output": "bad",
                "explanation": 'Only "positive" and "negative" are valid answers.',
            },
        ],
    )

    def make(rng):
        label = rng.choice(SENTIMENT)
        return review(lang, label, rng), [label]

    prefix = f"task{number}"
    rel = f"sni/tasks/{prefix}_demo_reviews_sentiment_classification_{lang}.json"
    _write_sni(corpus, rel, header, prefix, corpus.n(40), make)


def _listed(make):
    """(input, output) maker -> (input, [output]) maker: SNI outputs are lists."""

    def listed(rng):
        text, output = make(rng)
        return text, [output]

    return listed


def _sni_english(corpus: _Corpus) -> None:
    ex = corpus.rng("sni-examples", "english")
    topic_header = _sni_header(
        source="demo_news",
        categories=["Text Categorization"],
        definition=(
            "You are given a short news article. Classify it into one of four topics: "
            '"World", "Sports", "Business" or "Science and Technology".'
        ),
        languages=("English", "English", "English"),
        domains=["News"],
        positive=[
            {
                "input": news(t, ex),
                "output": t,
                "explanation": f'The article is about {t.lower()}, so the topic is "{t}".',
            }
            for t in ("Sports", "Business")
        ],
        negative=[
            {
                "input": news("World", ex),
                "output": "Politics",
                "explanation": 'The answer must be one of the four topics; here it is "World".',
            }
        ],
    )

    def topic(rng):
        label = rng.choice(TOPICS)
        return news(label, rng), [label]

    _write_sni(
        corpus,
        "sni/tasks/task9110_demo_news_topic_classification.json",
        topic_header,
        "task9110",
        corpus.n(250),
        topic,
    )

    premise, hyp = nli("entailment", ex)
    premise2, hyp2 = nli("contradiction", ex)
    premise3, hyp3 = nli("neutral", ex)
    nli_header = _sni_header(
        source="demo_nli",
        categories=["Textual Entailment"],
        definition=(
            'In this task, you are given a premise and a hypothesis. Answer "entailment" if '
            'the hypothesis must be true given the premise, "contradiction" if it cannot be '
            'true, and "neutral" otherwise.'
        ),
        languages=("English", "English", "English"),
        domains=["Commonsense"],
        positive=[
            {
                "input": f"Premise: {premise}\nHypothesis: {hyp}",
                "output": "entailment",
                "explanation": "The hypothesis follows directly from the premise.",
            },
            {
                "input": f"Premise: {premise2}\nHypothesis: {hyp2}",
                "output": "contradiction",
                "explanation": "The hypothesis cannot be true if the premise is true.",
            },
        ],
        negative=[
            {
                "input": f"Premise: {premise3}\nHypothesis: {hyp3}",
                "output": "entailment",
                "explanation": 'The premise does not say this, so the answer is "neutral".',
            }
        ],
    )

    def entail(rng):
        label = rng.choice(NLI_LABELS)
        p, h = nli(label, rng)
        return f"Premise: {p}\nHypothesis: {h}", [label]

    _write_sni(
        corpus,
        "sni/tasks/task9111_demo_nli_classification.json",
        nli_header,
        "task9111",
        corpus.n(250),
        entail,
    )

    body, short = summary(ex)
    _write_sni(
        corpus,
        "sni/tasks/task9112_demo_news_summarization.json",
        _sni_header(
            source="demo_news",
            categories=["Summarization"],
            definition="Summarize the given news paragraph in one sentence.",
            languages=("English", "English", "English"),
            domains=["News"],
            positive=[
                {
                    "input": body,
                    "output": short,
                    "explanation": "The summary keeps the main event and its key number.",
                }
            ],
            negative=[
                {
                    "input": body,
                    "output": body.split(". ")[-1],
                    "explanation": "This is a minor detail, not a summary of the paragraph.",
                }
            ],
        ),
        "task9112",
        corpus.n(120),
        _listed(summary),
    )

    fact, question, _ = fact_question(ex)
    _write_sni(
        corpus,
        "sni/tasks/task9113_demo_biography_question_generation.json",
        _sni_header(
            source="demo_facts",
            categories=["Question Generation"],
            definition="Write a question that can be answered using the given sentence.",
            languages=("English", "English", "English"),
            domains=["Wikipedia"],
            positive=[
                {
                    "input": fact,
                    "output": question,
                    "explanation": "The sentence answers this question directly.",
                }
            ],
            negative=[
                {
                    "input": fact,
                    "output": "What is the weather like today?",
                    "explanation": "The sentence says nothing about the weather.",
                }
            ],
        ),
        "task9113",
        corpus.n(120),
        _listed(lambda rng: fact_question(rng)[:2]),
    )

    source, target = translation(ex)
    _write_sni(
        corpus,
        "sni/tasks/task9114_demo_es_en_translation.json",
        _sni_header(
            source="demo_parallel",
            categories=["Translation"],
            definition="Translate the given Spanish sentence into English.",
            languages=("Spanish", "English", "English"),
            domains=["Miscellaneous"],
            positive=[
                {
                    "input": source,
                    "output": target,
                    "explanation": "The English sentence keeps the meaning of the Spanish.",
                }
            ],
            negative=[
                {
                    "input": source,
                    "output": source,
                    "explanation": "The output must be in English, not Spanish.",
                }
            ],
        ),
        "task9114",
        corpus.n(150),
        _listed(translation),
    )

    informal, formal = formal_rewrite(ex)
    _write_sni(
        corpus,
        "sni/tasks/task9115_demo_formal_rewriting.json",
        _sni_header(
            source="demo_messages",
            categories=["Text Style Transfer"],
            definition="Rewrite the informal workplace message in a polite, formal style "
            "without changing its meaning.",
            languages=("English", "English", "English"),
            domains=["Dialogue"],
            positive=[
                {
                    "input": informal,
                    "output": formal,
                    "explanation": "Same request, formal wording, correct spelling.",
                }
            ],
            negative=[
                {
                    "input": informal,
                    "output": informal.upper(),
                    "explanation": "Capital letters do not make a message formal.",
                }
            ],
        ),
        "task9115",
        corpus.n(120),
        _listed(formal_rewrite),
    )


def _sni_old_schema(corpus: _Corpus) -> None:
    """A 2021 contributor draft: Definition is a string; no languages, ids or licence."""
    rel = "sni/contributor_drafts/task9120_demo_arithmetic_word_problems.json"
    ex = corpus.rng("sni-old-examples")
    q1, a1 = word_problem(ex)
    q2, a2 = word_problem(ex)
    header = {
        "Contributors": ["instructmix demo generator"],
        "Source": ["demo_arithmetic"],
        "Categories": ["Arithmetic"],
        "Definition": "In this task, you are given a short arithmetic word problem. Answer "
        "with a single number.",
        "Positive Examples": [
            {"input": q1, "output": a1, "explanation": "This is the correct result."}
        ],
        "Negative Examples": [
            {
                "input": q2,
                "output": f"The answer is {a2}.",
                "explanation": "The answer must be only the number.",
            }
        ],
        "Instances": None,
    }
    rng = corpus.rng(rel)

    def instances():
        for _ in range(corpus.n(100)):
            question, answer = word_problem(rng)
            yield {"input": question, "output": [answer]}

    with corpus.text_file(rel) as handle:
        written = write_json_document(
            handle, header, instances(), key="Instances", indent=4, ensure_ascii=False
        )
    corpus.add("sni", rel, written)


# ---------------------------------------------------------------------------------------------
# Natural Instructions v1.
# ---------------------------------------------------------------------------------------------


def _write_niv1(corpus: _Corpus, rel: str, header: dict, examples: dict, count: int, make):
    rng = corpus.rng(rel)
    document = {**header, "Instances": None, "Examples": examples}

    def instances():
        for _ in range(count):
            text, outputs = make(rng)
            yield {"input": text, "output": outputs}

    with corpus.text_file(rel) as handle:
        written = write_json_document(
            handle, document, instances(), key="Instances", indent=4, ensure_ascii=False
        )
    corpus.add("niv1", rel, written)


def _niv1(corpus: _Corpus) -> None:
    ex = corpus.rng("niv1-examples")
    fact, question, _ = fact_question(ex)
    fact2, _, _ = fact_question(ex)

    def questions(rng):
        f, q, _ = fact_question(rng)
        return f"Sentence: {f}", [q]

    _write_niv1(
        corpus,
        "natural_instructions_v1/tasks/subtask901_demo_question_generation.json",
        {
            "Title": "Writing questions answered by a sentence",
            "Prompt": "Ask a question that the given sentence answers.",
            "Definition": "In this task, you are given a sentence about a person, a place or an "
            "organisation. Write a question whose answer is stated in the sentence.",
            "Things to Avoid": "Do not ask about anything the sentence does not mention.",
            "Emphasis & Caution": "The question should be answerable from the sentence alone.",
        },
        {
            "Positive Examples": [
                {
                    "input": f"Sentence: {fact}",
                    "output": question,
                    "reason": "The sentence states the answer to this question.",
                }
            ],
            "Negative Examples": [
                {
                    "input": f"Sentence: {fact2}",
                    "output": "Why is the sky blue?",
                    "reason": "The sentence does not answer this question.",
                    "suggestion": "Ask about a detail that appears in the sentence.",
                }
            ],
        },
        corpus.n(120),
        questions,
    )
    sentence, para = paraphrase(ex)

    def paraphrases(rng):
        s, p = paraphrase(rng)
        return s, [p]

    _write_niv1(
        corpus,
        "natural_instructions_v1/tasks/subtask902_demo_sentence_paraphrasing.json",
        {
            "Title": "Paraphrasing sentences",
            "Prompt": "Paraphrase the given sentence.",
            "Definition": "Rewrite the given sentence with different words and structure while "
            "keeping its meaning.",
            "Things to Avoid": "Do not only change one word. Do not add new information.",
            "Emphasis & Caution": "-",
        },
        {
            "Positive Examples": [
                {
                    "input": sentence,
                    "output": para,
                    "reason": "Same meaning, new structure and wording.",
                }
            ],
            "Negative Examples": [
                {
                    "input": sentence,
                    "output": sentence,
                    "reason": "This copies the input instead of paraphrasing it.",
                    "suggestion": " ",
                }
            ],
        },
        corpus.n(100),
        paraphrases,
    )


# ---------------------------------------------------------------------------------------------
# Flan 2022 JSONL and Flan CoT TSV.
# ---------------------------------------------------------------------------------------------

_FLAN_TOPIC = [
    (
        "{text}\n\nWhat is this text about?\nOPTIONS:\n- World\n- Sports\n- Business\n- Science "
        "and Technology"
    ),
    (
        "Which topic is this article about?\n{text}\nOPTIONS:\n- World\n- Sports\n- Business\n- "
        "Science and Technology"
    ),
    (
        "Select your answer: Which section of a newspaper would this appear in?\n\n{text}\n\n"
        "OPTIONS:\n- World\n- Sports\n- Business\n- Science and Technology"
    ),
    (
        "Article: {text}\n\nChoose the best topic.\nOPTIONS:\n- World\n- Sports\n- Business\n- "
        "Science and Technology"
    ),
]
_FLAN_NLI = [
    (
        "Premise: {p}\nHypothesis: {h}\n\nDoes the premise entail the hypothesis?\n\nOPTIONS:\n- "
        "yes\n- it is not possible to tell\n- no"
    ),
    (
        '{p}\n\nBased on the paragraph above, can we conclude that "{h}"?\n\nOPTIONS:\n- yes\n- '
        "it is not possible to tell\n- no"
    ),
    (
        "Read the text and determine if the sentence is true:\n\n{p}\n\nSentence: {h}\nOPTIONS:\n"
        "- yes\n- it is not possible to tell\n- no"
    ),
]
_FLAN_NLI_ANSWER = {
    "entailment": "yes",
    "neutral": "it is not possible to tell",
    "contradiction": "no",
}
_FLAN_SENTIMENT = [
    "Review: {text}\nIs this review positive or negative?\nOPTIONS:\n- negative\n- positive",
    (
        "{text}\n\nHow would you describe the sentiment of this review?\nOPTIONS:\n- negative\n- "
        "positive"
    ),
    "What is the sentiment of the following review?\n{text}\nOPTIONS:\n- negative\n- positive",
]
_FLAN_TRANSLATE = [
    "Translate from Spanish to English:\n\n{src}",
    'How is "{src}" said in English?',
    "Translate the following sentence to English:\n{src}",
]
_FLAN_SUMMARY = [
    "{body}\n\nWhat is a one-sentence summary of the paragraph above?",
    "Summarize this article in one sentence.\n\n{body}",
    "{body}\nSummary:",
]


def _flan_zs_opt(rng: random.Random) -> dict:
    kind = rng.choice(("topic", "nli", "sentiment"))
    if kind == "topic":
        label = rng.choice(TOPICS)
        inputs, targets = rng.choice(_FLAN_TOPIC).format(text=news(label, rng)), label
        task = "demo_news_topic:1.0.0"
    elif kind == "nli":
        label = rng.choice(NLI_LABELS)
        p, h = nli(label, rng)
        inputs, targets = rng.choice(_FLAN_NLI).format(p=p, h=h), _FLAN_NLI_ANSWER[label]
        task = "demo_nli:1.0.0"
    else:
        lang, label = rng.choice(LANG_CODES), rng.choice(SENTIMENT)
        inputs = rng.choice(_FLAN_SENTIMENT).format(text=review(lang, label, rng))
        targets, task = label, f"demo_reviews_{lang}:1.0.0"
    return {
        "inputs": inputs,
        "targets": targets,
        "task_source": "Flan2021",
        "task_name": task,
        "template_type": "zs_opt",
    }


def _flan_fs_noopt(rng: random.Random) -> dict:
    kind = rng.choice(("translate", "summary"))
    shots = []
    if kind == "translate":
        template = rng.choice(_FLAN_TRANSLATE)
        for _ in range(3):
            src, tgt = translation(rng)
            shots.append((template.format(src=src), tgt))
        task = "demo_translate_es_en:1.0.0"
    else:
        template = rng.choice(_FLAN_SUMMARY)
        for _ in range(2):
            body, short = summary(rng)
            shots.append((template.format(body=body), short))
        task = "demo_news_summary:1.0.0"
    *examples, (query, target) = shots
    inputs = "\n\n".join(f"{q}\n{a}" for q, a in examples) + f"\n\n{query}"
    return {
        "inputs": inputs,
        "targets": target,
        "task_source": "Flan2021",
        "task_name": task,
        "template_type": "fs_noopt",
    }


def _flan(corpus: _Corpus) -> None:
    rel = "flan/flan_zs_opt_train.jsonl"
    rng = corpus.rng(rel)
    count = corpus.n(400)
    bad_at = count // 2  # the record missing "targets" sits mid-file, never first
    with corpus.text_file(rel) as handle:
        for i in range(count):
            handle.write(_jsonl(_flan_zs_opt(rng)))
            if i == bad_at:
                broken = _flan_zs_opt(rng)
                del broken["targets"]
                handle.write(_jsonl(broken))
    corpus.add(
        "flan",
        rel,
        count,
        1,
        dead_letters=[{"file": rel, "line": bad_at + 2, "kind": "missing_field:targets"}],
    )

    rel = "flan/flan_fs_noopt_train.jsonl.gz"
    rng = corpus.rng(rel)
    count = corpus.n(200)
    # mtime=0 and no file name in the gzip header: identical bytes on every run.
    with (
        open(corpus.path(rel), "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed,
        io.TextIOWrapper(packed, encoding="utf-8", newline="\n") as handle,
    ):
        for _ in range(count):
            handle.write(_jsonl(_flan_fs_noopt(rng)))
    corpus.add("flan", rel, count)


def _flan_cot(corpus: _Corpus) -> None:
    rel = "flan/cot_data/demo_science_and_math_train.tsv"
    rng = corpus.rng(rel)
    count = corpus.n(100)
    with corpus.text_file(rel) as handle:
        # Same layout as FLAN's cot_data/*.tsv: no header, three tab-separated columns, the
        # question's line breaks written as the two characters "\n", no quoting.
        for _ in range(count):
            handle.write("\t".join(cot_row(rng)) + "\n")
    corpus.add("flan_cot", rel, count, columns=["question", "answer", "rationale"])


# ---------------------------------------------------------------------------------------------
# P3 / T0 per-template JSONL and one PromptSource templates.yaml.
# ---------------------------------------------------------------------------------------------

# dataset -> {template name: (prompt format, {label: completion})}; the file is
# f"{dataset}_{template name}.jsonl". Dataset names have no "_", so the split is unambiguous.
_P3_REVIEWS = {
    "Review_Sentiment_Question": (
        "{text}\nWhat is the sentiment of this review?\n",
        {"positive": "positive", "negative": "negative"},
    ),
    "Did_The_Customer_Like_It": (
        "{text} Did the customer like the product?\n",
        {"positive": "Yes", "negative": "No"},
    ),
    "Positive_Or_Negative_Choices": (
        "Is the following review positive or negative?\n{text}\n",
        {"positive": "positive", "negative": "negative"},
    ),
    "Good_Or_Bad": (
        "Review: {text}\nWas the buyer's experience good or bad?\n",
        {"positive": "good", "negative": "bad"},
    ),
}
_P3_NEWS = {
    "Which_Section": (
        "{text} \nWhich section of a newspaper would this article appear in?\n",
        None,
    ),
    "Classify_With_Choices": (
        (
            "{text} \nIs this a piece of news regarding World, Sports, "
            "Business, or Science and Technology?\n"
        ),
        None,
    ),
    "Question_First": ("What label best describes this news article?\n{text}\n", None),
    "Topic_Of_Article": ("Article: {text}\nWhat is the topic of this article?\n", None),
}
_P3_NLI = {
    "Does_It_Follow": (
        '{p} Does it follow that "{h}"? Yes, no, or maybe?\n',
        {"entailment": "Yes", "neutral": "Maybe", "contradiction": "No"},
    ),
    "Guaranteed_True": (
        ('Given that {p} Is it guaranteed true that "{h}"? Yes, no, or maybe?\n'),
        {"entailment": "Yes", "neutral": "Maybe", "contradiction": "No"},
    ),
    "Relation_Label": (
        (
            "Premise: {p}\nHypothesis: {h}\nWhat is the relation between the "
            "premise and the hypothesis: entailment, neutral, or contradiction?\n"
        ),
        {label: label for label in NLI_LABELS},
    ),
}
# The leaky task (the lecture's example): each template is only ever used for one label.
_P3_LEAKY = {
    "Say_POSITIVE": ("Say POSITIVE: {text}\n", "positive"),
    "Say_NEGATIVE": ("Say NEGATIVE: {text}\n", "negative"),
}
_P3_SUMMARY = {
    "Summarize_Article": "Summarize this article in one sentence:\n{body}\n",
    "TLDR": "{body}\n\nTL;DR:\n",
}
_P3_DIR = "p3_t0_gpt3ft/data_per_template"
_END = "<|endoftext|>"


def _write_p3(corpus: _Corpus, dataset: str, template: str, count: int, make, **extra) -> None:
    rel = f"{_P3_DIR}/{dataset}_{template}.jsonl"
    rng = corpus.rng(rel)
    with corpus.text_file(rel) as handle:
        for _ in range(count):
            prompt, completion = make(rng)
            # json.dumps defaults (ASCII escapes), as in the released T0 fine-tuning files.
            handle.write(
                _jsonl({"prompt": prompt, "completion": completion + _END}, ensure_ascii=True)
            )
    corpus.add("p3", rel, count, **extra)


def _p3(corpus: _Corpus) -> None:
    per = corpus.n(60)
    for template, (fmt, answers) in _P3_REVIEWS.items():

        def make(rng, fmt=fmt, answers=answers):
            label = rng.choice(SENTIMENT)
            return fmt.format(text=review("en", label, rng)), answers[label]

        _write_p3(corpus, "demoreviews", template, per, make)
    for template, (fmt, _) in _P3_NEWS.items():

        def make(rng, fmt=fmt):
            label = rng.choice(TOPICS)
            return fmt.format(text=news(label, rng)), label

        _write_p3(corpus, "demonews", template, per, make)
    for template, (fmt, answers) in _P3_NLI.items():

        def make(rng, fmt=fmt, answers=answers):
            label = rng.choice(NLI_LABELS)
            p, h = nli(label, rng)
            return fmt.format(p=p, h=h), answers[label]

        _write_p3(corpus, "demonli", template, per, make)
    for template, (fmt, label) in _P3_LEAKY.items():

        def make(rng, fmt=fmt, label=label):
            return fmt.format(text=review("en", label, rng)), label

        _write_p3(
            corpus,
            "demopolarity",
            template,
            per,
            make,
            leaky_files=[f"{_P3_DIR}/demopolarity_{template}.jsonl"],
        )
    for template, fmt in _P3_SUMMARY.items():

        def make(rng, fmt=fmt):
            body, short = summary(rng)
            return fmt.format(body=body), short

        _write_p3(corpus, "demosum", template, corpus.n(40), make)
    # An empty template file, as several real T0 releases have: one dead letter.
    rel = f"{_P3_DIR}/demonews_Fine_Grained_Label.jsonl"
    open(corpus.path(rel), "wb").close()
    corpus.add("p3", rel, 0, 1, dead_letters=[{"file": rel, "line": None, "kind": "empty_file"}])


class _Template(dict):
    """Serialised as a ``!Template`` mapping, like PromptSource's own YAML files."""


class _TemplateMetadata(dict):
    """Serialised as a ``!TemplateMetadata`` mapping."""


class _PromptSourceDumper(yaml.SafeDumper):
    pass


_PromptSourceDumper.add_representer(
    _Template, lambda d, data: d.represent_mapping("!Template", dict(data))
)
_PromptSourceDumper.add_representer(
    _TemplateMetadata, lambda d, data: d.represent_mapping("!TemplateMetadata", dict(data))
)

# name -> (jinja, answer choices, choices in prompt); the first four render the P3 files above.
_PS_REVIEWS = [
    (
        "Review Sentiment Question",
        ("{{text}}\nWhat is the sentiment of this review? ||| {{ answer_choices[label] }}"),
        "negative ||| positive",
        False,
    ),
    (
        "Did The Customer Like It",
        ("{{text}} Did the customer like the product? ||| {{ answer_choices[label] }}"),
        "No ||| Yes",
        False,
    ),
    (
        "Positive Or Negative Choices",
        (
            'Is the following review {{"positive or negative"}}?\n'
            "{{text}} ||| {{ answer_choices[label] }}"
        ),
        "negative ||| positive",
        True,
    ),
    (
        "Good Or Bad",
        (
            'Review: {{text}}\nWas the buyer\'s experience {{"good or bad"}}? ||| '
            "{{ answer_choices[label] }}"
        ),
        "bad ||| good",
        True,
    ),
    (
        "Buyer Would Recommend",
        (
            "{{text}}\nWould this buyer recommend the product to a friend? "
            "||| {{ answer_choices[label] }}"
        ),
        "No ||| Yes",
        False,
    ),
    (
        "Star Rating Guess",
        (
            "Here is a review: {{text}}\nDid the reviewer give a high or a low "
            "rating? ||| {{ answer_choices[label] }}"
        ),
        "low ||| high",
        False,
    ),
]


def _promptsource(corpus: _Corpus) -> None:
    rel = "promptsource/templates/demoreviews/templates.yaml"
    rng = corpus.rng(rel)
    templates = {}
    for name, jinja, choices, in_prompt in _PS_REVIEWS:
        template_id = str(_uuid(rng))
        templates[template_id] = _Template(
            answer_choices=choices,
            id=template_id,
            jinja=jinja,
            metadata=_TemplateMetadata(
                choices_in_prompt=in_prompt,
                languages=["en"],
                metrics=["Accuracy"],
                original_task=True,
            ),
            name=name,
            reference="instructmix demo",
        )
    with corpus.text_file(rel) as handle:
        yaml.dump(
            {"dataset": "demoreviews", "templates": templates},
            handle,
            Dumper=_PromptSourceDumper,
            sort_keys=True,
            allow_unicode=False,
        )
    corpus.add("promptsource", rel, 0, templates=len(templates), dataset="demoreviews")


# ---------------------------------------------------------------------------------------------
# Self-Instruct seed tasks.
# ---------------------------------------------------------------------------------------------


def _seed_en(rng: random.Random) -> tuple[str, str, Callable, bool]:
    """(name, instruction, instance maker, is_classification) for an English seed task."""
    kind = rng.randrange(8)
    if kind == 0:
        instruction = rng.choice(
            [
                "Classify the sentiment of the product review as positive or negative.",
                (
                    "Is the customer happy or unhappy? Read the review and answer Positive or "
                    "Negative."
                ),
                "Decide whether this review is positive or negative.",
            ]
        )

        def make(r):
            label = r.choice(SENTIMENT)
            return review("en", label, r), label.capitalize()

        return "review_sentiment", instruction, make, True
    if kind == 1:
        instruction = rng.choice(
            [
                "Which section of a newspaper would this article appear in?",
                (
                    "Classify the news snippet into World, Sports, Business or Science and "
                    "Technology."
                ),
            ]
        )

        def make(r):
            label = r.choice(TOPICS)
            return news(label, r), label

        return "news_topic", instruction, make, True
    if kind == 2:
        instruction = rng.choice(
            [
                "Convert the temperature from Celsius to Fahrenheit.",
                "What is this temperature in degrees Fahrenheit?",
            ]
        )

        def make(r):
            c = r.randint(-10, 40)
            return f"{c} °C", f"{_number(c * 9 / 5 + 32, 'en')} °F"

        return "celsius_to_fahrenheit", instruction, make, False
    if kind == 3:
        instruction = rng.choice(
            [
                "Rewrite the message in a polite, formal tone.",
                "Make this workplace message sound professional.",
            ]
        )
        return "formal_rewrite", instruction, formal_rewrite, False
    if kind == 4:
        instruction = rng.choice(
            [
                "Solve the arithmetic word problem. Reply with the number only.",
                "Answer the math question with a single number.",
            ]
        )
        return "word_problem", instruction, word_problem, False
    if kind == 5:
        instruction = rng.choice(
            [
                "Translate the Spanish sentence into English.",
                "What does this Spanish text mean in English?",
            ]
        )
        return "spanish_to_english", instruction, translation, False
    if kind == 6:
        instruction = rng.choice(
            [
                "Write a question that the given sentence answers.",
                "Generate a question whose answer appears in the sentence.",
            ]
        )
        return "question_from_fact", instruction, lambda r: fact_question(r)[:2], False
    instruction = rng.choice(
        [
            (
                "Does the first sentence imply the second? Answer entailment, neutral or "
                "contradiction."
            ),
            "Determine the relation between the premise and the hypothesis.",
        ]
    )

    def make(r):
        label = r.choice(NLI_LABELS)
        p, h = nli(label, r)
        return f"Premise: {p}\nHypothesis: {h}", label

    return "premise_hypothesis_relation", instruction, make, True


def _seed_zh_ja(rng: random.Random) -> tuple[str, str, Callable, bool]:
    lang = rng.choice(("zh", "ja"))
    spec = LANGS[lang]
    kind = rng.randrange(3)
    if kind == 0:
        instruction = {
            "zh": "判断下面这条商品评论是正面的还是负面的。",
            "ja": "次の商品レビューが肯定的か否定的かを判定してください。",
        }[lang]

        def make(r):
            label = r.choice(SENTIMENT)
            return review(lang, label, r), spec["labels"][label]

        return f"review_sentiment_{lang}", instruction, make, True
    if kind == 1:
        question, answer = spec["temp"]

        def make(r):
            slots = _slots(lang, r)
            return question.format_map(slots), answer.format_map(slots)

        instruction = {
            "zh": "回答下面的温度换算问题。",
            "ja": "次の温度の換算問題に答えてください。",
        }[lang]
        return f"temperature_{lang}", instruction, make, False
    question, answer = spec["money"]

    def make(r):
        slots = _slots(lang, r)
        return question.format_map(slots), answer.format_map(slots)

    instruction = {
        "zh": "解答下面的算术应用题，并写出计算过程。",
        "ja": "次の計算問題に答え、計算の過程も書いてください。",
    }[lang]
    return f"arithmetic_{lang}", instruction, make, False


def _write_seed_tasks(corpus: _Corpus, rel: str, tasks: int, pick, ensure_ascii: bool) -> None:
    rng = corpus.rng(rel)
    instances_total = 0
    with corpus.text_file(rel) as handle:
        for i in range(tasks):
            name, instruction, make, is_cls = pick(rng)
            instances = []
            for _ in range(rng.choice((1, 1, 2, 3))):
                text, output = make(rng)
                instances.append({"input": text, "output": output})
            instances_total += len(instances)
            handle.write(
                _jsonl(
                    {
                        "id": f"seed_task_{i}",
                        "name": name,
                        "instruction": instruction,
                        "instances": instances,
                        "is_classification": is_cls,
                    },
                    ensure_ascii=ensure_ascii,
                )
            )
    corpus.add("self_instruct", rel, instances_total, tasks=tasks)


def _self_instruct(corpus: _Corpus) -> None:
    _write_seed_tasks(
        corpus, "self_instruct/demo_seed_tasks.jsonl", corpus.n(60), _seed_en, ensure_ascii=True
    )
    # Named .json but holding JSON Lines, like BELLE's zh_seed_tasks.json.
    _write_seed_tasks(
        corpus,
        "self_instruct/demo_zh_ja_seed_tasks.json",
        corpus.n(40),
        _seed_zh_ja,
        ensure_ascii=False,
    )


# ---------------------------------------------------------------------------------------------
# Alpaca, Dolly, LIMA.
# ---------------------------------------------------------------------------------------------

ALPACA_JSON = "alpaca/demo_alpaca_data.json"


def alpaca_record(corpus: _Corpus, index: int) -> dict:
    """Record ``index`` of the Alpaca JSON file: a pure function of (seed, index), so other
    files can repeat it (exactly or with an edit) without keeping the file in memory."""
    rng = corpus.rng(ALPACA_JSON, index)
    kind = rng.randrange(4)
    if kind == 0:  # long-form English: the material near-duplicates are made of
        question, answer = advice(rng)
        return {"instruction": question, "input": "", "output": answer}
    if kind == 1:
        body, short = summary(rng)
        return {
            "instruction": "Write a short news paragraph based on this headline.",
            "input": short,
            "output": body,
        }
    lang = rng.choice(LANG_CODES)
    prompt, answer, chat_kind = chat_pair(lang, rng)
    if chat_kind == "sentiment":
        question, text = prompt.split("\n\n", 1)
        return {"instruction": question, "input": text, "output": answer}
    return {"instruction": prompt, "input": "", "output": answer}


def _is_long(record: dict) -> bool:
    # One inserted word in 60+ words keeps 5-gram shingle Jaccard above 0.8.
    return len(record["output"].split()) >= 60


def _planted(corpus: _Corpus, count: int, salt: str, *, long_only: bool = False) -> list[int]:
    """Indices of Alpaca JSON records to repeat elsewhere (deterministic)."""
    rng = corpus.rng("planted", salt)
    total = corpus.n(400)
    chosen: list[int] = []
    while len(chosen) < count:
        i = rng.randrange(total)
        if i not in chosen and (not long_only or _is_long(alpaca_record(corpus, i))):
            chosen.append(i)
    return chosen


def _alpaca(corpus: _Corpus) -> None:
    count = corpus.n(400)
    with corpus.text_file(ALPACA_JSON) as handle:
        write_json_document(
            handle,
            None,
            (alpaca_record(corpus, i) for i in range(count)),
            key=None,
            indent=4,
            ensure_ascii=True,
        )
    corpus.add("alpaca", ALPACA_JSON, count)

    # A second part cut off mid-download: not valid JSON, one dead letter for the file.
    rel = "alpaca/demo_alpaca_data_part2.json"
    rng = corpus.rng(rel)
    buffer = io.StringIO()
    records = []
    for _ in range(12):
        lang = rng.choice(LANG_CODES)
        prompt, answer, _ = chat_pair(lang, rng)
        records.append({"instruction": prompt, "input": "", "output": answer})
    write_json_document(buffer, None, records, key=None, indent=4, ensure_ascii=True)
    text = buffer.getvalue()
    # Cut inside the first element: whether a reader drops the whole file or salvages the
    # complete elements before the break, the file is exactly one dead letter and no record.
    cut = text.index('"output": "') + len('"output": "') + 5
    with corpus.text_file(rel) as handle:
        handle.write(text[:cut])
    corpus.add(
        "alpaca", rel, 0, 1, dead_letters=[{"file": rel, "line": None, "kind": "truncated_json"}]
    )

    # JSONL with "history" (LLaMA-Factory's multi-turn Alpaca), some exact repeats of the
    # JSON file, and one line written in Latin-1 instead of UTF-8.
    rel = "alpaca/demo_alpaca_multiturn.jsonl"
    rng = corpus.rng(rel)
    count = corpus.n(150)
    repeats = dict.fromkeys(_planted(corpus, max(3, count // 50), rel))
    slots = sorted(rng.sample(range(1, count), len(repeats)))
    repeat_at = dict(zip(slots, repeats))
    bad_at = count // 3
    with open(corpus.path(rel), "wb") as handle:
        for i in range(count):
            if i in repeat_at:
                record = {**alpaca_record(corpus, repeat_at[i]), "history": []}
            else:
                lang = rng.choice(LANG_CODES)
                history = []
                for _ in range(rng.choice((0, 1, 1, 2))):
                    user, assistant, _ = chat_pair(lang, rng)
                    history.append([user, assistant])
                prompt, answer, _ = chat_pair(lang, rng)
                record = {"instruction": prompt, "input": "", "output": answer, "history": history}
            handle.write(_jsonl(record).encode("utf-8"))
            if i == bad_at:
                latin = {
                    "instruction": "Traduce al inglés: «El café de la esquina está "
                    "cerrado los lunes.»",
                    "input": "",
                    "output": "The café on the corner is closed on Mondays.",
                    "history": [],
                }
                handle.write(_jsonl(latin).encode("latin-1"))
    corpus.add(
        "alpaca",
        rel,
        count,
        1,
        planted_exact_duplicates=len(repeats),
        dead_letters=[{"file": rel, "line": bad_at + 2, "kind": "invalid_utf8"}],
    )


_DOLLY_CATEGORIES = (
    "open_qa",
    "closed_qa",
    "classification",
    "summarization",
    "brainstorming",
    "information_extraction",
    "general_qa",
)


def _dolly_record(rng: random.Random) -> dict:
    category = rng.choice(_DOLLY_CATEGORIES)
    if category == "closed_qa":
        fact, question, answer = fact_question(rng)
        return {"instruction": question, "context": fact, "response": answer, "category": category}
    if category == "classification":
        label = rng.choice(SENTIMENT)
        return {
            "instruction": "Classify this review as positive or negative: "
            + review("en", label, rng),
            "context": "",
            "response": label.capitalize(),
            "category": category,
        }
    if category == "summarization":
        body, short = summary(rng)
        return {
            "instruction": "Summarize this paragraph in one sentence.",
            "context": body,
            "response": short,
            "category": category,
        }
    if category == "information_extraction":
        label = rng.choice(TOPICS)
        text = news(label, rng)
        return {
            "instruction": "Which topic does this news item belong to: World, Sports, "
            "Business or Science and Technology?",
            "context": text,
            "response": label,
            "category": category,
        }
    if category == "brainstorming":
        question, answer = advice(rng)
        return {"instruction": question, "context": "", "response": answer, "category": category}
    prompt, answer, _ = chat_pair("en", rng)
    return {"instruction": prompt, "context": "", "response": answer, "category": category}


def _from_alpaca(record: dict, category: str) -> dict:
    return {
        "instruction": record["instruction"],
        "context": record["input"],
        "response": record["output"],
        "category": category,
    }


def _dolly(corpus: _Corpus) -> None:
    rel = "dolly/demo-dolly-15k-style.jsonl"
    rng = corpus.rng(rel)
    count = corpus.n(150)
    planted = max(4, count // 30)
    exact = _planted(corpus, planted, rel + "#exact")
    near = _planted(corpus, planted, rel + "#near", long_only=True)
    positions = rng.sample(range(1, count), 2 * planted)
    copies = {}
    for pos, i in zip(positions[:planted], exact):
        copies[pos] = _from_alpaca(alpaca_record(corpus, i), "general_qa")
    for pos, i in zip(positions[planted:], near):
        record = _from_alpaca(alpaca_record(corpus, i), "brainstorming")
        record["response"] = near_duplicate(record["response"], rng)
        copies[pos] = record
    bad_at = count // 2
    with corpus.text_file(rel) as handle:
        for i in range(count):
            record = copies.get(i) or _dolly_record(rng)
            handle.write(_jsonl(record))
            if i == bad_at:  # "response" must be a string, not an object
                wrong = _dolly_record(rng)
                wrong["response"] = {"text": wrong["response"]}
                handle.write(_jsonl(wrong))
    corpus.add(
        "dolly",
        rel,
        count,
        1,
        planted_exact_duplicates=planted,
        planted_near_duplicates=planted,
        dead_letters=[{"file": rel, "line": bad_at + 2, "kind": "wrong_type:response"}],
    )


def _lima(corpus: _Corpus) -> None:
    # LLaMA-Factory's conversion: Alpaca keys plus "history", a JSON array with indent 2.
    rel = "lima/demo_lima.json"
    rng = corpus.rng(rel)
    count = corpus.n(80)

    def records():
        for _ in range(count):
            history = []
            if rng.random() < 0.15:
                user, assistant = advice(rng)
                history.append([user, assistant])
            if rng.random() < 0.5:
                question, answer = advice(rng)
            else:
                body, short = summary(rng)
                question, answer = f"Write a short news report with this headline: {short}", body
            yield {"instruction": question, "input": "", "output": answer, "history": history}

    with corpus.text_file(rel) as handle:
        write_json_document(handle, None, records(), key=None, indent=2, ensure_ascii=False)
    corpus.add("lima", rel, count)

    # The original LIMA release: JSONL of {"conversations": [turn, ...], "source": ...}.
    rel = "lima/demo_lima_train.jsonl"
    rng = corpus.rng(rel)
    count = corpus.n(60)
    with corpus.text_file(rel) as handle:
        for _ in range(count):
            turns = list(advice(rng))
            if rng.random() < 0.2:
                turns += [
                    "Thanks! Which of these matters most?",
                    (
                        "If you only change one thing, start with the first point; the "
                        "others are easier once it has become a habit."
                    ),
                ]
            source = rng.choice(
                ("stackexchange", "wikihow", "multi_turn")
                if len(turns) > 2
                else ("stackexchange", "wikihow")
            )
            handle.write(_jsonl({"conversations": turns, "source": source}))
    corpus.add("lima", rel, count)


# ---------------------------------------------------------------------------------------------
# Chat: OpenAI "messages" JSONL (plain and zstd) and ShareGPT JSON.
# ---------------------------------------------------------------------------------------------


def _messages(rng: random.Random) -> list[dict]:
    lang = rng.choice(LANG_CODES)
    messages = []
    if rng.random() < 0.6:
        messages.append({"role": "system", "content": LANGS[lang]["system"]})
    for _ in range(rng.choice((1, 1, 2, 3))):
        user, assistant, _ = chat_pair(lang, rng)
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return messages


def _chat(corpus: _Corpus) -> None:
    rel = "openai_chat/demo_chat_fine_tuning.jsonl"
    rng = corpus.rng(rel)
    count = corpus.n(150)
    bad_at = count // 4
    with corpus.text_file(rel) as handle:
        for i in range(count):
            handle.write(_jsonl({"messages": _messages(rng)}))
            if i == bad_at:  # a Python repr slipped into the file: not JSON
                handle.write(repr({"messages": _messages(rng)}) + "\n")
    corpus.add(
        "chat_messages",
        rel,
        count,
        1,
        dead_letters=[{"file": rel, "line": bad_at + 2, "kind": "not_json"}],
    )

    rel = "openai_chat/demo_chat_fine_tuning_part2.jsonl.zst"
    rng = corpus.rng(rel)
    count = corpus.n(100)
    with (
        open(corpus.path(rel), "wb") as raw,
        zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False) as packed,
    ):
        for _ in range(count):
            packed.write(_jsonl({"messages": _messages(rng)}).encode("utf-8"))
    corpus.add("chat_messages", rel, count)


_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_GPT_OPENERS = {
    "en": "Hello! How can I help you today?",
    "es": "¡Hola! ¿En qué puedo ayudarte hoy?",
    "de": "Hallo! Wie kann ich dir heute helfen?",
    "fi": "Hei! Miten voin auttaa tänään?",
    "ru": "Здравствуйте! Чем я могу помочь?",
    "ar": "مرحبًا! كيف يمكنني مساعدتك اليوم؟",
    "hi": "नमस्ते! आज मैं आपकी क्या मदद कर सकता हूँ?",
    "zh": "你好！今天有什么可以帮你的吗？",
    "ja": "こんにちは！今日はどんなご用件でしょうか？",
}


def _sharegpt(corpus: _Corpus) -> None:
    rel = "sharegpt/demo_sharegpt_conversations.json"
    rng = corpus.rng(rel)
    count = corpus.n(120)

    def conversations():
        for i in range(count):
            lang = rng.choice(LANG_CODES)
            turns = []
            shape = (
                "system"
                if i == 0 or rng.random() < 0.05
                else ("gpt_first" if i == 1 or rng.random() < 0.04 else "plain")
            )
            if shape == "system":
                turns.append({"from": "system", "value": LANGS[lang]["system"]})
            elif shape == "gpt_first":
                turns.append({"from": "gpt", "value": _GPT_OPENERS[lang]})
            for _ in range(rng.choice((1, 1, 2, 3))):
                user, assistant, _ = chat_pair(lang, rng)
                turns += [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]
            ident = "".join(rng.choice(_ID_CHARS) for _ in range(7))
            yield {"id": f"{ident}_0", "conversations": turns}

    with corpus.text_file(rel) as handle:
        # ShareGPT_V3 layout: indent 2, non-ASCII as \u escapes.
        write_json_document(handle, None, conversations(), key=None, indent=2, ensure_ascii=True)
    corpus.add("sharegpt", rel, count)


# ---------------------------------------------------------------------------------------------
# Generic CSV with a field mapping.
# ---------------------------------------------------------------------------------------------

CSV_MAPPING = {"input": "question_text", "output": "answer_text", "task": "product_area"}
_FAQ = [
    (
        "shipping",
        ("My order {order} was shipped {d} days ago and still hasn't arrived. What should I do?"),
        (
            "Orders usually arrive within 3 to 5 working days. If order {order} is "
            "still missing after {d} days, reply to your confirmation e-mail and we will open an "
            "investigation with the carrier."
        ),
    ),
    (
        "billing",
        "Why was I charged {p} euros twice for order {order}?",
        (
            "The second charge of {p} euros is a pre-authorisation, not a payment. It disappears "
            "from your statement within {d} days; if it does not, contact billing with the order "
            "number {order}."
        ),
    ),
    (
        "account",
        "How do I change the password of account {user}? I last changed it {d} days ago.",
        (
            'Go to "My account", then "Security", and click "Change password". For your safety, '
            "the link in the e-mail expires after {d} hours."
        ),
    ),
    (
        "returns",
        "Can I return item {order} after {d} days? The box is opened.",
        (
            "Yes, opened items can be returned within 30 days if they are complete and undamaged. "
            "Print the label from your account, pack item {order}, and drop it at any post office."
        ),
    ),
    (
        "returns",
        "What are the steps to return a damaged delivery (order {order})?",
        (
            "1. Take a photo of the damage.\n2. Open the order {order} in your account and choose "
            '"Report a problem".\n3. We send a free return label within {d} hours.'
        ),
    ),
    (
        "billing",
        "Do you accept payment by invoice for orders over {p} euros?",
        (
            "Yes, for business customers, invoices are available for orders over {p} euros, "
            "payable within {d} days."
        ),
    ),
]


def _csv(corpus: _Corpus) -> None:
    rel = "generic/demo_support_faq.csv"
    rng = corpus.rng(rel)
    count = corpus.n(100)
    with corpus.text_file(rel) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["faq_id", "product_area", "question_text", "answer_text"])
        for i in range(count):
            area, question, answer = rng.choice(_FAQ)
            slots = {
                "order": f"{rng.randint(100000, 999999)}",
                "d": rng.randint(2, 29),
                "p": rng.randint(15, 480),
                "user": f"{rng.choice(LANGS['en']['names']).lower()}{rng.randint(10, 9999)}",
            }
            writer.writerow(
                [f"faq-{i:05d}", area, question.format_map(slots), answer.format_map(slots)]
            )
    corpus.add("csv", rel, count, mapping=dict(CSV_MAPPING), header=True)


# ---------------------------------------------------------------------------------------------
# Entry point.
# ---------------------------------------------------------------------------------------------


def _sni_sentiments(corpus: _Corpus) -> None:
    for i, lang in enumerate(LANG_CODES):
        _sni_sentiment(corpus, 9101 + i, lang)


_BUILDERS = (
    _sni_sentiments,
    _sni_english,
    _sni_old_schema,
    _niv1,
    _flan,
    _flan_cot,
    _p3,
    _promptsource,
    _self_instruct,
    _alpaca,
    _dolly,
    _lima,
    _chat,
    _sharegpt,
    _csv,
)


def generate_corpus(out_dir: str, *, scale: int = 1, seed: int = 0) -> dict:
    """Write the demo raw corpus under ``out_dir``; returns what a reader must find in it.

    ``{format: {"files": [paths relative to out_dir], "records": valid records,
    "malformed": expected dead letters, "per_file": {path: {"records", "malformed"}}, ...}}``;
    some formats add details (``mapping`` for the CSV, ``dead_letters`` with the position and
    kind of each planted error, ``planted_exact_duplicates`` / ``planted_near_duplicates``,
    ``leaky_files``). The same (scale, seed) gives byte-identical files. The file names do not
    depend on (scale, seed), so re-running into the same directory overwrites every file; files
    the generator did not write are left alone and are not in the description.
    """
    for name, value in (("scale", scale), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an integer, got {value!r}")
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    os.makedirs(out_dir, exist_ok=True)
    corpus = _Corpus(out_dir, seed, scale)
    for build in _BUILDERS:
        build(corpus)
    for entry in corpus.description.values():
        entry["files"].sort()
    return dict(sorted(corpus.description.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the instructmix demo raw corpus.")
    parser.add_argument("out_dir")
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    description = generate_corpus(args.out_dir, scale=args.scale, seed=args.seed)
    total = sum(e["records"] for e in description.values())
    malformed = sum(e["malformed"] for e in description.values())
    for name, entry in description.items():
        print(
            f"{name:15s} {len(entry['files']):3d} files {entry['records']:8d} records "
            f"{entry['malformed']:2d} malformed"
        )
    print(f"{'total':15s} {total:22d} records {malformed:2d} malformed -> {args.out_dir}")


if __name__ == "__main__":
    main()
