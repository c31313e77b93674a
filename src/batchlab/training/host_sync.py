"""A guard that fails on any read of a device value back to the host, for code a CUDA graph captures.

A CUDA graph cannot hold a host synchronisation: `.item()`, `bool(tensor)`, indexing with a 0-dim
integer tensor (which calls `.item()` behind your back) and ops whose output shape depends on the
data (`nonzero`, `masked_select`, ...) all break capture, and on a GPU without graphs they stall
every step. They reach the dispatcher as the ops below on any device, so the guard catches them on
a CPU, where CI runs, before a GPU ever sees them.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten
SYNCING_OPS = {
    _aten._local_scalar_dense,  # .item(), float(t), int(t), bool(t), t[0-dim index]
    _aten.is_nonzero,
    _aten.equal,
    _aten.nonzero,  # data-dependent output shapes
    _aten.nonzero_static,
    _aten.masked_select,
    _aten._unique,
    _aten._unique2,
    _aten.unique_dim,
    _aten.unique_consecutive,
    _aten.repeat_interleave,
}


class HostSyncError(RuntimeError):
    """An op that reads a device value back to the host ran inside a guarded region."""


class NoHostSync(TorchDispatchMode):
    """Within `with NoHostSync():`, any op of SYNCING_OPS raises HostSyncError naming it."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in SYNCING_OPS or _masks(func, args):
            raise HostSyncError(f"{func} reads a device value back to the host (a sync; it breaks CUDA-graph capture)")
        return func(*args, **(kwargs or {}))


def _masks(func, args) -> bool:
    """Indexing with a boolean mask: the number of selected elements is data (a nonzero inside)."""
    if func.overloadpacket not in (_aten.index, _aten.index_put, _aten.index_put_, _aten._index_put_impl_):
        return False
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in args[1] or ())
