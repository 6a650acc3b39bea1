"""OpenMP's share of the cores for test processes running side by side (imports nothing heavy)."""

import os


def limit_openmp_to_share_of_cores(processes: int) -> None:
    """Each of `processes` concurrent processes gets its share of the cores for OpenMP (LightGBM,
    torch), unless OMP_THREAD_LIMIT is set already. Call before either library loads: two
    processes each spinning two OpenMP threads on 2 cores ran the training tests 4.8x slower."""
    os.environ.setdefault("OMP_THREAD_LIMIT", str(max(1, (os.cpu_count() or 1) // processes)))
