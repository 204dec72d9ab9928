"""imvia_core: intra-modality multi-view fusion and inter-modality alignment for multi-modal KG completion.

Reference implementation of Li et al., "Unifying Within and Across: Intra-Modality Multi-View Fusion and
Inter-Modality Alignment for Knowledge Graph Completion", ICASSP 2025.
"""

import os as _os

__version__ = "0.1.0"

# OpenMP threads that wait by spinning hold their core even while another process needs it; threads that sleep at
# once pay a wake-up in every small parallel region. A 2-thread CI-profile TuckER run on the 2-core machine took
# 13.3 s (default spinning) / 32.3 s (OMP_WAIT_POLICY=PASSIVE) / 12.1 s (GOMP_SPINCOUNT=20000) when idle, and 358 s /
# 21.6 s / 51.5 s beside busy processes, with the same numbers each time. A bounded spin is the default here; it is
# set before torch loads its OpenMP runtime, and an explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ.setdefault("GOMP_SPINCOUNT", "20000")


def _tune_in_kernel() -> None:
    """In a Jupyter kernel (the notebooks), keep freed memory mapped as the command line does (see ``allocator``)."""
    import sys

    if "ipykernel" in sys.modules:
        # only inside a Jupyter kernel: a plain import of the package loads none of its modules
        from imvia_core.allocator import tune_allocator

        tune_allocator()


_tune_in_kernel()
