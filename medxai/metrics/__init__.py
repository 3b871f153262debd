"""Map-quality metrics: localisation, sparseness, agreement and faithfulness.

Pure numpy/scipy (no TensorFlow import): usable on saved ``.npy`` maps in a
notebook. Localisation scores need a ground-truth mask and are NaN for an
empty one or a constant map; :func:`summarise` ignores NaN.
"""

from medxai.metrics.comparison import compare_methods, paired_difference, recommend
from medxai.metrics.faithfulness import curve_area, deletion_curve, insertion_curve
from medxai.metrics.road import noisy_linear_imputation, road_curve, road_score
from medxai.metrics.scores import (
    bootstrap_mean_ci,
    gini,
    pointing_game,
    rank_correlation,
    relevance_mass,
    summarise,
    topk_iou,
)

__all__ = [
    "bootstrap_mean_ci",
    "compare_methods",
    "curve_area",
    "deletion_curve",
    "gini",
    "insertion_curve",
    "noisy_linear_imputation",
    "paired_difference",
    "pointing_game",
    "rank_correlation",
    "recommend",
    "relevance_mass",
    "road_curve",
    "road_score",
    "summarise",
    "topk_iou",
]
