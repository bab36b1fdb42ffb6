"""Template-leakage statistics computed from one shard's merged counts (pure, no Beam).

From ``ShardCounts`` (exact integer counts) this module derives, per shard:

* per token-label pair: PMI (bits), normalised PMI (NPMI, in [-1, 1]) and the z-statistic of
  Gardner et al. (2021, "Competency Problems", §4): ``z = (p̂ - p0) / sqrt(p0 (1 - p0) / n)``
  with ``p̂ = p(label | token)``, ``n`` the records containing the token and ``p0`` the shard's
  label prior (their paper uses a uniform prior). A token is flagged when its NPMI exceeds the
  threshold for exactly one label (the lecture's "PMI > 0.5", which is NPMI), with at least
  ``min_count`` such records and a z above the one-sided critical value at ``alpha``
  (Bonferroni over the shard's tests): a rare token with NPMI 1.0 by chance is not flagged;
* template-label association: Cramér's V (plain and Bergsma's bias-corrected) and mutual
  information over the template x label table, with the numbers of templates and labels;
* labels spelled inside the template: a label spelled in its own records' templates and not
  in the others' is an answer leak ("... Answer yes."); spelled in all of them it is a listed
  choice ("yes or no?"), reported but not flagged;
* a template-only baseline: k-fold cross-validated accuracy (records hashed into folds by
  id) of a naive-Bayes classifier (binary template-token features, Laplace smoothing) that
  sees the template tokens alone, against the majority-class rate. Prediction depends only on
  a record's token set and fold, so it is computed exactly from per-(token set, label, fold)
  counts, without revisiting records. It is flagged when it
  beats the majority rate by ``baseline_margin`` and the token-set x label table rejects
  independence (Pearson chi-square at ``alpha``): on a small task a few templates beat the
  majority by chance. Template-label association is flagged on the same terms (V and p).

Every float is a function of integer counts evaluated in a fixed (sorted) order, so the
statistics are bit-identical whatever the runner, the sharding or the merge order.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from transforms.leakage_config import LeakageConfig
from transforms.leakage_counts import ShardCounts, ShardKey, shard_name

TOKEN_LABEL_LEAK = "token_label_leak"
TEMPLATE_LABEL_ASSOCIATION = "template_label_association"
TEMPLATE_BASELINE = "template_baseline"
LABEL_IN_TEMPLATE = "label_in_template"


def z_critical(alpha: float, n_tests: int) -> float:
    """One-sided critical z at ``alpha`` shared by ``n_tests`` tests (Bonferroni)."""
    return NormalDist().inv_cdf(1.0 - alpha / max(1, n_tests))


def pmi_npmi(n_pair: int, n_token: int, n_label: int, n: int) -> tuple[float, float]:
    """PMI in bits and NPMI of a token-label pair from counts (``n_pair`` > 0)."""
    # Integer true division is correctly rounded: a perfectly predictive token gives the
    # same float for PMI and its normaliser, hence NPMI exactly 1.0.
    pmi = math.log2((n_pair * n) / (n_token * n_label))
    if n_pair == n:
        return pmi, 0.0  # token and label everywhere: no information either way
    npmi = pmi / math.log2(n / n_pair)
    return pmi, max(-1.0, min(1.0, npmi))


def gardner_z(n_pair: int, n_token: int, prior: float) -> float:
    """z of p(label | token) against the label prior (Gardner et al. 2021)."""
    if prior <= 0.0 or prior >= 1.0:
        return 0.0
    p_hat = n_pair / n_token
    return (p_hat - prior) / math.sqrt(prior * (1.0 - prior) / n_token)


def token_rows(counts: ShardCounts, config: LeakageConfig, tables=None) -> list[dict]:
    """One row per co-occurring token-label pair, sorted by (token, label)."""
    labels = counts.labels
    n = counts.n_labelled
    if len(labels) < 2 or n == 0:
        return []
    token_counts, pairs = tables or counts.token_tables()
    n_tests = len(token_counts) * len(labels) if config.bonferroni else 1
    z_crit = z_critical(config.alpha, n_tests)
    rows = []
    for token, label in sorted(pairs):
        n_pair = pairs[(token, label)]
        n_token = token_counts[token]
        n_label = labels[label]
        prior = n_label / n
        pmi, npmi = pmi_npmi(n_pair, n_token, n_label, n)
        z = gardner_z(n_pair, n_token, prior)
        rows.append(
            {
                "token": token,
                "label": label,
                "n_shard": n,
                "n_token": n_token,
                "n_label": n_label,
                "n_pair": n_pair,
                "p_label_given_token": n_pair / n_token,
                "prior": prior,
                "pmi": pmi,
                "npmi": npmi,
                "z": z,
                "significant": z > z_crit,
                "flagged": False,
            }
        )
    over: dict[str, int] = {}  # token -> labels with NPMI above the threshold
    for row in rows:
        if row["npmi"] > config.npmi_threshold:
            over[row["token"]] = over.get(row["token"], 0) + 1
    for row in rows:
        row["flagged"] = (
            row["npmi"] > config.npmi_threshold
            and over[row["token"]] == 1
            and row["n_pair"] >= config.min_count
            and (row["significant"] or not config.require_significance)
        )
    return rows


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X ~ chi-square(df): the regularised upper incomplete gamma Q(df/2, x/2)."""
    if x <= 0.0:
        return 1.0
    a, z = df / 2.0, x / 2.0
    log_front = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1.0:  # series for the lower function P, then Q = 1 - P
        term = total = 1.0 / a
        k = a
        for _ in range(10_000):
            k += 1.0
            term *= z / k
            total += term
            if term < total * 1e-15:
                break
        return max(0.0, 1.0 - math.exp(log_front) * total)
    # Continued fraction for Q (modified Lentz).
    tiny = 1e-300
    b = z + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)


