# Copyright (c) muscle_mm contributors. All rights reserved.
from typing import Dict, List, Optional, Union

import torch
from mmengine.dist import get_world_size
from mmpretrain.models import MoCo
from mmpretrain.structures import DataSample

from muscle_mm.registry import MODELS


def check_queue_len(queue_len: int,
                    batch_size: int,
                    world_size: int = 1) -> None:
    """Fail clearly unless ``queue_len`` is a multiple of the global batch.

    mmpretrain's :class:`MoCo` overwrites the queue one gathered (global)
    batch at a time and only ``assert``\\ s the divisibility inside its
    queue update; this check says what to change instead.

    Args:
        queue_len (int): Length of the negative-key queue.
        batch_size (int): Samples per GPU (process) in one step.
        world_size (int): Number of processes. Defaults to 1.

    Raises:
        ValueError: If ``queue_len % (batch_size * world_size) != 0``.
    """
    global_batch = batch_size * world_size
    if global_batch > 0 and queue_len % global_batch == 0:
        return
    valid = max(global_batch,
                round(queue_len / max(global_batch, 1)) * global_batch)
    raise ValueError(
        f'XrayMoCo: queue_len={queue_len} is not a multiple of the global '
        f'batch {global_batch} (= {batch_size} per process x {world_size} '
        f'processes); MoCo replaces whole global batches in its queue. '
        f'Use e.g. queue_len={valid}, or a batch size dividing {queue_len}. '
        f'If only the last batch of an epoch is smaller, set '
        f'train_dataloader.drop_last=True.')


@MODELS.register_module()
class XrayMoCo(MoCo):
    """MD-MoCo: MoCo v2 pre-training on aggregated X-ray datasets.

    MUSCLE Sec. 2.1 runs MoCo (v2, as MoCo-CXR does) on the union of nine
    X-ray datasets; what is X-ray specific lives in the data pipeline
    (no crop/blur/jitter views, z-score 122.786/18.390, 800x500) and in the
    Kaiming ``init_cfg`` of the config. This class only adds checks to
    mmpretrain's :class:`~mmpretrain.models.MoCo`:

    - ``queue_len`` must be a multiple of the global batch
      (per-process batch x world size). The batch is only known once
      data flows, so every forward checks it (an integer test) before any
      compute, with a message giving the numbers and a valid
      ``queue_len``; this also catches a short last batch.
    - ``momentum`` follows mmengine's EMA convention:
      ``key = (1 - momentum) * key + momentum * query``. So
      ``momentum=0.001`` here is ``m=0.999`` in the MoCo paper; a value
      above 0.5 is almost surely the paper's ``m`` and is refused.

    Args:
        backbone (dict): Config of the backbone (a plain ``ResNet`` keeps
            its keys loadable into mmpretrain, mmseg and mmdet).
        neck (dict): Config of the projection neck (``MoCoV2Neck``).
        head (dict): Config of the contrastive head.
        queue_len (int): Number of negative keys in the queue.
            Defaults to 65536.
        feat_dim (int): Dimension of the projected features. Defaults to 128.
        momentum (float): EMA weight of the query encoder in the key
            encoder update (mmengine convention, see above).
            Defaults to 0.001.
        pretrained (str, optional): Checkpoint to initialise from.
        data_preprocessor (dict, optional): Type defaults to
            ``mmpretrain.SelfSupDataPreprocessor``.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 queue_len: int = 65536,
                 feat_dim: int = 128,
                 momentum: float = 0.001,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        if not 0.0 < momentum <= 0.5:
            raise ValueError(
                f'XrayMoCo: momentum={momentum} is outside (0, 0.5]. It '
                f'follows mmengine EMA: key = (1 - momentum) * key + '
                f'momentum * query, so the MoCo paper\'s m=0.999 is '
                f'momentum=0.001 here (did you mean {1 - momentum:.4g}?).')
        if queue_len <= 0:
            raise ValueError(
                f'XrayMoCo: queue_len must be positive, got {queue_len}.')
        # mmpretrain's default names no scope; under default_scope='muscle_mm'
        # an unprefixed type would be looked up in our registry
        data_preprocessor = dict(data_preprocessor or {})
        data_preprocessor.setdefault('type',
                                     'mmpretrain.SelfSupDataPreprocessor')
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            queue_len=queue_len,
            feat_dim=feat_dim,
            momentum=momentum,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Check the queue against the batch, then MoCo's loss."""
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            found = type(inputs).__name__
            if isinstance(inputs, (list, tuple)):
                found += f' of length {len(inputs)}'
            raise TypeError(
                'XrayMoCo expects inputs as a list of two view batches '
                '(query, key), as made by MultiView(num_views=2) + '
                f'PackInputs; got {found}.')
        check_queue_len(self.queue_len, inputs[0].shape[0], get_world_size())
        return super().loss(list(inputs), data_samples, **kwargs)
