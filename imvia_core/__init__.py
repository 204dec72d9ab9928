"""imvia_core: intra-modality multi-view fusion and inter-modality alignment for multi-modal KG completion.

Reference implementation of Li et al., "Unifying Within and Across: Intra-Modality Multi-View Fusion and
Inter-Modality Alignment for Knowledge Graph Completion", ICASSP 2025.
"""

__version__ = "0.1.0"
