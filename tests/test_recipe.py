"""Recipes: the presets carry the lecture's and FLAN v2's numbers, each with its source; bad
recipes fail with errors that name the key."""

from __future__ import annotations

import re

import pytest

from pipelines.config import _freeze
from transforms.recipe import (
    PRESETS_DIR,
    MixtureRecipe,
    RecipeError,
    load_recipe,
    preset_names,
    recipe_from_dict,
)


def test_presets_are_listed_and_load():
    assert {"lecture", "flan2022"} <= set(preset_names())
    for name in ("lecture", "flan2022"):
        recipe = load_recipe(name)
        assert recipe.name == name
        assert load_recipe(str(PRESETS_DIR / f"{name}.yaml")) == recipe


def test_lecture_preset_has_the_lecture_numbers():
    recipe = load_recipe("lecture")
    (sub,) = recipe.submixtures
    assert sub.cap == 30_000 and sub.rate == 1.0 and sub.sources == ("*",)
    assert (recipe.formats.zero_shot, recipe.formats.few_shot, recipe.formats.cot) == (
        0.5,
        0.25,
        0.25,
    )
    assert recipe.inversion.rate == 0.1
    assert recipe.templates_per_task == 10
    assert recipe.seed == 0
    assert recipe.source_weight("sni") == recipe.source_weight("anything") == 1.0
    assert recipe.temperature == 1.0 and recipe.budget is None


def test_flan2022_preset_has_the_released_code_numbers():
    recipe = load_recipe("flan2022")
    subs = {s.name: s for s in recipe.submixtures}
    # flan/v2/mixtures.py DEFAULT_MIXTURE_MAX_EXAMPLES and DEFAULT_MIXTURE_RATES
    assert {k: subs[k].cap for k in ("flan", "t0", "cot", "niv2", "dialog")} == {
        "flan": 30_000,
        "t0": 20_000,
        "cot": 100_000,
        "niv2": 5_000,
        "dialog": 200_000,
    }
    assert {k: subs[k].rate for k in ("flan", "t0", "cot", "niv2", "dialog")} == {
        "flan": 4,
        "t0": 3,
        "cot": 1,
        "niv2": 1,
        "dialog": 1,
    }
    # CoT-II and Dialog-II at 0.3; nothing else inverted
    assert (
        recipe.inversion_rate_for(subs["cot"]) == recipe.inversion_rate_for(subs["dialog"]) == 0.3
    )
    assert recipe.inversion_rate_for(subs["flan"]) == 0.0
    # zero-shot : few-shot 50:50 in each submixture; CoT is its own submixture
    assert (recipe.formats.zero_shot, recipe.formats.few_shot, recipe.formats.cot) == (0.5, 0.5, 0)
    assert recipe.formats_for(subs["cot"]).cot == 1.0
    # opt/noopt 1:1 for Flan 2021 and T0, options only for NIv2, CoT and Dialog
    assert recipe.answer_options_for(subs["flan"]) == recipe.answer_options_for(subs["t0"]) == 0.5
    assert all(recipe.answer_options_for(subs[k]) == 1.0 for k in ("niv2", "cot", "dialog"))
    assert recipe.temperature == 1.0 and recipe.scale == 1.0
    assert recipe.few_shot.max_k == 5


def test_flan2022_routes_sources_to_submixtures():
    recipe = load_recipe("flan2022")
    route = {
        s: recipe.submixture_for(s, "some_task").name
        for s in ("flan", "p3", "sni", "niv1", "flan_cot", "sharegpt", "chat", "alpaca", "dolly")
    }
    assert route == {
        "flan": "flan",
        "p3": "t0",
        "sni": "niv2",
        "niv1": "niv2",
        "flan_cot": "cot",
        "sharegpt": "dialog",
        "chat": "dialog",
        "alpaca": "other",
        "dolly": "other",
    }


