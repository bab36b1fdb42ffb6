"""Mixing arithmetic: examples-proportional rates, per-task quotas, formats, hash sampling, stats.

Pure functions (no Beam). The rate of a task is seqio's ``mixing_rate_num_examples``::

    rate = n * scale;  rate = min(rate, maximum) if maximum;  rate = rate ** (1 / temperature)

times the weight of its source. Submixtures are combined as seqio combines sub-mixtures
(``Mixture.get_rate``): a task of submixture ``s`` gets probability
``R_s / sum(R) * rate_t / sum(rate in s)``. A materialised mixture of ``N`` training rows
(``recipe.budget``) takes what drawing ``N`` records *without replacement* from that
distribution comes to (``fill_budget``, in the large-N limit: ``N * p_t`` each; a task that
runs out keeps ``min(n_t, cap_t)`` and its leftover goes to the others by their rates). By default ``N`` is
``sum(min(n_t, cap_t))``, one epoch of the capped tasks: every task then contributes exactly
``min(n_t, cap_t)`` -- the lecture's rule -- and rates and temperature only shape a mixture
given a smaller budget (FLAN samples for a fixed number of steps; a file has no repeats).

Which records: a task keeps its ``quota_t`` records with the smallest ``hash(seed, id)``
(``threshold``): the same inputs give the same mixture, and a record stays in night after night
unless its task's quota or the recipe changes. Formats, answer options and inversion are seeded
hashes of the record id too -- never of its label.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from transforms.recipe import FORMATS, FormatMix, MixtureRecipe
from transforms.text import stable_hash

TRAIN, EVAL = "train", "eval"
VARIANT = "::"  # template id suffixes: base::opt (options listed), base::cot/NN (CoT pair NN)
_SCALE = float(2**63)


# --------------------------------------------------------------------------------------------
# Seeded hashes
# --------------------------------------------------------------------------------------------


def hash64(seed: int, *parts: str) -> int:
    """63-bit hash of (seed, parts), in [0, 2**63): fits Beam's signed 64-bit integer coder;
    identical on every runner and Python version."""
    return int(stable_hash(str(seed), *parts, digest_size=8), 16) >> 1


def unit(seed: int, *parts: str) -> float:
    """A uniform number in [0, 1) from (seed, parts)."""
    return hash64(seed, *parts) / _SCALE


_M64 = (1 << 64) - 1


def mix64(a: int, b: int) -> int:
    """splitmix64's finaliser of ``a + b * golden``: a cheap, fixed 63-bit mix of two hashes."""
    z = (a + b * 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return (z ^ (z >> 31)) >> 1


class Draws(NamedTuple):
    """Every seeded choice about one record, from one 64-byte BLAKE2b digest of (seed, id).

    Integers are 63-bit orders, floats uniform in [0, 1). None of them sees the record's label.
    """

    select: int  # order within its task: the smallest ``quota`` are kept (the cap)
    template: int  # rank within its template stratum
    exemplar: int  # place in its task's exemplar pool
    shot_order: int  # mixed with each exemplar's ``exemplar`` draw to order candidates
    split: float  # held-out templates: evaluation or training
    cot: float  # chain of thought (eligible records)
    shots: float  # zero- vs few-shot
    options: float  # answer options listed
    invert: float  # an extra inverted row (eligible records)
    k: float  # how many exemplars
    cot_template: float  # which CoT trigger/answer pair
    invert_template: float  # which inversion template


def draws(seed: int, record_id: str) -> Draws:
    """The record's ``Draws`` (one hash per record instead of one per decision)."""
    digest = bytes.fromhex(stable_hash(str(seed), "draws", record_id, digest_size=64))
    w = [int.from_bytes(digest[i : i + 8], "little") >> 1 for i in range(0, 64, 8)]
    return Draws(
        select=w[0],
        template=w[1],
        exemplar=w[2],
        shot_order=w[3],
        split=w[4] / _SCALE,
        cot=w[5] / _SCALE,
        shots=w[6] / _SCALE,
        options=w[7] / _SCALE,
        invert=mix64(w[4], 1) / _SCALE,
        k=mix64(w[5], 2) / _SCALE,
        cot_template=mix64(w[6], 3) / _SCALE,
        invert_template=mix64(w[7], 4) / _SCALE,
    )


# --------------------------------------------------------------------------------------------
# Rates and quotas
# --------------------------------------------------------------------------------------------


def mixing_rate_num_examples(
    num_examples: float,
    *,
    maximum: float | None = None,
    scale: float = 1.0,
    temperature: float = 1.0,
) -> float:
    """seqio's ``mixing_rate_num_examples`` on a count (its task argument reduced to ``n``).

    As seqio: scale first, then clip at ``maximum`` (a falsy maximum means no clip), then the
    temperature ``rate ** (1 / T)``.
    """
    rate = num_examples * scale
    if maximum:
        rate = min(rate, maximum)
    if temperature != 1.0:
        rate = rate ** (1.0 / temperature)
    return rate


class TaskCount(NamedTuple):
    """What the quota of one (split, task) depends on."""

    split: str
    task: str
    n: int  # records available after the held-out split and decontamination
    source: str  # the task's (majority) source, for its weight
    submixture: str


class Quota(NamedTuple):
    """The planned contribution of one (split, task)."""

    n: int  # available
    quota: int  # records to keep
    target: float  # the mixing probability of the task (train) or its share (eval)
    submixture: str
    source: str


def task_probabilities(counts: Sequence[TaskCount], recipe: MixtureRecipe) -> dict[str, float]:
    """Mixing probability per task of the training split (seqio rates, submixtures flattened)."""
    by_sub: dict[str, dict[str, float]] = defaultdict(dict)
    for c in counts:
        sub = recipe.submixture(c.submixture)
        rate = recipe.source_weight(c.source) * mixing_rate_num_examples(
            c.n, maximum=sub.cap, scale=recipe.scale, temperature=recipe.temperature
        )
        by_sub[c.submixture][c.task] = rate
    totals = {s: sum(rates.values()) for s, rates in by_sub.items()}
    live = {s for s, total in totals.items() if total > 0}
    top = sum(recipe.submixture(s).rate for s in live)
    out = {}
    for s, rates in by_sub.items():
        for task, rate in rates.items():
            out[task] = (
                recipe.submixture(s).rate / top * rate / totals[s] if s in live and top else 0.0
            )
    return out


def fill_budget(
    budget: float, probs: Mapping[str, float], limits: Mapping[str, int]
) -> dict[str, float]:
    """Counts of drawing ``budget`` records without replacement from the mixture (fluid limit).

    Water-filling: each task wants ``budget * p``; a task whose want reaches its limit (records
    available, capped) keeps the limit, and what it leaves is shared by the others in
    proportion to their ``p``, until nothing is saturated or nothing is left.
    """
    out: dict[str, float] = {}
    active = {t for t, p in probs.items() if p > 0 and limits[t] > 0}
    for t in probs:
        if t not in active:
            out[t] = 0.0
    remaining = float(budget)
    while active:
        mass = sum(probs[t] for t in active)
        wants = {t: remaining * probs[t] / mass for t in active}
        # a want within rounding of its limit is saturated (keeps min(n, cap) exact)
        full = {t for t in active if wants[t] >= limits[t] * (1 - 1e-12)}
        if not full:
            out.update(wants)
            break
        for t in full:
            out[t] = float(limits[t])
            remaining -= limits[t]
        active -= full
        if remaining <= 0:
            for t in active:
                out[t] = 0.0
            break
    return out


def plan_quotas(counts: Iterable[TaskCount], recipe: MixtureRecipe) -> dict[tuple, Quota]:
    """Quota per (split, task).

    Training: ``budget`` records (default: the sum of every task's ``min(n, cap)``, so each
    task contributes exactly ``min(n, cap)``, the lecture's rule) drawn from the seqio mixture
    without replacement (``fill_budget``), rounded. Evaluation: ``min(n, eval_cap)``.
    """
    counts = sorted(counts)
    train = [c for c in counts if c.split == TRAIN]
    caps = {c.task: recipe.submixture(c.submixture).cap for c in train}
    limits = {c.task: min(c.n, caps[c.task]) if caps[c.task] else c.n for c in train}
    probs = task_probabilities(train, recipe)
    budget = recipe.budget if recipe.budget is not None else sum(limits.values())
    expected = fill_budget(budget, probs, limits)
    out: dict[tuple, Quota] = {}
    for c in train:
        quota = min(limits[c.task], math.floor(expected[c.task] + 0.5))
        out[(c.split, c.task)] = Quota(c.n, quota, probs[c.task], c.submixture, c.source)
    others = [c for c in counts if c.split != TRAIN]
    eval_cap = recipe.heldout.eval_cap
    total = sum(min(c.n, eval_cap) if eval_cap else c.n for c in others)
    for c in others:
        quota = min(c.n, eval_cap) if eval_cap else c.n
        out[(c.split, c.task)] = Quota(
            c.n, quota, quota / total if total else 0.0, c.submixture, c.source
        )
    return out


def bound(recipe: MixtureRecipe, split: str, submixture: str) -> int | None:
    """The most records a (split, task) can keep: the cap known before counting (None: all)."""
    if split == TRAIN:
        return recipe.submixture(submixture).cap
    return recipe.heldout.eval_cap


def threshold(smallest: Sequence[int], n: int, quota: int) -> int | None:
    """Largest selected hash given the task's sorted smallest hashes; None keeps everything.

    A record is selected iff ``hash <= threshold``: exactly ``quota`` records (63-bit hashes of
    distinct ids collide with probability ~n^2 / 2^64).
    """
    if quota >= n:
        return None
    if quota <= 0:
        return -1
    return smallest[quota - 1]


# --------------------------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------------------------


class FormatPlan(NamedTuple):
    """Odds of chain of thought and of inversion in one (split, submixture)."""

    records: int  # selected records
    cot_eligible: int  # ... with a real rationale
    cot_probability: float  # of CoT for an eligible record
    invert_eligible: int  # ... with a free-text output to invert
    invert_probability: float  # of an extra inverted row for an eligible record


def format_plan(
    formats: FormatMix,
    inversion_rate: float,
    records: int,
    cot_eligible: int,
    invert_eligible: int,
) -> FormatPlan:
    """Odds that hit the recipe's shares over *all* records using only the eligible ones.

    CoT goes to records with a rationale only: ``p = min(1, cot * records / eligible)``; when
    rationales are scarce every eligible record is CoT and the shortfall is reported -- no
    rationale is ever made up. Inversion likewise aims at ``rate`` inverted rows per included
    record (FLAN's "-II" sets at rate 0.3 beside their base sets at 1), from eligible records.
    """

    def odds(share: float, eligible: int) -> float:
        if share <= 0 or eligible <= 0:
            return 0.0
        return min(1.0, share * records / eligible)

    return FormatPlan(
        records,
        cot_eligible,
        odds(formats.cot, cot_eligible),
        invert_eligible,
        odds(inversion_rate, invert_eligible),
    )


def choose_format(
    u_cot: float, u_shots: float, *, eligible: bool, formats: FormatMix, p_cot: float
) -> str:
    """zero_shot / few_shot / cot for one record from two uniform numbers of its id.

    CoT for an eligible record with ``u_cot < p_cot``; otherwise zero- vs few-shot in the
    recipe's ratio (so a CoT shortfall is spread over the two in proportion).
    """
    if eligible and u_cot < p_cot:
        return "cot"
    zs, fs = formats.zero_shot, formats.few_shot
    if zs + fs <= 0:
        return "zero_shot"
    return "zero_shot" if u_shots < zs / (zs + fs) else "few_shot"


# --------------------------------------------------------------------------------------------
# Realised vs recipe: the manifest's mixture section
# --------------------------------------------------------------------------------------------

STAT_FIELDS = (
    "split",
    "dimension",
    "key",
    "count",
    "proportion",
    "target",
    "target_count",
    "detail",
)
# Dimensions counted over base rows (one per included record).
BASE_DIMENSIONS = (
    "source",
    "submixture",
    "task",
    "template",
    "template_family",
    "format",
    "requested_format",
    "lang",
    "options",
)


def base_template(template_id: str) -> str:
    """The template a row was dealt, without the answer-options and CoT variants."""
    return template_id.split(VARIANT, 1)[0]


def row_stat_keys(row: Mapping) -> list[tuple[str, str, str]]:
    """The (split, dimension, key) counters one mixture row adds to."""
    split = row["split"]
    keys = [(split, "rows", "inverted" if row["inverted"] else "base")]
    if row["inverted"]:
        keys.append((split, "inverted_task", row["task"] or ""))
        keys.append((split, "inverted_submixture", row["submixture"] or ""))
        return keys
    options = row.get("options_in_prompt")
    values = {
        "source": row["source"] or "",
        "submixture": row["submixture"] or "",
        "task": row["task"] or "",
        "template": f"{row['task'] or ''}|{row['template_id']}",
        "template_family": row["template_family"] or "",
        "format": row["format"],
        "requested_format": row["requested_format"],
        "lang": row["lang"] or "und",
        "options": "na" if options is None else ("opt" if options else "noopt"),
    }
    keys.extend((split, dim, values[dim]) for dim in BASE_DIMENSIONS)
    keys.append((split, "cot_by_submixture", f"{values['submixture']}|{row['format']}"))
    return keys


def _row(split, dimension, key, count, denominator, target=None, target_count=None, detail=None):
    return {
        "split": split,
        "dimension": dimension,
        "key": key,
        "count": int(count),
        "proportion": count / denominator if denominator else 0.0,
        "target": target,
        "target_count": target_count,
        "detail": detail,
    }


def stats_rows(
    counts: Mapping[tuple[str, str, str], int],
    quotas: Mapping[tuple, Quota],
    plans: Mapping[tuple, FormatPlan],
    recipe: MixtureRecipe,
    left_out: Mapping[tuple[str, str], int] | None = None,
) -> list[dict]:
    """Rows of realised counts and proportions, each beside the recipe's target where it has one.

    ``counts`` from ``row_stat_keys``; ``quotas`` from ``plan_quotas``; ``plans`` per
    (split, submixture) from ``format_plan``; ``left_out`` per (split, reason).
    """
    table: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for (split, dim, key), n in counts.items():
        table[split][dim][key] = n
    out: list[dict] = []
    for split in sorted(table):
        dims = table[split]
        base = dims["rows"].get("base", 0)
        inverted = dims["rows"].get("inverted", 0)
        total = base + inverted
        out.append(_row(split, "rows", "all", total, total))
        out.append(_row(split, "rows", "base", base, total))
        q = {t: v for (s, t), v in quotas.items() if s == split}
        # tasks: realised next to quota (target_count) and mixing probability (target)
        for task in sorted(set(q) | set(dims["task"])):
            plan = q.get(task)
            out.append(
                _row(
                    split,
                    "task",
                    task,
                    dims["task"].get(task, 0),
                    base,
                    target=plan.target if plan else None,
                    target_count=plan.quota if plan else None,
                    detail=f"available {plan.n}, submixture {plan.submixture}" if plan else None,
                )
            )
        for dim, attr in (("source", "source"), ("submixture", "submixture")):
            targets: dict[str, float] = defaultdict(float)
            quota_sum: dict[str, int] = defaultdict(int)
            for plan in q.values():
                targets[getattr(plan, attr)] += plan.target
                quota_sum[getattr(plan, attr)] += plan.quota
            for key in sorted(set(targets) | set(dims[dim])):
                out.append(
                    _row(
                        split,
                        dim,
                        key,
                        dims[dim].get(key, 0),
                        base,
                        target=targets.get(key),
                        target_count=quota_sum.get(key),
                    )
                )
        # formats: target = the recipe's shares weighted by each submixture's realised rows
        format_targets = _format_targets(split, dims["submixture"], recipe)
        for name in FORMATS:
            for dim in ("format", "requested_format"):
                out.append(
                    _row(
                        split,
                        dim,
                        name,
                        dims[dim].get(name, 0),
                        base,
                        target=format_targets.get(name) if dim == "format" else None,
                    )
                )
        for (s, sub), plan in sorted(plans.items()):
            if s != split:
                continue
            rows_sub = dims["submixture"].get(sub, 0)
            submixture = recipe.submixture(sub)
            train = split == TRAIN
            for dim, realised, want, eligible in (
                (
                    "cot",
                    dims["cot_by_submixture"].get(f"{sub}|cot", 0),
                    recipe.formats_for(submixture).cot if train else 0.0,
                    plan.cot_eligible,
                ),
                (
                    "inversion",
                    dims["inverted_submixture"].get(sub, 0),
                    recipe.inversion_rate_for(submixture) if train else 0.0,
                    plan.invert_eligible,
                ),
            ):
                # The shortfall is structural (too few eligible records), not sampling noise.
                possible = eligible / plan.records if plan.records else 0.0
                out.append(
                    _row(
                        split,
                        dim,
                        sub,
                        realised,
                        rows_sub,
                        target=want,
                        target_count=math.floor(want * rows_sub + 0.5),
                        detail=(
                            f"eligible {eligible} of {plan.records}; "
                            f"shortfall {max(0.0, want - possible):.4f}"
                        ),
                    )
                )
        for dim in ("lang", "template_family", "options"):
            for key in sorted(dims[dim]):
                out.append(_row(split, dim, key, dims[dim][key], base))
        # templates: per (task, template), and the number of distinct templates per task
        per_task: dict[str, set] = defaultdict(set)
        for key in sorted(dims["template"]):
            out.append(_row(split, "template", key, dims["template"][key], base))
            task, template_id = key.split("|", 1)
            per_task[task].add(base_template(template_id))
        for task in sorted(per_task):
            n = len(per_task[task])
            out.append(
                _row(
                    split,
                    "templates_per_task",
                    task,
                    n,
                    n,
                    target_count=recipe.templates_per_task,
                    detail="distinct base templates (without ::opt / ::cot/NN)",
                )
            )
        out.append(
            _row(
                split,
                "inverted",
                "rows",
                inverted,
                total,
                detail=f"inverted rows per base row: {_inversion_detail(recipe)}",
            )
        )
        for task in sorted(dims["inverted_task"]):
            out.append(_row(split, "inverted_task", task, dims["inverted_task"][task], inverted))
    for (split, reason), n in sorted((left_out or {}).items()):
        out.append(_row(split, "left_out", reason, n, sum((left_out or {}).values())))
    return out


def _format_targets(split: str, sub_rows: Mapping[str, int], recipe: MixtureRecipe) -> dict:
    if split != TRAIN:
        return {"zero_shot": 1.0, "few_shot": 0.0, "cot": 0.0}
    total = sum(sub_rows.values())
    out: dict[str, float] = defaultdict(float)
    for sub, n in sub_rows.items():
        formats = recipe.formats_for(recipe.submixture(sub))
        for name in FORMATS:
            out[name] += formats.share(name) * n / total if total else 0.0
    return dict(out)


def _inversion_detail(recipe: MixtureRecipe) -> str:
    rates = {s.name: recipe.inversion_rate_for(s) for s in recipe.submixtures}
    return ", ".join(f"{k} {v:g}" for k, v in rates.items())


def manifest_section(rows: Iterable[Mapping], recipe: MixtureRecipe) -> dict:
    """The ``mixture`` block of ``manifest.json`` from stats rows."""
    section: dict = {
        "recipe": recipe.name,
        "fingerprint": recipe.fingerprint(),
        "config": recipe.to_dict(),
        "splits": {},
    }
    for row in rows:
        split = section["splits"].setdefault(row["split"], {})
        entry = {"count": row["count"], "proportion": round(row["proportion"], 6)}
        for key in ("target", "target_count", "detail"):
            if row.get(key) is not None:
                entry[key] = round(row[key], 6) if isinstance(row[key], float) else row[key]
        split.setdefault(row["dimension"], {})[row["key"]] = entry
    return section
