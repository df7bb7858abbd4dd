"""A dispatch mode that counts the operations which, on a CUDA device, make the host wait for
the GPU: reading a value back (``.item()``, ``float()``, ``bool()`` of a tensor), comparing
whole tensors on the host (``torch.equal``), and ops whose output size depends on the data
(``nonzero``, ``masked_select``, ``unique``). The same operations are dispatched on the CPU, so
the count shows, without a GPU, where a CUDA run would synchronise.

Not seen: ``.tolist()``, ``.numpy()`` and ``.cpu()`` of a CPU tensor, which do not dispatch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from plp_baselines.optimizer_wrapper import innermost

HOST_READS = frozenset({
    "aten::_local_scalar_dense", "aten::equal", "aten::is_nonzero", "aten::nonzero",
    "aten::masked_select", "aten::_unique2", "aten::unique_dim", "aten::unique_consecutive",
})


class HostReads(TorchDispatchMode):
    """Counts host reads (see the module) in ``reads``; ``exempt(tensor)`` marks tensors whose
    read costs nothing on CUDA as well (e.g. ``torch.optim``'s step counters, kept on the
    host)."""

    def __init__(self, exempt: Callable[[torch.Tensor], bool] | None = None):
        super().__init__()
        self.reads: list[str] = []
        self.exempt = exempt or (lambda tensor: False)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if name in HOST_READS and not (args and isinstance(args[0], torch.Tensor)
                                       and self.exempt(args[0])):
            self.reads.append(name)
        return func(*args, **(kwargs or {}))


def step_counters(optimizer) -> Callable[[torch.Tensor], bool]:
    """An ``exempt`` for the innermost optimizer's ``state[p]["step"]`` tensors (host scalars
    in ``torch.optim`` unless capturable or fused)."""
    inner = innermost(optimizer)

    def exempt(tensor: torch.Tensor) -> bool:
        return any(state.get("step") is tensor for state in inner.state.values())

    return exempt
