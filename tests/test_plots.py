"""Figures: what each one draws (read back from the matplotlib figure before it is saved)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxr_keras.evaluation import plots


@pytest.fixture
def drawn(monkeypatch):
    """The figures handed to save_figure, kept open for inspection."""
    figures = []

    def keep(fig, path, dpi=90):
        figures.append(fig)
        return str(path)

    monkeypatch.setattr(plots, "save_figure", keep)
    return figures


def test_training_curves_add_an_accuracy_panel_when_it_was_logged(drawn, tmp_path):
    history = [
        {
            "epoch": e,
            "loss": 1 / (e + 1),
            "val_loss": 1.2 / (e + 1),
            "auc": 0.6 + e / 10,
            "val_auc": 0.55 + e / 10,
            "binary_accuracy": 0.5 + e / 10,
            "val_binary_accuracy": 0.45 + e / 10,
        }
        for e in range(3)
    ]
    plots.training_curves(history, "val_auc", tmp_path / "a.png")
    plots.training_curves(
        [{k: v for k, v in row.items() if "accuracy" not in k} for row in history],
        "val_auc",
        tmp_path / "b.png",
    )
    with_accuracy, without = drawn
    titles = [ax.get_title() for ax in with_accuracy.axes]
    assert titles == ["loss", "auc", "binary_accuracy"]
    assert [ax.get_title() for ax in without.axes] == ["loss", "auc"]
    lines = with_accuracy.axes[2].get_lines()
    assert [line.get_label() for line in lines] == ["binary_accuracy", "val_binary_accuracy"]
    assert list(lines[1].get_ydata()) == pytest.approx([0.45, 0.55, 0.65])


def test_co_occurrence_heatmap_writes_every_count(drawn, tmp_path):
    matrix = pd.DataFrame([[5, 2], [2, 3]], index=["A", "B"], columns=["A", "B"])
    plots.co_occurrence_heatmap(matrix, tmp_path / "co.png", "train split")
    ax = drawn[0].axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["2", "2", "3", "5"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B"]
    assert np.allclose(ax.images[0].get_array(), np.log1p(matrix.to_numpy()))
