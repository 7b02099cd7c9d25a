import platform
import subprocess
import sys

import pytest

# Allocate and free a 64 MB block a few times, as a training loop does; print the page faults of the last.
REUSE = """
import resource, sys
import torch
from synthseg.device import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
for _ in range(3):
    block = torch.ones(2 ** 24); del block
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = torch.ones(2 ** 24)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults_of_reallocation(mode: str) -> int:
    return int(subprocess.run([sys.executable, "-c", REUSE, mode], check=True, capture_output=True,
                              text=True).stdout.split()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_retained_memory_is_reused_without_page_faults():
    pages = 2 ** 26 // 4096
    assert faults_of_reallocation("default") > pages // 2  # a fresh mmap: every page faults in again
    assert faults_of_reallocation("retain") < pages // 20
