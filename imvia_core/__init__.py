"""imvia_core: intra-modality multi-view fusion and inter-modality alignment for multi-modal KG completion.

Reference implementation of Li et al., "Unifying Within and Across: Intra-Modality Multi-View Fusion and
Inter-Modality Alignment for Knowledge Graph Completion", ICASSP 2025.
"""

__version__ = "0.1.0"


def _tune_in_kernel() -> None:
    """In a Jupyter kernel (the notebooks), keep freed memory mapped as the command line does (see ``allocator``)."""
    import sys

    if "ipykernel" in sys.modules:
        from imvia_core.allocator import tune_allocator

        tune_allocator()


_tune_in_kernel()
