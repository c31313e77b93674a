"""The per-study critical-batch table's pieces against answers known by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from batchlab.analysis.at_target import geometric_mean
from batchlab.analysis.critical import with_caps


def test_geometric_mean_of_ten_and_a_thousand_is_a_hundred():
    assert geometric_mean(np.array([10.0, 1000.0])) == pytest.approx(100.0, rel=1e-12)
    assert geometric_mean(np.array([10.0, np.nan, 1000.0])) == pytest.approx(100.0, rel=1e-12)
    assert math.isnan(geometric_mean(np.array([])))


def test_a_run_whose_cap_lies_below_s_min_is_told_apart_from_one_that_had_the_steps():
    """Batch size 256 stopped at its cap of 195 updates, below S_min = 400: it could not reach the target.
    Batch size 64 stopped at 600 updates, above S_min, without reaching it: it had the steps."""
    steps = pd.DataFrame({"batch_size": [1, 64, 256], "seed": [0, 0, 0], "steps": [2300.0, np.nan, np.nan],
                          "reached": [True, False, False]})
    curves = pd.DataFrame({"batch_size": [1, 1, 64, 64, 256, 256], "seed": [0] * 6,
                           "step": [1000, 2345, 300, 600, 100, 195]})
    out = with_caps(steps, curves, s_min=400.0)
    assert out["last_step"].tolist() == [2345, 600, 195]
    assert out["cap_below_s_min"].tolist() == [False, False, True]
    assert not with_caps(steps, curves, s_min=math.nan)["cap_below_s_min"].any()  # no fit, no verdict on caps