def independence_p(table: dict[tuple, int], labels: dict[str, int]) -> float | None:
    """Pearson chi-square p-value of rows (templates or token sets) x labels; None if 1 x k."""
    n = sum(labels.values())
    row_totals: dict = {}
    for (row, _), count in table.items():
        row_totals[row] = row_totals.get(row, 0) + count
    if len(row_totals) < 2 or len(labels) < 2:
        return None
    chi2 = 0.0
    for row in sorted(row_totals):
        r = row_totals[row]
        for label in sorted(labels):
            expected = r * labels[label] / n
            chi2 += (table.get((row, label), 0) - expected) ** 2 / expected
    return chi2_sf(chi2, (len(row_totals) - 1) * (len(labels) - 1))


def association(counts: ShardCounts) -> dict:
    """Template x label association: Cramér's V (plain, bias-corrected), MI, NMI, p-value."""
    table = counts.template_labels
    n = counts.n_labelled
    row_totals: dict[str, int] = {}
    for (template, _), count in table.items():
        row_totals[template] = row_totals.get(template, 0) + count
    templates = sorted(row_totals)
    labels = sorted(counts.labels)
    out = {
        "n_templates": len(templates),
        "n_labels": len(labels),
        "cramers_v": None,
        "cramers_v_corrected": None,
        "mutual_info": None,
        "normalized_mi": None,
        "p_value": None,
    }
    if len(templates) < 2 or len(labels) < 2 or n < 2:
        return out
    chi2 = 0.0
    mi = 0.0
    for template in templates:
        r = row_totals[template]
        for label in labels:
            c = counts.labels[label]
            observed = table.get((template, label), 0)
            expected = r * c / n
            chi2 += (observed - expected) ** 2 / expected
            if observed:
                mi += observed / n * math.log2(observed * n / (r * c))
    k = min(len(templates), len(labels))
    out["cramers_v"] = math.sqrt(chi2 / (n * (k - 1)))
    # Bergsma (2013): small shards with many templates inflate V; correct for it.
    phi2 = max(0.0, chi2 / n - (len(templates) - 1) * (len(labels) - 1) / (n - 1))
    r_corr = len(templates) - (len(templates) - 1) ** 2 / (n - 1)
    c_corr = len(labels) - (len(labels) - 1) ** 2 / (n - 1)
    denom = min(r_corr - 1, c_corr - 1)
    out["cramers_v_corrected"] = math.sqrt(phi2 / denom) if denom > 0 else None
    out["mutual_info"] = max(0.0, mi)
    h_label = entropy_bits([counts.labels[label] for label in labels])
    out["normalized_mi"] = max(0.0, mi) / h_label if h_label > 0 else None
    out["p_value"] = chi2_sf(chi2, (len(templates) - 1) * (len(labels) - 1))
    return out


