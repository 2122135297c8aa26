"""Count the aten ops a block of code runs (to catch host round trips in batch code)."""

import collections

from torch.utils._python_dispatch import TorchDispatchMode

# lift_fresh: a tensor made from Python data (a host-to-device copy on CUDA);
# _local_scalar_dense: .item()/int() of a tensor; nonzero, bincount: sizes read back.
HOST_ROUND_TRIPS = ("lift_fresh", "_local_scalar_dense", "nonzero", "bincount")


class OpCounter(TorchDispatchMode):
    """Counts the aten ops run inside it, by name: ``with OpCounter() as c: ...; c.counts``."""

    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))
