"""Evaluation numbers against scikit-learn and hand-worked examples."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from cxr_keras.artifact.calibration import (
    brier_score,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
    sigmoid,
)
from cxr_keras.evaluation.metrics import (
    bootstrap_auc,
    discrimination,
    patient_groups,
    threshold_metrics,
)
from cxr_keras.evaluation.operating_points import (
    choose_thresholds,
    f1_max_threshold,
    sensitivity_threshold,
    youden_threshold,
)


@pytest.fixture(scope="module")
def scores():
    """200 cases, 2 labels, informative but imperfect scores, some labels unknown."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, size=(200, 2)).astype(float)
    p = np.clip(0.35 * y + rng.uniform(0, 0.65, size=y.shape), 0, 1)
    mask = np.ones_like(y)
    mask[rng.choice(200, 30, replace=False), 1] = 0
    return y, p, mask


def test_aucs_match_scikit_learn_and_skip_masked_entries(scores):
    y, p, mask = scores
    result = discrimination(y, p, mask=mask, labels=["A", "B"], n_resamples=200, seed=1)
    known = mask[:, 1] > 0
    assert result["labels"]["A"]["roc_auc"] == pytest.approx(roc_auc_score(y[:, 0], p[:, 0]))
    assert result["labels"]["B"]["roc_auc"] == pytest.approx(
        roc_auc_score(y[known, 1], p[known, 1])
    )
    assert result["labels"]["B"]["pr_auc"] == pytest.approx(
        average_precision_score(y[known, 1], p[known, 1])
    )
    assert result["labels"]["B"]["n"] == 170
    macro = np.mean([result["labels"][k]["roc_auc"] for k in "AB"])
    assert result["macro"]["roc_auc"] == pytest.approx(macro)
    pooled = mask > 0
    assert result["micro"]["roc_auc"] == pytest.approx(roc_auc_score(y[pooled], p[pooled]))


def test_bootstrap_interval_matches_a_direct_resampling(scores):
    y, p, mask = scores
    groups = patient_groups(None, len(y))
    ci = bootstrap_auc(y[:, :1], p[:, :1], mask=mask[:, :1], groups=groups, n_resamples=300, seed=3)
    rng = np.random.default_rng(3)
    direct = []
    for _ in range(300):
        rows = rng.integers(0, len(y), size=len(y))
        direct.append(roc_auc_score(y[rows, 0], p[rows, 0]))
    low, high, valid = ci["roc_auc"][0]
    assert valid == 300
    assert (low, high) == pytest.approx(tuple(np.quantile(direct, [0.025, 0.975])))
    point = roc_auc_score(y[:, 0], p[:, 0])
    assert low < point < high and 0.05 < high - low < 0.3


def test_patient_bootstrap_differs_from_image_bootstrap():
    # 40 patients with 5 near-identical images each: 200 images but 40 independent units
    rng = np.random.default_rng(0)
    patient_y = rng.integers(0, 2, size=40)
    patient_p = np.clip(0.3 * patient_y + rng.uniform(0, 0.7, size=40), 0, 1)
    y = np.repeat(patient_y, 5)[:, None].astype(float)
    p = (np.repeat(patient_p, 5) + rng.normal(0, 0.01, size=200))[:, None]
    ids = np.repeat(np.arange(40), 5)
    by_patient = discrimination(
        y, p, mask=np.ones_like(y), labels=["A"], patient_ids=ids.tolist(), n_resamples=400, seed=0
    )
    by_image = discrimination(
        y, p, mask=np.ones_like(y), labels=["A"], patient_ids=None, n_resamples=400, seed=0
    )
    assert by_patient["labels"]["A"]["roc_auc"] == by_image["labels"]["A"]["roc_auc"]
    width = {
        name: np.diff(r["labels"]["A"]["roc_auc_ci"])[0]
        for name, r in (("patient", by_patient), ("image", by_image))
    }
    # resampling images treats 5 copies as 5 cases: an interval about sqrt(5) too narrow
    assert width["patient"] > 1.6 * width["image"]
    assert by_patient["bootstrap"]["unit"] == "patient" and by_patient["bootstrap"]["groups"] == 40


def test_a_label_without_positives_is_undefined_not_zero():
    y = np.array([[0, 1], [0, 0], [0, 1], [0, 0]], dtype=float)
    p = np.array([[0.2, 0.9], [0.4, 0.1], [0.1, 0.8], [0.3, 0.3]])
    result = discrimination(y, p, mask=np.ones_like(y), labels=["Hernia", "Edema"], n_resamples=100)
    assert result["labels"]["Hernia"]["roc_auc"] is None
    assert result["labels"]["Hernia"]["defined"] is False
    assert result["macro"]["over_labels"] == ["Edema"]
    assert result["macro"]["roc_auc"] == result["labels"]["Edema"]["roc_auc"] == 1.0


