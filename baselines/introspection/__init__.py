"""Introspection weight jumps (Sinha et al., "Introspection: Accelerating Neural Network
Training by Learning Weight Evolution", ICLR 2017) and the paper's alternatives (linear and
quadratic fits, Gaussian noise), as plain PyTorch.

* :mod:`.net`: the introspection network ``I`` and the shipped, trained weights.
* :mod:`.jumps`: :class:`WeightJumps` (a wrapper over an optimizer, or a step post-hook) with
  the constructors :func:`IntrospectionJumps`, :func:`FitJumps`, :func:`NoiseJumps`.
* :mod:`.predictors`: what a jump sets each weight to.
* :mod:`.histories` and :mod:`.fitting`: training ``I`` from recorded weight histories.
"""

from .jumps import FitJumps, IntrospectionJumps, JumpSchedule, NoiseJumps, WeightJumps, history_steps
from .net import HISTORY_FRACTIONS, IntrospectionNet, load_net

__all__ = ["HISTORY_FRACTIONS", "FitJumps", "IntrospectionJumps", "IntrospectionNet",
           "JumpSchedule", "NoiseJumps", "WeightJumps", "history_steps", "load_net"]
