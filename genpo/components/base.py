"""Shared base for TensorDict components: declared keys in, declared keys out."""

from __future__ import annotations

import abc

from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase


class TensorDictComponent(TensorDictModuleBase):
    """``forward(td)`` reads ``in_keys``, calls :meth:`compute` on the tensors, writes ``out_keys``.

    ``compute`` is the plain-tensor function underneath: hot inner loops call it directly and skip
    the TensorDict bookkeeping.
    """

    in_keys: list[str] = []
    out_keys: list[str] = []

    @abc.abstractmethod  # marks it for the registry's contract check (the class is no ABC)
    def compute(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} does not define compute")

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        outputs = self.compute(*(tensordict.get(key) for key in self.in_keys))
        if not isinstance(outputs, tuple):
            outputs = (outputs,)
        for key, value in zip(self.out_keys, outputs, strict=True):
            tensordict.set(key, value)
        return tensordict
