"""Fault-injection suite: damaged artifacts, bad inputs, full disks and killed processes.

A package (unlike tests/), so its conftest and modules are `faults.*` and never shadow the
top-level `conftest` that the other test modules import helpers from.
"""

import pytest

# The invariants are plain asserts in a helper module: have pytest explain their failures too.
pytest.register_assert_rewrite("faults.invariants")
