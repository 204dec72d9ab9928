"""Link-prediction models: IMVIA (paper Eq. 1-8, one module per part of the method) and structural baselines."""

from imvia_core.model.alignment import ContrastiveAlignment, symmetric_contrastive_loss
from imvia_core.model.base import KGCModel
from imvia_core.model.baselines import BaselineConfig, ComplEx, DistMult, PairRE, RotatE, TransE, TuckER
from imvia_core.model.disentangle import GaussianCLUB, ModalityCLUB, ViewCLUB
from imvia_core.model.execution import ExecutionOptions
from imvia_core.model.factory import MODEL_NAMES, build_model
from imvia_core.model.fusion import FusionOutput, MultiViewFusion
from imvia_core.model.imvia import IMVIA, IMVIAConfig, IMVIAInspection
from imvia_core.model.joint import JointEmbedding, JointOutput, RelationAwareDecisionFusion, fused_logit
from imvia_core.model.kernels.bce import one_to_n_bce, one_to_n_bce_reference
from imvia_core.model.tucker import RelationGroups, TuckerScorer, contract_by_relation

__all__ = [
    "BaselineConfig",
    "ComplEx",
    "ContrastiveAlignment",
    "DistMult",
    "ExecutionOptions",
    "FusionOutput",
    "GaussianCLUB",
    "IMVIA",
    "IMVIAConfig",
    "IMVIAInspection",
    "JointEmbedding",
    "JointOutput",
    "KGCModel",
    "MODEL_NAMES",
    "ModalityCLUB",
    "MultiViewFusion",
    "PairRE",
    "RelationAwareDecisionFusion",
    "RelationGroups",
    "RotatE",
    "TransE",
    "TuckER",
    "TuckerScorer",
    "ViewCLUB",
    "build_model",
    "contract_by_relation",
    "fused_logit",
    "one_to_n_bce",
    "one_to_n_bce_reference",
    "symmetric_contrastive_loss",
]
