"""Numbers reported in the IMVIA paper (Li et al., ICASSP 2025, Table II), for comparison only.

Values are MRR, Hits@1, Hits@3 and Hits@10 in percent, as printed in the paper. The paper's DB15K column is titled
"MMKB-DB15K". Most of these numbers were selected on the test set by their authors (method.md), so they are
optimistic; this project's own numbers are selected on validation.
"""

from __future__ import annotations

__all__ = ["TABLE_I", "TABLE_I_COLUMNS", "TABLE_II", "TABLE_II_METRICS", "DATASETS", "UNIMODAL", "MULTIMODAL"]

DATASETS = ("DB15K", "MKG-W", "MKG-Y")

#: columns of Table I: entities, relations, triples per split, entities with images and with text
TABLE_I_COLUMNS = ("entities", "relations", "train", "valid", "test", "image", "text")

#: Table I of the paper as printed. DB15K's published files hold 9904 valid and 9902 test lines: the paper has the two
#: swapped (see the dataset README).
TABLE_I: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "DB15K": (12842, 279, 79222, 9902, 9904, 12818, 9078),
    "MKG-W": (15000, 169, 34196, 4276, 4274, 14463, 14123),
    "MKG-Y": (15000, 28, 21310, 2665, 2663, 14244, 12305),
}
TABLE_II_METRICS = ("MRR", "H@1", "H@3", "H@10")

#: model -> dataset -> (MRR, H@1, H@3, H@10), percent
TABLE_II: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "TransE": {"DB15K": (23.03, 14.78, 26.28, 39.59), "MKG-W": (29.19, 21.06, 33.20, 44.23), "MKG-Y": (30.73, 23.45, 35.18, 43.37)},
    "DistMult": {"DB15K": (27.48, 18.37, 31.57, 45.37), "MKG-W": (20.99, 15.94, 22.28, 30.86), "MKG-Y": (25.04, 19.33, 27.80, 35.95)},
    "ComplEx": {"DB15K": (29.28, 17.87, 36.12, 49.66), "MKG-W": (24.93, 19.09, 26.69, 36.73), "MKG-Y": (28.71, 22.26, 32.12, 40.93)},
    "RotatE": {"DB15K": (29.28, 17.87, 36.12, 49.66), "MKG-W": (33.67, 26.80, 36.68, 46.73), "MKG-Y": (34.95, 29.10, 38.35, 45.30)},
    "PairRE": {"DB15K": (31.12, 21.62, 35.91, 49.30), "MKG-W": (34.40, 28.24, 36.71, 46.04), "MKG-Y": (32.01, 25.53, 35.84, 43.89)},
    "GC-OTE": {"DB15K": (31.85, 22.11, 36.52, 51.18), "MKG-W": (33.92, 26.55, 35.96, 46.05), "MKG-Y": (32.95, 26.77, 36.44, 44.08)},
    "IKRL": {"DB15K": (26.82, 14.09, 34.93, 49.09), "MKG-W": (32.36, 26.11, 34.75, 44.07), "MKG-Y": (33.22, 30.37, 34.28, 38.26)},
    "TBKGK": {"DB15K": (28.40, 15.61, 37.03, 49.86), "MKG-W": (31.48, 25.31, 33.98, 43.24), "MKG-Y": (33.99, 30.47, 35.27, 40.07)},
    "TransAE": {"DB15K": (28.09, 21.25, 31.17, 41.17), "MKG-W": (30.00, 21.23, 34.91, 44.72), "MKG-Y": (28.10, 25.31, 29.10, 33.03)},
    "MMKRL": {"DB15K": (26.81, 13.85, 35.07, 49.39), "MKG-W": (30.10, 22.16, 34.09, 44.69), "MKG-Y": (36.81, 31.66, 39.79, 45.31)},
    "RSME": {"DB15K": (29.76, 24.15, 32.12, 40.29), "MKG-W": (29.23, 23.36, 31.97, 40.43), "MKG-Y": (34.44, 31.78, 36.07, 39.09)},
    "VBKGK": {"DB15K": (30.61, 19.75, 37.18, 49.44), "MKG-W": (30.61, 24.91, 33.01, 40.88), "MKG-Y": (37.04, 33.76, 38.75, 42.30)},
    "OTKGE": {"DB15K": (23.86, 18.45, 25.89, 34.23), "MKG-W": (34.36, 28.85, 36.25, 44.88), "MKG-Y": (35.51, 31.97, 37.18, 41.38)},
    "KBGAN(TransE)": {"DB15K": (25.73, 9.91, 36.95, 51.93), "MKG-W": (29.47, 22.21, 34.87, 40.64), "MKG-Y": (29.71, 22.81, 34.88, 40.21)},
    "MANS": {"DB15K": (28.82, 16.87, 36.58, 49.26), "MKG-W": (30.88, 24.89, 33.63, 41.78), "MKG-Y": (29.03, 25.25, 31.35, 34.49)},
    "MMRNS": {"DB15K": (32.68, 23.01, 37.86, 51.01), "MKG-W": (35.03, 28.59, 37.49, 47.47), "MKG-Y": (35.93, 30.53, 39.07, 45.47)},
    "IMVIA": {"DB15K": (38.29, 30.34, 42.29, 53.55), "MKG-W": (35.62, 30.22, 37.70, 46.35), "MKG-Y": (37.97, 35.15, 39.56, 43.47)},
}  # fmt: skip

UNIMODAL = ("TransE", "DistMult", "ComplEx", "RotatE", "PairRE", "GC-OTE")
MULTIMODAL = ("IKRL", "TBKGK", "TransAE", "MMKRL", "RSME", "VBKGK", "OTKGE", "KBGAN(TransE)", "MANS", "MMRNS", "IMVIA")