@pytest.mark.parametrize("name", ["lecture", "flan2022"])
def test_every_preset_value_says_where_it_comes_from(name):
    text = (PRESETS_DIR / f"{name}.yaml").read_text()
    for line in text.splitlines():
        scalar = re.match(r"^\s*(- )?[a-z_]+: *[^\s#{\[]", line) or re.match(
            r"^\s*[a-z_]+: *(\[\]|\{\})", line
        )
        if scalar and "name:" not in line:
            assert "#" in line, f"{name}.yaml: no source comment on {line.strip()!r}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"formats": {"zero_shot": 0.5, "few_shot": 0.25, "cot": 0.15}},
            r"formats: proportions must sum to 1, got 0.9",
        ),
        ({"formatz": {}}, r"unknown key 'formatz'; known: .*formats"),
        ({"submixtures": [{"name": "a", "cpa": 3}]}, r"unknown key 'cpa' in submixtures\[0\]"),
        (
            {"submixtures": [{"name": "a", "cap": -3}]},
            r"submixtures\[0\]: cap must be a positive integer, got -3",
        ),
        ({"submixtures": [{"name": "a", "cap": 0}]}, r"cap must be a positive integer, got 0"),
        ({"submixtures": [{"name": "a"}, {"name": "a"}]}, r"duplicate names \['a'\]"),
        ({"submixtures": []}, r"at least one submixture"),
        ({"submixtures": [{"cap": 3}]}, r"submixtures\[0\].*name"),
        ({"submixtures": [{"name": "a", "rate": 0}]}, r"rate must be a number > 0"),
        ({"heldout": {"target": "users"}}, r"heldout: target must be one of"),
        (
            {"heldout": {"decontaminate": {"treshold": 0.5}}},
            r"unknown key 'treshold' in heldout.decontaminate",
        ),
        ({"heldout": {"target": "tasks", "fraction": 1.0}}, r"fraction must be < 1"),
        ({"source_weights": {"alpaca": -1}}, r"source_weights.alpaca: weight must be >= 0"),
        ({"few_shot": {"min_k": 3, "max_k": 2}}, r"few_shot: max_k \(2\) must be >= min_k"),
        ({"inversion": {"rate": 1.5}}, r"inversion: rate must lie in \[0, 1\]"),
        ({"temperature": 0}, r"temperature must be a number > 0"),
        ({"seed": "zero"}, r"seed must be an integer"),
        ({"budget": -5}, r"budget must be a positive integer"),
    ],
)
def test_invalid_recipes_name_the_key(raw, message):
    with pytest.raises(RecipeError, match=r"^my\.yaml: (\S+: )?" + message):
        recipe_from_dict(raw, origin="my.yaml")


def test_bad_yaml_file_and_unknown_preset(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("formats:\n  zero_shot: 0.5\n  few_shot: 0.5\n  cot: 0.5\n")
    with pytest.raises(RecipeError, match=r"r\.yaml: formats: proportions must sum to 1"):
        load_recipe(str(path))
    with pytest.raises(RecipeError, match="neither a preset"):
        load_recipe("flan2099")


def test_fingerprint_is_stable_and_follows_every_value():
    lecture = load_recipe("lecture")
    assert lecture.fingerprint() == load_recipe("lecture").fingerprint()
    assert len(lecture.fingerprint()) == 12
    raw = lecture.to_dict()
    raw["submixtures"][0]["cap"] = 29_999
    assert recipe_from_dict(raw).fingerprint() != lecture.fingerprint()
    raw = lecture.to_dict()
    raw["heldout"]["decontaminate"]["threshold"] = 0.7
    assert recipe_from_dict(raw).fingerprint() != lecture.fingerprint()


def test_round_trip_and_frozen_pairs():
    """to_dict -> recipe_from_dict is the identity; the run config's frozen pairs work too."""
    for name in ("lecture", "flan2022"):
        recipe = load_recipe(name)
        assert recipe_from_dict(recipe.to_dict()) == recipe
        frozen = {k: _freeze(v) for k, v in recipe.to_dict().items()}
        assert MixtureRecipe(**frozen) == recipe


def test_first_matching_submixture_wins_and_unmatched_is_none():
    recipe = recipe_from_dict(
        {
            "submixtures": [
                {"name": "sni", "sources": ["sni"], "cap": 10},
                {"name": "qa", "tasks": ["*_qa", "*question*"]},
            ]
        }
    )
    assert recipe.submixture_for("sni", "x_qa").name == "sni"
    assert recipe.submixture_for("p3", "x_qa").name == "qa"
    assert recipe.submixture_for("p3", "summary") is None
