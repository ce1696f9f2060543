# Copyright (c) muscle_mm contributors. All rights reserved.
from typing import Optional, Sequence

import torch.nn as nn
from mmengine.model import MMDistributedDataParallel

from muscle_mm.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also works for CPU processes.

    mmengine's runner always passes ``device_ids=[LOCAL_RANK]``; torch's DDP
    rejects ``device_ids`` for a module on the CPU (gloo backend). This wrapper
    drops them there and behaves exactly like its parent on GPUs.

    Args:
        module (nn.Module): The model to wrap.
        device_ids (Sequence[int], optional): Kept for GPU modules only.
        **kwargs: Passed to :class:`MMDistributedDataParallel`.
    """

    def __init__(self,
                 module: nn.Module,
                 device_ids: Optional[Sequence[int]] = None,
                 **kwargs) -> None:
        param = next(module.parameters(), None)
        if param is None or param.device.type == 'cpu':
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)