def signature_table(counts: ShardCounts) -> dict[tuple, int]:
    """(template token set, label) -> records, over all folds (what the baseline sees)."""
    table: dict[tuple, int] = {}
    for (signature, label, _), count in counts.signatures.items():
        table[(signature, label)] = table.get((signature, label), 0) + count
    return table


def entropy_bits(counts: list[int]) -> float:
    """Shannon entropy (bits) of a count vector, summed in the given order."""
    total = sum(counts)
    h = 0.0
    for c in counts:
        if c:
            h -= c / total * math.log2(c / total)
    return h


def normalized_entropy(counts: list[int]) -> float | None:
    """Entropy divided by its maximum (1.0 = perfectly balanced); None below two classes."""
    present = [c for c in counts if c]
    if len(present) < 2:
        return None
    return entropy_bits(present) / math.log2(len(present))


def template_baseline(counts: ShardCounts, config: LeakageConfig, tables=None) -> float | None:
    """Cross-validated accuracy of template-token naive Bayes; None when signatures overflowed.

    Fold ``f``'s records are predicted from token counts without fold ``f``; the class prior is
    the whole shard's (held-out priors anti-correlate with the held-out labels: a balanced task
    would score below chance). Scores equal to 1e-9 are ties, broken by label.
    """
    n = counts.n_labelled
    if counts.overflow or n == 0:
        return None
    labels = sorted(counts.labels)
    if len(labels) < 2:
        return 1.0
    token_counts, pairs = tables or counts.token_tables()
    a = config.nb_smoothing
    vocab = len(token_counts)
    total_tokens = {label: 0 for label in labels}  # token occurrences per label (presence)
    fold_pairs: dict[int, dict[tuple[str, str], int]] = {}
    fold_tokens: dict[int, dict[str, int]] = {}
    by_fold: dict[int, dict[tuple[str, ...], dict[str, int]]] = {}
    for (signature, label, fold), count in counts.signatures.items():
        total_tokens[label] += len(signature) * count
        fold_tokens.setdefault(fold, {}).setdefault(label, 0)
        fold_tokens[fold][label] += len(signature) * count
        held = fold_pairs.setdefault(fold, {})
        for token in signature:
            held[(token, label)] = held.get((token, label), 0) + count
        by_fold.setdefault(fold, {}).setdefault(signature, {})[label] = count
    priors = {y: math.log(counts.labels[y] + a) for y in labels}
    correct = 0
    for fold in sorted(by_fold):
        held, held_tokens = fold_pairs[fold], fold_tokens[fold]
        for signature in sorted(by_fold[fold]):
            scores = {}
            for y in labels:
                score = priors[y]
                if signature:  # an empty template: the prior alone decides
                    denominator = total_tokens[y] - held_tokens.get(y, 0) + a * vocab
                    score += sum(
                        math.log(pairs.get((t, y), 0) - held.get((t, y), 0) + a) for t in signature
                    ) - len(signature) * math.log(denominator)
                scores[y] = round(score, 9)
            best = max(labels, key=lambda y: (scores[y], y))
            correct += by_fold[fold][signature].get(best, 0)
    return correct / n


def spelled(counts: ShardCounts, config: LeakageConfig) -> tuple[list[str], list[str]]:
    """``(labels spelled only in their own templates, labels listed in every template)``."""
    leaking, listed = [], []
    n = counts.n_labelled
    for label in sorted(counts.labels):
        n_label = counts.labels[label]
        own = counts.own_spelled.get(label, 0) / n_label
        others = n - n_label
        other = counts.other_spelled.get(label, 0) / others if others else None
        if own < config.spelled_threshold:
            continue
        if other is not None and own - other >= config.spelled_threshold:
            leaking.append(label)
        else:
            listed.append(label)
    return leaking, listed


def _counts_list(table: dict[str, int], field: str) -> list[dict]:
    return [{field: k, "n": v} for k, v in sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))]


