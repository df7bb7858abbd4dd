"""The introspection network I of Sinha et al., "Introspection: Accelerating Neural Network
Training by Learning Weight Evolution" (ICLR 2017), section 3.

I maps the history of one scalar weight to its future value. Its input is the weight at the
steps ``0, 0.4 t, 0.7 t, t`` (:data:`HISTORY_FRACTIONS`); its output is the weight at
``ratio * t`` (the paper: ``ratio = 2``). It is a feed-forward net with one hidden layer of 40
ReLU units; values are multiplied by ``scale = 1000`` on the way in and divided by it on the
way out:

    I(w) = (W2 relu(W1 (1000 w) + b1) + b2) / 1000,   W1: 40 x 4,  W2: 1 x 40

The linear variant the paper compares with drops the ReLU. Every scalar weight of a network is
an independent row, so a whole network is predicted in one batched forward pass.

Shipped weights are plain state dicts read with ``torch.load(weights_only=True)``, so loading
never runs code from the file.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

HISTORY_FRACTIONS = (0.0, 0.4, 0.7, 1.0)
SHIPPED = {"introspection": False, "introspection-linear": True}  # name -> linear?
SHIPPED_FILE = "introspection.pt"
PROVENANCE_FILE = "introspection.json"


class IntrospectionNet(nn.Module):
    r"""The introspection network :math:`I` (Sinha et al., ICLR 2017, section 3): four past
    values of one scalar weight, at steps :math:`0, 0.4t, 0.7t, t`, to its value at
    :math:`\text{ratio} \cdot t`,

    .. math::

        I(w) = \big(W_2 \, \mathrm{relu}(W_1 (s\, w) + b_1) + b_2\big) / s

    Args:
        hidden: hidden units (the paper: 40).
        linear: drop the ReLU (the paper's linear introspection baseline).
        scale: :math:`s`, the input and output scaling (the paper: 1000).
        ratio: how far ahead it predicts, as a multiple of :math:`t` (the paper: 2).

    How it differs from the paper: none in the architecture; the shipped weights were trained
    on this harness's own N0 histories (``introspection.json`` beside them says how), not
    taken from the paper. ``source`` names the file and net :func:`load_net` read.
    """

    def __init__(self, *, hidden: int = 40, linear: bool = False, scale: float = 1000.0,
                 ratio: float = 2.0) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if not ratio > 1:
            raise ValueError(f"ratio must be > 1 (a jump forward), got {ratio}")
        self.hidden = hidden
        self.linear = linear
        self.scale = float(scale)
        self.ratio = float(ratio)
        self.inner = nn.Linear(len(HISTORY_FRACTIONS), hidden)
        self.outer = nn.Linear(hidden, 1)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        """``history``: ``(n, 4)`` weight values (not scaled); returns the ``(n,)`` predictions."""
        hidden = self.inner(history * self.scale)
        if not self.linear:
            hidden = torch.relu(hidden)
        return self.outer(hidden).squeeze(-1) / self.scale

    source: dict[str, str] | None = None  # set by load_net: the file and net it came from

    def settings(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "linear": self.linear, "scale": self.scale,
                "ratio": self.ratio}


def shipped_path(filename: str = SHIPPED_FILE) -> Path:
    return Path(str(resources.files(__package__) / "weights" / filename))


def read_weights_file(path: str | Path) -> dict[str, Any]:
    """The contents of a weights file written by ``plp-bench introspection train``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such introspection weights file; write one with "
                                f"'plp-bench introspection train --out {path}'")
    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a corrupt or foreign file: say which file, not how it failed
        raise ValueError(f"{path}: not a readable introspection weights file ({error})") from None
    if not isinstance(contents, dict) or "nets" not in contents:
        raise ValueError(f"{path}: not an introspection weights file (no 'nets' entry)")
    return contents


def load_net(name: str = "introspection", path: str | Path | None = None) -> IntrospectionNet:
    """A trained ``I``: ``name`` is ``introspection`` (ReLU) or ``introspection-linear``;
    ``path`` is a weights file (default: the one shipped with this package)."""
    file = shipped_path() if path is None else Path(path)
    contents = read_weights_file(file)
    nets = contents["nets"]
    if name not in nets:
        raise ValueError(f"{path or shipped_path()}: has no net {name!r}; it has "
                         f"{', '.join(sorted(nets))}")
    entry = nets[name]
    net = IntrospectionNet(**entry["settings"])
    net.load_state_dict(entry["state_dict"])
    net.eval()
    # which net a jump used, for the records: the shipped one, or a file by its content
    net.source = {"net": name, "file": "shipped" if path is None else file.name,
                  "sha256": hashlib.sha256(file.read_bytes()).hexdigest()[:16]}
    return net


def shipped_provenance() -> dict[str, Any]:
    """How the shipped weights were produced: command, seed, data, settings and metrics."""
    return json.loads(shipped_path(PROVENANCE_FILE).read_text())
