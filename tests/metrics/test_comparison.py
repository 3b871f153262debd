"""Method comparison: paired bootstrap intervals, ranks with ties, flags and the recommendation rule."""

from __future__ import annotations

import numpy as np
import pytest

from medxai.metrics import compare_methods, paired_difference, recommend
from medxai.metrics.comparison import (
    MIN_SANITY_IMAGES,
    Difference,
    group_ranks,
    model_insensitive,
)

PASS = {"verdict": "PASS", "images": 20, "seeds": 3, "final_spearman_sd": 0.05, "final_spearman_abs_sd": 0.05}
FAIL = {**PASS, "verdict": "FAIL"}


def test_the_paired_interval_covers_a_known_difference_at_the_nominal_rate():
    """95 % intervals of a known paired mean difference (0.1) over 200 seeded repeats: coverage within [0.88, 0.99]."""
    rng = np.random.default_rng(2024)
    covered = 0
    for repeat in range(200):
        shared = rng.normal(0.5, 0.3, size=40)  # what both maps of an image share (cancels in the pair)
        a = dict(enumerate(shared + 0.1 + rng.normal(0, 0.2, size=40)))
        b = dict(enumerate(shared + rng.normal(0, 0.2, size=40)))
        _, low, high, n = paired_difference(a, b, seed=repeat)
        covered += low <= 0.1 <= high
        assert n == 40
    assert 0.88 <= covered / 200 <= 0.99


def test_pairs_are_matched_by_key_and_the_seed_fixes_the_interval():
    a = {("img0", "1"): 0.2, ("img1", "1"): 0.4, ("img2", "1"): float("nan"), ("img3", "0"): 0.9}
    b = {("img1", "1"): 0.1, ("img0", "1"): 0.1, ("img2", "1"): 0.3}
    diff, low, high, n = paired_difference(a, b, seed=1)
    assert n == 2 and diff == pytest.approx(0.2)  # (0.2 - 0.1 + 0.4 - 0.1) / 2; NaN and unpaired keys left out
    assert paired_difference(a, b, seed=1) == (diff, low, high, n)
    values = {"road": {"x": a, "y": b, "z": {}}}
    assert [(d.method_a, d.method_b) for d in compare_methods(values)] == [("x", "y")]


def test_ranks_tie_where_no_interval_separates_the_methods():
    rng = np.random.default_rng(0)
    base = rng.random(30)
    values = {
        "deletion_auc": {
            "good": dict(enumerate(base - 0.2)),
            "also_good": dict(enumerate(base - 0.2 + rng.normal(0, 0.01, 30))),
            "bad": dict(enumerate(base)),
        }
    }
    differences = compare_methods(values)
    ranks = group_ranks(differences, ["good", "also_good", "bad"], ["deletion_auc", "insertion_auc", "road"])
    assert ranks == {"good": 1, "also_good": 1, "bad": 3}
    # with fewer than MIN_PAIRS shared maps nothing separates them
    few = {"deletion_auc": {m: dict(list(v.items())[:5]) for m, v in values["deletion_auc"].items()}}
    assert set(group_ranks(compare_methods(few), ["good", "also_good", "bad"], ["deletion_auc"]).values()) == {1}


def test_a_method_failing_randomisation_is_never_recommended_even_when_best_everywhere():
    differences = [
        Difference(metric, "cheat", "honest", diff, low, high, 50)
        for metric, diff, low, high in [
            ("deletion_auc", -0.3, -0.4, -0.2),
            ("insertion_auc", 0.3, 0.2, 0.4),
            ("road", -0.3, -0.4, -0.2),
            ("relevance_mass", 0.3, 0.2, 0.4),
        ]
    ]
    result = recommend(["cheat", "honest"], differences, sanity={"cheat": FAIL, "honest": PASS})
    rows = {v.method: v for v in result.methods}
    assert rows["cheat"].faithfulness_rank == 1 and rows["honest"].faithfulness_rank == 2
    assert not rows["cheat"].recommended and "fails the randomisation check" in rows["cheat"].why
    assert rows["honest"].recommended  # the only eligible one: nothing eligible dominates it
    # with both passing, the better one dominates
    both = recommend(["cheat", "honest"], differences, sanity={"cheat": PASS, "honest": PASS})
    assert [v.recommended for v in both.methods] == [True, False]
    assert "dominated by cheat (faithfulness, localisation)" in both.methods[1].why
    # no randomisation check: nothing is recommended
    assert not any(v.recommended for v in recommend(["cheat", "honest"], differences).methods)


