import platform
import subprocess
import sys

import pytest

# Three warm-up training steps of a small 3-D conv net at 84³ (activations of 38 MB, above glibc's
# largest mmap threshold of 32 MB), then the page faults of a fourth. A single re-allocated block is not a
# reliable probe: torch's aligned allocations often do not fit the block just freed.
STEP_FAULTS = """
import resource, sys
import torch
from synthseg.device import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
torch.set_num_threads(2)
net = torch.nn.Sequential(torch.nn.Conv3d(1, 16, 3, padding=1), torch.nn.InstanceNorm3d(16), torch.nn.PReLU(),
                          torch.nn.Conv3d(16, 4, 3, padding=1))
x = torch.rand(1, 1, 84, 84, 84)
for _ in range(3):
    net(x).square().mean().backward()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
net(x).square().mean().backward()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults_of_a_step(mode: str) -> int:
    return int(subprocess.run([sys.executable, "-c", STEP_FAULTS, mode], check=True, capture_output=True,
                              text=True).stdout.split()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_retained_memory_is_reused_without_page_faults():
    default = faults_of_a_step("default")
    assert default > 50_000  # every large block is a fresh mmap whose pages fault in again
    # a second run when the first is high: a stray kernel event (one CI run saw 32k faults, against 0 in eight
    # others) must not decide it, while the default allocator faults ≈ 110k times in every run
    retained = faults_of_a_step("retain")
    if retained >= default // 5:
        retained = min(retained, faults_of_a_step("retain"))
    assert retained < default // 5