def test_threshold_metrics_hand_computed():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.2, 0.7, 0.3, 0.1, 0.05])
    m = threshold_metrics(y, p, 0.5)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 3)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(3 / 4)
    assert m["precision"] == pytest.approx(2 / 3) and m["accuracy"] == pytest.approx(5 / 7)
    assert m["f1"] == pytest.approx(2 / 3)
    assert threshold_metrics(y, p, 0.95)["precision"] is None  # nothing called positive


def test_youden_threshold_hand_worked():
    # thresholds, sensitivity, specificity, J:
    #   0.8: 2/3, 1    -> 0.667     0.4: 2/3, 2/3 -> 0.333
    #   0.35: 1, 2/3   -> 0.667     0.9: 1/3, 1   -> 0.333
    # the tie goes to the higher threshold (fewer false alarms)
    # each threshold sits midway between the deciding score and the next lower one
    y = np.array([0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.3, 0.35, 0.4, 0.8, 0.9])
    assert youden_threshold(y, p) == pytest.approx((0.8 + 0.4) / 2)
    assert f1_max_threshold(y, p) == pytest.approx((0.35 + 0.3) / 2)  # F1 6/7 beats 4/5
    assert sensitivity_threshold(y, p, 0.95) == pytest.approx((0.35 + 0.3) / 2)
    assert sensitivity_threshold(y, p, 0.6) == pytest.approx((0.8 + 0.4) / 2)
    # a clean separation: midway between the classes
    separated = youden_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.7, 0.9]))
    assert separated == pytest.approx(0.45)


def test_no_threshold_sits_on_a_score_and_its_figures_are_reproduced(scores):
    """The defect: the Youden threshold equalled a film's probability, so that film
    flipped class with float noise and the stored figures were not reproduced."""
    y, p, mask = scores
    table, _ = choose_thresholds(y, p, mask=mask, labels=["A", "B"], min_sensitivity=0.9)
    for j, label in enumerate("AB"):
        known = mask[:, j] > 0
        yj, pj = y[known, j], p[known, j]
        for rule in table:
            t = table[rule][label]
            gap = np.abs(pj - t).min()
            assert gap > 1e-9, (rule, label, gap)
            # deciding at the threshold and at the lowest score called positive agree
            lowest_positive = pj[pj >= t].min()
            at_t = {**threshold_metrics(yj, pj, t), "threshold": None}
            assert at_t == {**threshold_metrics(yj, pj, lowest_positive), "threshold": None}


def test_sensitivity_rule_meets_its_target_on_the_data_it_was_chosen_on(scores):
    y, p, mask = scores
    table, notes = choose_thresholds(y, p, mask=mask, labels=["A", "B"], min_sensitivity=0.9)
    assert set(table) == {"youden", "f1_max", "sensitivity_0.9"} and notes == []
    for j, label in enumerate("AB"):
        known = mask[:, j] > 0
        t = table["sensitivity_0.9"][label]
        m = threshold_metrics(y[known, j], p[known, j], t)
        assert m["sensitivity"] >= 0.9
        # the highest such threshold: the next score up falls below the target
        higher = np.sort(p[known, j][p[known, j] > t])[1]
        assert threshold_metrics(y[known, j], p[known, j], higher)["sensitivity"] < 0.9


def test_single_class_label_falls_back_to_half_with_a_note():
    y = np.zeros((5, 1))
    table, notes = choose_thresholds(
        y, np.linspace(0, 1, 5)[:, None], mask=np.ones_like(y), labels=["X"]
    )
    assert table["youden"]["X"] == 0.5 and "X" in notes[0]


def test_ece_and_brier_hand_computed():
    y = np.array([0, 1, 1, 0])
    p = np.array([0.1, 0.9, 0.6, 0.6])
    # bins (15 equal): 0.1 -> bin 1; 0.6, 0.6 -> bin 9; 0.9 -> bin 13
    bins = reliability_bins(y, p)
    assert [b["count"] for b in bins] == [1, 2, 1]
    expected = (1 / 4) * 0.1 + (2 / 4) * abs(0.5 - 0.6) + (1 / 4) * 0.1
    assert expected_calibration_error(y, p) == pytest.approx(expected)
    assert brier_score(y, p) == pytest.approx(np.mean((p - y) ** 2))