def shard_stats(key: ShardKey, counts: ShardCounts, config: LeakageConfig) -> tuple[dict, list]:
    """The shard's row for shards.parquet and its token rows for tokens.parquet."""
    ident = shard_identity(key)
    tables = counts.token_tables()
    rows = token_rows(counts, config, tables)
    for row in rows:
        row.update(ident)
    n = counts.n_labelled
    assoc = association(counts)
    baseline = template_baseline(counts, config, tables)
    majority_label, majority_n = (
        min(counts.labels.items(), key=lambda kv: (-kv[1], kv[0])) if counts.labels else (None, 0)
    )
    majority = majority_n / n if n else None
    leaking, listed = spelled(counts, config) if n else ([], [])
    flagged_rows = [r for r in rows if r["flagged"]]
    reasons, notes = [], []
    if flagged_rows:
        reasons.append(TOKEN_LABEL_LEAK)
    v = assoc["cramers_v_corrected"]
    associated = not config.require_significance or (
        assoc["p_value"] is not None and assoc["p_value"] < config.alpha
    )
    if v is not None and v >= config.association_threshold and associated:
        reasons.append(TEMPLATE_LABEL_ASSOCIATION)
    lift = None if baseline is None or majority is None else baseline - majority
    baseline_p = (
        None if baseline is None else independence_p(signature_table(counts), counts.labels)
    )
    significant = not config.require_significance or (
        baseline_p is not None and baseline_p < config.alpha
    )
    if lift is not None and lift >= config.baseline_margin and significant:
        reasons.append(TEMPLATE_BASELINE)
    if leaking:
        reasons.append(LABEL_IN_TEMPLATE)
    if counts.n_unlabelled:
        notes.append(f"skipped_unlabelled:{counts.n_unlabelled}")
    if n and len(counts.labels) == 1:
        notes.append("single_label")
    if listed:
        notes.append("labels_listed:" + ",".join(listed))
    if n and baseline is None:
        notes.append("baseline_unavailable:too_many_signatures")
    top = sorted(
        rows, key=lambda r: (not r["flagged"], -r["npmi"], -r["z"], r["token"], r["label"])
    )
    score_parts = [r["npmi"] for r in flagged_rows]
    if TEMPLATE_LABEL_ASSOCIATION in reasons:
        score_parts.append(v)
    if TEMPLATE_BASELINE in reasons and majority < 1.0:
        score_parts.append(lift / (1.0 - majority))
    if leaking:
        score_parts.append(1.0)
    shard = {
        **ident,
        "n_records": counts.n_records,
        "n_labelled": n,
        "n_skipped_unlabelled": counts.n_unlabelled,
        "n_labels": len(counts.labels),
        "n_templates": len(counts.templates),
        "label_counts": _counts_list(counts.labels, "label"),
        "template_counts": _counts_list(counts.templates, "template"),
        "label_entropy": normalized_entropy([counts.labels[k] for k in sorted(counts.labels)]),
        "majority_label": majority_label,
        "majority_rate": majority,
        "template_baseline": baseline,
        "baseline_lift": lift,
        "baseline_p": baseline_p,
        "cramers_v": assoc["cramers_v"],
        "cramers_v_corrected": v,
        "mutual_info": assoc["mutual_info"],
        "normalized_mi": assoc["normalized_mi"],
        "association_p": assoc["p_value"],
        "n_tokens": len({r["token"] for r in rows}),
        "n_flagged_tokens": len({r["token"] for r in flagged_rows}),
        "max_npmi": max((r["npmi"] for r in rows), default=None),
        "top_tokens": [
            {k: r[k] for k in ("token", "label", "npmi", "z", "n_pair", "flagged")}
            for r in top[: config.top_tokens]
        ],
        "labels_in_own_template": leaking,
        "labels_listed": listed,
        "flagged": bool(reasons),
        "reasons": reasons,
        "notes": notes,
        "leak_score": max(score_parts, default=0.0),
    }
    return shard, rows


def shard_identity(key: ShardKey) -> dict:
    """The identity columns shared by a shard's rows."""
    kind = key[0]
    return {
        "shard": shard_name(key),
        "shard_kind": kind,
        "task": key[1] if kind != "file" else None,
        "template_id": key[2] if kind == "task_template" else None,
        "source_file": key[1] if kind == "file" else None,
    }
