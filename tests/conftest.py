"""Shared test set-up: one torch thread per process and a deadline-free hypothesis profile.

On 2-core machines torch intermittently slows down 50x with 2 intra-op threads, so every
test process runs single-threaded. The `ci` profile (default) has no per-example deadline
so that CI never flakes on timing; `HYPOTHESIS_PROFILE=thorough` draws more examples.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

torch.set_num_threads(1)

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
