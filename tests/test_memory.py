"""retain_freed_memory(): freed tensors are reused without new page faults (glibc only)."""

import subprocess
import sys

import pytest

CHILD = """
import resource, sys, torch
from core.memory import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # reach a steady state (the heap needs a few rounds to hold reusable blocks)
    x = torch.ones(16 * 2**20)  # 64 MiB, above glibc's largest mmap threshold
    del x
before = faults()
for _ in range(10):
    x = torch.ones(16 * 2**20)
    del x
print(faults() - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_freed_memory_is_reused_without_page_faults():
    default, retained = _faults("default"), _faults("retain")
    # 10 x 64 MiB = 163,840 pages of 4 KiB: by default each allocation faults all of them in again.
    assert default > 100_000
    assert retained < default / 20