def test_temperature_scaling_fixes_an_over_confident_model():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 1.5, size=(2000, 2))
    y = (rng.uniform(size=true_logits.shape) < sigmoid(true_logits)).astype(float)
    logits = 4.0 * true_logits  # deliberately over-confident
    mask = np.ones_like(y)
    temperatures = fit_temperature(logits, y, mask=mask)
    assert temperatures == pytest.approx([4.0, 4.0], rel=0.15)
    for j in range(2):
        before = negative_log_likelihood(logits[:, j], y[:, j])
        after = negative_log_likelihood(logits[:, j] / temperatures[j], y[:, j])
        assert after < 0.8 * before
    ece_before = expected_calibration_error(y, sigmoid(logits))
    ece_after = expected_calibration_error(y, sigmoid(logits / np.array(temperatures)))
    assert ece_after < 0.5 * ece_before


def test_temperature_of_a_single_class_label_stays_one():
    logits = np.array([[2.0], [3.0], [1.0]])
    assert fit_temperature(logits, np.ones_like(logits), mask=np.ones_like(logits)) == [1.0]


def test_a_label_with_no_known_entries_has_counts_zero_and_rates_undefined():
    m = threshold_metrics(np.array([]), np.array([]), 0.5)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (0, 0, 0, 0)
    assert m["accuracy"] is None and m["sensitivity"] is None


def test_threshold_stability_narrows_with_more_validation_patients():
    from cxr_keras.evaluation.operating_points import threshold_stability

    rng = np.random.default_rng(3)

    def spread(n: int) -> dict:
        y = rng.integers(0, 2, n)
        p = np.clip(0.35 * y + rng.normal(0.3, 0.15, n), 0, 1)
        return threshold_stability(
            y[:, None], p[:, None], mask=np.ones((n, 1)), labels=["A"], seed=1
        )

    small, large = spread(60), spread(2000)
    for rule in ("youden", "f1_max", "sensitivity_0.95"):
        assert large[rule]["A"]["width"] < small[rule]["A"]["width"]
        assert small[rule]["A"]["low"] <= small[rule]["A"]["median"] <= small[rule]["A"]["high"]
    # one class only: nothing to learn, the label is left out
    constant = threshold_stability(
        np.ones((10, 1)), np.full((10, 1), 0.7), mask=np.ones((10, 1)), labels=["A"]
    )
    assert constant["youden"] == {}


def test_roc_and_pr_auc_equal_scikit_learn_with_ties_and_tiny_samples():
    from cxr_keras.evaluation.metrics import roc_pr_auc

    rng = np.random.default_rng(7)
    for case in range(300):
        n = int(rng.integers(2, 60))
        y = rng.integers(0, 2, n)
        # coarse scores make many ties; some cases are all one score
        p = np.round(rng.random(n), int(rng.integers(0, 3))) if case % 5 else np.full(n, 0.3)
        roc, ap = roc_pr_auc(y, p)
        if y.min() == y.max():
            assert (roc, ap) == (None, None)
            continue
        assert roc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert ap == pytest.approx(average_precision_score(y, p), abs=1e-12)


def test_a_sensitivity_floor_over_groups_holds_in_the_worst_group():
    from cxr_keras.evaluation.operating_points import sensitivity_floor_over, sensitivity_threshold

    rng = np.random.default_rng(0)
    y = np.tile(rng.random(200) < 0.5, 3).astype(int)
    # group 1's positives score lower (a shift that hides the finding), group 2's higher
    p = np.concatenate([rng.random(200), rng.random(200) * 0.6, 0.4 + rng.random(200) * 0.6])
    p = np.where(y == 1, np.clip(p + 0.2, 0, 1), p)
    groups = np.repeat([0, 1, 2], 200)
    floor = sensitivity_floor_over(y, p, groups=groups, minimum=0.9)
    for g in range(3):
        rows = groups == g
        assert ((p[rows] >= floor) & (y[rows] == 1)).sum() / y[rows].sum() >= 0.9
    assert floor < sensitivity_threshold(y, p, 0.9)  # pooled, the floor would sit higher
    assert not np.isin(floor, p)
    # a group without positives says nothing about sensitivity: it is skipped
    alone = np.append(groups, [3, 3]), np.append(y, [0, 0]), np.append(p, [0.0, 0.99])
    assert sensitivity_floor_over(alone[1], alone[2], groups=alone[0], minimum=0.9) == floor
    with pytest.raises(ValueError, match="no group holds both classes"):
        sensitivity_floor_over(np.ones(4), p[:4], groups=np.arange(4), minimum=0.9)
