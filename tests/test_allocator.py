"""The allocator keeps what a training step frees: page faults fall, and the numbers stay the same."""

import subprocess
import sys

import pytest

from batchlab.jobs.allocator import keep_freed_memory

# A small training loop of the default EHR study's shape (1866 features, a 256-unit layer, Adam, batch 2):
# prints its minor page faults and a digest of its final weights.
LOOP = """
import resource, sys, torch
from batchlab.jobs.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.manual_seed(0)
torch.set_num_threads(1)
model = torch.nn.Sequential(torch.nn.Linear(1866, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1866))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x = torch.rand(64, 1866)
def step(i):
    batch = x[(2 * i) % 64:(2 * i) % 64 + 2]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch), batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
step(0)  # the first step's allocations are new in both
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(1, 300):
    step(i)
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
with torch.no_grad():
    print(after - before, float(sum(p.double().sum() for p in model.parameters())).hex())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_kept_memory_cuts_the_page_faults_of_a_training_loop_and_changes_no_number():
    runs = {}
    for mode in ("default", "keep"):
        out = subprocess.run([sys.executable, "-c", LOOP, mode], capture_output=True, text=True, check=True)
        faults, digest = out.stdout.split()
        runs[mode] = int(faults), digest
    assert runs["keep"][1] == runs["default"][1]
    assert runs["default"][0] > 20 * max(runs["keep"][0], 100), runs


def test_keep_freed_memory_reports_whether_it_applied():
    assert keep_freed_memory() is (sys.platform.startswith("linux") and "musl" not in sys.version)
