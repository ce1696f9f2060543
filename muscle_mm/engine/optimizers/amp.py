# Copyright (c) muscle_mm contributors. All rights reserved.
from mmengine.config import Config
from mmengine.device import (is_cuda_available, is_mlu_available,
                             is_musa_available, is_npu_available)

#: Wrappers ``--amp`` may replace: the plain one and the AMP ones
AMP_REPLACEABLE = ('OptimWrapper', 'AmpOptimWrapper', 'CPUAmpOptimWrapper',
                   'muscle_mm.CPUAmpOptimWrapper')


def enable_amp(cfg: Config) -> None:
    """Switch ``cfg.optim_wrapper`` to mixed precision, as ``--amp`` does.

    mmengine's ``AmpOptimWrapper`` (fp16, dynamic loss scaling) where it
    runs (CUDA, NPU, MLU, MUSA); elsewhere ``CPUAmpOptimWrapper`` (bf16
    autocast, which needs no loss scaling).
    """
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper not in AMP_REPLACEABLE:
        raise ValueError(f'--amp cannot replace the custom optimizer wrapper '
                         f'{wrapper!r}; expected one of {AMP_REPLACEABLE}.')
    if (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available()):
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        cfg.optim_wrapper.type = 'muscle_mm.CPUAmpOptimWrapper'
        cfg.optim_wrapper.pop('loss_scale', None)
