"""theory-derivation.md in code: self-distillation as label averaging.

* :mod:`~selfdistill.theory.block` - the block model's Gram matrix and features, its
  eigenvalues ``mu0, mu1, mu2``, ``a_j``, the plurality ``gap``, ``t*`` (§3).
* :mod:`~selfdistill.theory.linear` - the linearised trajectory ``P_t - U = A^t (Y - U)``
  for any features via the thin SVD (§2), and its accuracy on real embeddings.
* :mod:`~selfdistill.theory.exact` - exact softmax fixed points round by round, fitted by
  the product's own pipeline (§1).
* :mod:`~selfdistill.theory.population` - pure §3 math of one labelling (condition, ``t*``)
  and of the population limit (accuracy per round from the transition matrix).
* :mod:`~selfdistill.theory.experiment` - the ``selfdistill theory`` drivers (keyword
  arguments only): one draw round by round, the population view over noise rates, the lam
  sweep.
* :mod:`~selfdistill.theory.plots`, :mod:`~selfdistill.theory.report` - figures and the
  "theory vs measurement" report section.

Round numbering: theory-derivation.md's round ``t`` is ``P_t`` and ``P_1`` is the teacher, so the
product's model ``sd-s`` is derivation round ``s + 1``. Every ``rounds`` argument counts SD
rounds after the teacher (as ``selfdistill fit --rounds``); trajectories therefore have
``rounds + 1`` entries and entry ``i`` is the teacher (``i = 0``) or ``sd-i``.

Examples
--------
>>> import numpy as np
>>> from selfdistill.theory import BlockModel, shrink_factors
>>> bm = BlockModel(K=4, n=200, c=0.4, d=0.1)
>>> mu0, mu1, mu2 = bm.eigenvalues()
>>> [round(float(a), 4) for a in shrink_factors(np.array([mu0, mu1, mu2]), 4, bm.N, 1e-4)]
[0.9977, 0.9947, 0.6522]
"""

from .block import (
    BlockModel,
    block_round,
    block_trajectory,
    class_label_means,
    plurality_gap,
    rounds_needed,
    shrink_factors,
)
from .exact import ExactTrajectory, exact_trajectory
from .experiment import (
    lam_sweep,
    model_name,
    noisy_block_labels,
    population_view,
    run_block_experiment,
)
from .linear import GramSpectrum, linearised_pll, linearised_sd_accuracy, linearised_trajectory
from .plots import (
    plot_block_experiment,
    plot_lam_sweep,
    plot_population,
    plot_theory_vs_measurement,
)
from .population import condition, population_accuracy
from .report import theory_curve, theory_section, theory_section_runs, theory_table_rows

__all__ = [
    "BlockModel",
    "shrink_factors",
    "class_label_means",
    "plurality_gap",
    "rounds_needed",
    "block_round",
    "block_trajectory",
    "GramSpectrum",
    "linearised_trajectory",
    "linearised_pll",
    "linearised_sd_accuracy",
    "ExactTrajectory",
    "exact_trajectory",
    "condition",
    "noisy_block_labels",
    "run_block_experiment",
    "population_accuracy",
    "population_view",
    "lam_sweep",
    "model_name",
    "plot_block_experiment",
    "plot_population",
    "plot_lam_sweep",
    "plot_theory_vs_measurement",
    "theory_curve",
    "theory_section",
    "theory_section_runs",
    "theory_table_rows",
]