def test_trade_offs_recommend_both_methods():
    differences = [
        Difference("road", "a", "b", -0.2, -0.3, -0.1, 40),  # a is more faithful
        Difference("topk_iou", "a", "b", -0.2, -0.3, -0.1, 40),  # b localises better
    ]
    result = recommend(["a", "b"], differences, sanity={"a": PASS, "b": PASS})
    assert [(v.faithfulness_rank, v.localisation_rank, v.recommended) for v in result.methods] == [
        (1, 2, True),
        (2, 1, True),
    ]


def test_an_insensitive_model_is_flagged_and_gets_no_faithfulness_rank():
    flat = {"a": [(0.5, 0.5)] * 20, "b": [(0.49, 0.51)] * 20}
    assert model_insensitive(flat) == (True, pytest.approx(0.02))
    assert model_insensitive({"a": [(0.2, 0.7)], "b": [(0.5, 0.5)]})[0] is False  # one method's curves react
    differences = [Difference("deletion_auc", "a", "b", -0.01, -0.015, -0.005, 20)]
    result = recommend(["a", "b"], differences, sanity={"a": PASS, "b": PASS}, curves=flat)
    assert all(v.flags == ["model_insensitive"] and v.faithfulness_rank is None for v in result.methods)
    assert all(v.recommended for v in result.methods)  # the tiny deletion difference separates nothing
    assert any("does not react to deletion" in note for note in result.notes)


def test_underpowered_randomisation_checks_say_why():
    few = {**PASS, "images": 4}
    spread = {**PASS, "final_spearman_sd": 0.43}
    result = recommend(["a", "b", "c"], [], sanity={"a": few, "b": spread, "c": PASS})
    assert [v.flags for v in result.methods] == [["sanity_underpowered"], ["sanity_underpowered"], []]
    assert f"sanity_underpowered (a): 4 image(s), fewer than {MIN_SANITY_IMAGES}" in result.notes
    assert any(n.startswith("sanity_underpowered (b): SD over seeds of the final signed correlation 0.430") for n in
               result.notes)  # fmt: skip
    assert all(v.recommended for v in result.methods)  # a caveat, not a failed check


def test_unstable_maps_are_flagged_and_not_recommended():
    result = recommend(
        ["a", "b", "c"], [], sanity={"a": PASS, "b": PASS, "c": PASS}, stability={"a": [0.1, 0.2], "b": [0.9, 0.7]}
    )
    rows = {v.method: v for v in result.methods}
    assert rows["a"].stability == pytest.approx(0.15) and rows["c"].stability is None
    assert rows["b"].flags == ["unstable"] and not rows["b"].recommended
    assert rows["a"].recommended and rows["c"].recommended and rows["c"].flags == []
    zero_map = recommend(["z"], [], sanity={"z": PASS}, stability={"z": [0.1, float("inf")]}).methods[0]
    assert zero_map.flags == ["unstable"]  # a zero map that changes under noise: an infinite relative change
    failing = recommend(["b"], [], sanity={"b": FAIL}, stability={"b": [0.9]}).methods[0]
    assert failing.why.startswith("not recommended: fails the randomisation") and failing.why.endswith("also unstable")
    csv_row = rows["b"].row()
    assert list(csv_row) == [
        "method", "randomisation", "faithfulness_rank", "localisation_rank", "stability", "recommended", "flags"
    ]  # fmt: skip
    assert csv_row["recommended"] == "no" and csv_row["faithfulness_rank"] == "" and csv_row["flags"] == "unstable"
    table = result.table()
    assert "recommended" in table and "rule:" in table and "unstable (b)" in table
