# Copyright (c) muscle_mm contributors. All rights reserved.
from contextlib import contextmanager
from typing import Union

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper
from mmengine.runner.amp import autocast

from muscle_mm.registry import OPTIM_WRAPPERS
from muscle_mm.utils.compat import float32_mmcv_ops_under_cpu_autocast


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Mixed precision on CPU: bfloat16 autocast, what ``--amp`` selects on a
    machine without GPU.

    mmengine's ``AmpOptimWrapper`` asserts a GPU/NPU/MLU/MUSA and CPU
    autocast supports only bfloat16; bfloat16 keeps float32's exponent
    range, so gradients do not underflow and need no loss scaling: backward
    and step are ``OptimWrapper``'s, and optimizer hooks (``L2SPHook``) see
    true gradients. mmcv's ``nms`` and ``roi_align`` run in float32 under it
    (their CPU kernels have no bfloat16; ``muscle_mm.utils.compat``).

    Args:
        dtype (str or torch.dtype): Autocast dtype; CPU autocast supports
            ``'bfloat16'`` only. Defaults to ``'bfloat16'``.
        **kwargs: Passed to :class:`~mmengine.optim.OptimWrapper`.
    """

    def __init__(self,
                 dtype: Union[str, torch.dtype] = 'bfloat16',
                 **kwargs) -> None:
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, None)
        if dtype != torch.bfloat16:
            raise ValueError(
                'CPUAmpOptimWrapper: CPU autocast supports bfloat16 only, '
                f'got dtype={dtype}. Remove `optim_wrapper.dtype`, or train '
                'on a GPU for float16 (AmpOptimWrapper).')
        super().__init__(**kwargs)
        self.cast_dtype = dtype
        float32_mmcv_ops_under_cpu_autocast()

    @contextmanager
    def optim_context(self, model: nn.Module):
        """``OptimWrapper``'s context (gradient accumulation) inside CPU
        bfloat16 autocast."""
        with super().optim_context(model), autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield
