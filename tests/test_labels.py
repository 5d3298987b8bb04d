"""Canonical label names and the uncertain/blank label policies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxr_keras.data.labels import (
    apply_label_policy,
    canonical_label,
    invalid_label_cells,
    is_known_label,
    same_label,
)


def test_aliases_map_to_one_name_and_case_is_kept():
    assert canonical_label("Pleural Effusion") == canonical_label("Effusion") == "Effusion"
    assert canonical_label("Infiltrate") == "Infiltration"
    assert canonical_label("Pleural Thickening") == "Pleural_Thickening"
    assert canonical_label(" no_finding ") == "No Finding"
    assert canonical_label("PNEUMONIA") == "PNEUMONIA"
    assert same_label("PNEUMONIA", "Pneumonia")
    assert not same_label("Mass", "Nodule")
    assert is_known_label("pleural effusion") and not is_known_label("Banana")


@pytest.mark.parametrize(
    ("uncertain", "blank", "expected"),
    [
        ("zeros", "zeros", [1.0, 0.0, 0.0, 0.0]),
        ("ones", "zeros", [1.0, 0.0, 1.0, 0.0]),
        ("ignore", "zeros", [1.0, 0.0, np.nan, 0.0]),
        ("ones", "ignore", [1.0, 0.0, 1.0, np.nan]),
    ],
)
def test_policies(uncertain, blank, expected):
    cells = pd.Series(["1.0", "0.0", "-1.0", ""])
    out = apply_label_policy(cells, uncertain=uncertain, blank=blank)
    np.testing.assert_array_equal(out.to_numpy(), np.array(expected))


def test_invalid_cells_are_found_and_refused():
    cells = pd.Series(["1", "2", "yes", "", None, "-1"])
    assert invalid_label_cells(cells).tolist() == [False, True, True, False, False, False]
    with pytest.raises(ValueError, match="'2' is not 1, 0, -1 or blank"):
        apply_label_policy(cells)
    with pytest.raises(ValueError, match="label policy"):
        apply_label_policy(pd.Series(["1"]), uncertain="maybe")
