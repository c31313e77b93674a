"""The recommendation's throughput and memory: the timing arithmetic on a clock whose answer is known, the saved-
activation count on tensors of known size, and the memory ceiling from a line with a known solution."""

import math

import pandas as pd
import pytest
import torch

from batchlab.config import Study
from batchlab.data import make_dataset
from batchlab.analysis import recommend
from batchlab.training import throughput

CPU = torch.device("cpu")
STUDY = {
    "data": {"name": "synthetic_ehr", "n_samples": 200, "n_features": 24, "n_factors": 3},
    "model": {"kind": "dense_ae", "hidden": [16], "latent": 4},
    "budget": {"unit": "epochs", "amount": 1},
    "batch_sizes": [2, 8, 32],
    "seeds": [0, 1],
}


class _SampleClock(throughput.Clock):
    """A clock that advances 1 ms for every sample a training step has taken: X(B) is 1,000 samples/s exactly."""

    def __init__(self):
        super().__init__(CPU)
        object.__setattr__(self, "samples", [0])

    def now(self) -> float:
        return self.samples[0] * 1e-3


@pytest.fixture(scope="module")
def study_and_data():
    study = Study.model_validate(STUDY)
    return study, make_dataset(study.data)


def test_throughput_is_samples_over_the_timed_steps_only(study_and_data, monkeypatch):
    study, data = study_and_data
    clock = _SampleClock()
    real = throughput.backward_in_parts

    def counted(model, loss_fn, x, y, parts, precision):
        clock.samples[0] += len(x)
        return real(model, loss_fn, x, y, parts, precision)

    monkeypatch.setattr(throughput, "backward_in_parts", counted)
    table = throughput.measure(study, data, [2, 8, 32], CPU, repeats=3, block_s=0.05, max_steps=10, clock=clock)
    assert len(table) == 9 and table["fits"].all()
    assert table["samples_per_s"].to_numpy() == pytest.approx(1000.0, rel=1e-12)
    # each block lasts at least block_s: 50 samples' worth of steps, at most max_steps
    assert table.groupby("batch_size")["steps"].first().to_dict() == {2: 10, 8: 7, 32: 2}
    summary = recommend.summary(table)
    assert summary["repeats"].tolist() == [3, 3, 3] and summary["samples_per_s"].tolist() == pytest.approx([1000.0] * 3)


def test_saved_bytes_count_what_the_backward_keeps():
    leaf = torch.ones(10, 7, requires_grad=True)
    with throughput._SavedBytes() as saved:
        torch.exp(leaf)  # saves its result: 70 float32 values
    assert saved.bytes == 70 * 4
    with throughput._SavedBytes() as saved:
        y = torch.exp(leaf)
        y.sum()  # saves nothing
    assert saved.bytes == 280


def test_activation_memory_grows_exactly_linearly_with_the_batch(study_and_data):
    study, data = study_and_data
    table = throughput.measure(study, data, [4, 8, 12], CPU, repeats=1, block_s=0.0, max_steps=1)
    act = table.set_index("batch_size")["activation_mb"]
    assert act[12] - act[8] == pytest.approx(act[8] - act[4], rel=1e-12) and act[8] > act[4]
    n_params = sum(p.numel() for p in __import__("batchlab.nets.models", fromlist=["x"]).build_model(
        study.model, tuple(data.x.shape[1:])).parameters())
    assert table["fixed_mb"].iloc[0] == pytest.approx(n_params * 4 * 4 / 2**20, rel=1e-12)  # weights, grads, 2 moments


def test_the_cpu_ceiling_solves_fixed_plus_per_sample_times_b():
    table = pd.DataFrame({"batch_size": [8, 32, 128], "device": "cpu", "fits": True, "fixed_mb": 10.0,
                          "activation_mb": [2 + 0.5 * b for b in (8, 32, 128)]})
    got = recommend.memory_ceiling(table, available_mb=1000.0, largest=1024)
    assert got["kind"] == "estimate" and got["per_sample_mb"] == pytest.approx(0.5, rel=1e-12)
    assert got["fixed_mb"] == pytest.approx(12.0, rel=1e-12)
    assert got["largest_fitting"] == math.floor(988 / 0.5) == 1976 and got["all_fit"]
    small = recommend.memory_ceiling(table, available_mb=100.0, largest=1024)
    assert small["largest_fitting"] == 176 and small["micro_batch_needed"] == 176 and not small["all_fit"]


def test_on_a_gpu_the_ceiling_is_the_largest_batch_size_that_fit():
    table = pd.DataFrame({"batch_size": [64, 256, 1024], "device": "NVIDIA H200", "fits": [True, True, False],
                          "fixed_mb": 1.0, "activation_mb": 1.0})
    got = recommend.memory_ceiling(table, available_mb=math.nan, largest=1024)
    assert got == {**got, "kind": "measured", "largest_fitting": 256, "all_fit": False, "micro_batch_needed": 256}
