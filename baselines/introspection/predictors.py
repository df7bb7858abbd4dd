"""What a weight jump sets each weight to, from its values at four past steps.

Every predictor maps a ``(n, 4)`` block of histories (columns: the weight at the steps in
``positions``, the last being the current step ``t``) to ``(n,)`` new values. The jump
machinery (:mod:`.jumps`) calls it on blocks of the flattened network, so it never loops over
scalars. Section 5 of Sinha et al. (ICLR 2017) compares the introspection network with:

* a least-squares polynomial through the four points (linear, degree 1; quadratic, degree 2),
  evaluated at ``ratio * t`` (the paper: 1.1 / 1.075 for the linear fit, 1.25-1.4 for the
  quadratic). With ``x_i = position_i / t`` and the Vandermonde matrix ``X`` (``X_ij = x_i^j``),
  the fit's value at ``r`` is ``[1, r, ..., r^d] (X^T X)^{-1} X^T h = c . h``: one fixed linear
  combination of the four values, computed once per jump in float64;
* zero-mean Gaussian noise of a given standard deviation added to the current weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .net import IntrospectionNet


class Predictor:
    """Base class: ``predict(history, positions) -> new values``."""

    def predict(self, history: torch.Tensor, positions: Sequence[int]) -> torch.Tensor:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"kind": type(self).__name__}


class IntrospectionPredictor(Predictor):
    """The introspection network's prediction (its jump ratio is the one it was trained for).

    Fast path: the input and output scaling are folded into the layers once,
    ``(1000 W1) h + b1`` and ``(W2 / 1000) z + b2 / 1000``, so a block costs one ``addmm``, an
    in-place ReLU and one ``addmv`` in the weights' own dtype (tested against
    :meth:`IntrospectionNet.forward`)."""

    def __init__(self, net: IntrospectionNet):
        self.net = net
        self._folded: dict[tuple, tuple[torch.Tensor, ...]] = {}

    @torch.no_grad()
    def _layers(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        key = (device, dtype)
        if key not in self._folded:
            net, scale = self.net, self.net.scale

            def cast(t: torch.Tensor) -> torch.Tensor:
                return t.detach().to(device=device, dtype=dtype)

            self._folded[key] = (cast(net.inner.weight).T * scale, cast(net.inner.bias),
                                 cast(net.outer.weight)[0] / scale, cast(net.outer.bias) / scale)
        return self._folded[key]

    @torch.no_grad()
    def predict(self, history: torch.Tensor, positions: Sequence[int]) -> torch.Tensor:
        w1, b1, w2, b2 = self._layers(history.device, history.dtype)
        hidden = torch.addmm(b1, history, w1)
        if not self.net.linear:
            hidden.relu_()
        return torch.addmv(b2.expand(history.shape[0]), hidden, w2)

    def describe(self) -> dict:
        described = {"kind": "introspection", **self.net.settings()}
        if self.net.source is not None:
            described["weights"] = dict(self.net.source)
        return described


def fit_coefficients(positions: Sequence[float], degree: int, ratio: float) -> torch.Tensor:
    """``c`` such that ``c . h`` is the least-squares polynomial of ``degree`` through the points
    ``(position_i / t, h_i)``, evaluated at ``ratio`` (``t`` = the last position)."""
    t = float(positions[-1])
    x = torch.tensor([float(p) / t for p in positions], dtype=torch.float64)
    vandermonde = torch.stack([x ** j for j in range(degree + 1)], dim=1)
    at_ratio = torch.tensor([ratio ** j for j in range(degree + 1)], dtype=torch.float64)
    return at_ratio @ torch.linalg.pinv(vandermonde)


class PolynomialFit(Predictor):
    """Least-squares polynomial (degree 1 or 2) through the four points, at ``ratio * t``."""

    def __init__(self, degree: int, ratio: float):
        if degree not in (1, 2):
            raise ValueError(f"degree must be 1 (linear) or 2 (quadratic), got {degree}")
        if not ratio > 1:
            raise ValueError(f"ratio must be > 1 (a jump forward), got {ratio}")
        self.degree = degree
        self.ratio = float(ratio)

    def predict(self, history: torch.Tensor, positions: Sequence[int]) -> torch.Tensor:
        c = fit_coefficients(positions, self.degree, self.ratio)
        return history @ c.to(device=history.device, dtype=history.dtype)

    def describe(self) -> dict:
        return {"kind": "polynomial-fit", "degree": self.degree, "ratio": self.ratio}


class GaussianNoise(Predictor):
    """The current weight plus zero-mean Gaussian noise of standard deviation ``std``."""

    def __init__(self, std: float, *, seed: int = 0):
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std}")
        self.std = float(std)
        self.seed = seed
        self.generator: torch.Generator | None = None

    def predict(self, history: torch.Tensor, positions: Sequence[int]) -> torch.Tensor:
        if self.generator is None or self.generator.device != history.device:
            self.generator = torch.Generator(history.device).manual_seed(self.seed)
        noise = torch.randn(history.shape[0], generator=self.generator, device=history.device,
                            dtype=history.dtype)
        return history[:, -1] + self.std * noise

    def describe(self) -> dict:
        return {"kind": "gaussian-noise", "std": self.std, "seed": self.seed}
