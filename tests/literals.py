"""The papers' equations written out literally in float64, shared by the tests that hold the
implementations to them: no buffers, no folding, no fused or multi-tensor ops."""

from fractions import Fraction

import numpy as np
import torch

from plp_baselines.introspection.net import IntrospectionNet


def plp_algorithm1(points: list[torch.Tensor], step: float) -> torch.Tensor:
    """Ying et al., Algorithm 1: midpoints of the cycle's three iterates, their slope, and the
    prediction one ``step`` along it."""
    w1, w2, w3 = points
    m12 = (w1 + w2) / 2
    m23 = (w2 + w3) / 2
    slope = m23 - m12
    return m23 + step * slope


def introspection_formula(net: IntrospectionNet, history: np.ndarray) -> np.ndarray:
    """Sinha et al. section 3 in float64: (W2 relu(W1 (1000 h) + b1) + b2) / 1000, row by row."""
    w1 = net.inner.weight.detach().double().numpy()
    b1 = net.inner.bias.detach().double().numpy()
    w2 = net.outer.weight.detach().double().numpy()[0]
    b2 = float(net.outer.bias.detach().double().numpy()[0])
    out = []
    for row in history:
        hidden = [sum(w1[j, i] * (1000.0 * row[i]) for i in range(4)) + b1[j]
                  for j in range(len(b1))]
        if not net.linear:
            hidden = [max(h, 0.0) for h in hidden]
        out.append((sum(w2[j] * hidden[j] for j in range(len(hidden))) + b2) / 1000.0)
    return np.array(out)


def jump_history(t: int) -> tuple[int, int, int, int]:
    """Sinha et al. section 3.2: a jump at ``t`` reads the weights at 0, 0.4 t, 0.7 t and t
    (rounded to the nearest step, halves up)."""
    return tuple(int(Fraction(f) * t + Fraction(1, 2)) for f in ("0", "2/5", "7/10", "1"))


def polynomial_fit_at(positions: tuple[int, ...], values: np.ndarray, degree: int,
                      ratio: float) -> np.ndarray:
    """Sinha et al. section 5's baselines: the least-squares polynomial of ``degree`` through
    ``(position / t, value)`` for each row of ``values``, evaluated at ``ratio``."""
    x = np.array(positions, dtype=np.float64) / positions[-1]
    return np.array([np.polyval(np.polyfit(x, row, degree), ratio) for row in values])
