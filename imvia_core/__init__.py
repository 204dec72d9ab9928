"""imvia_core: intra-modality multi-view fusion and inter-modality alignment for multi-modal KG completion.

Reference implementation of Li et al., "Unifying Within and Across: Intra-Modality Multi-View Fusion and
Inter-Modality Alignment for Knowledge Graph Completion", ICASSP 2025.
"""

import os as _os

__version__ = "0.1.0"

# OpenMP threads that wait by spinning hold their core even while another process needs it. On a 2-core machine with
# one other busy process, a 2-thread CI-profile TuckER run took 358 s with spinning and 29 s with passive waiting
# (the same numbers: only the waiting changes). Set before torch loads its OpenMP runtime; an explicit setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _tune_in_kernel() -> None:
    """In a Jupyter kernel (the notebooks), keep freed memory mapped as the command line does (see ``allocator``)."""
    import sys

    if "ipykernel" in sys.modules:
        from imvia_core.allocator import tune_allocator

        tune_allocator()


_tune_in_kernel()
