# Copyright (c) muscle_mm contributors. All rights reserved.
"""Distributed training on CPU-only machines with the gloo backend.

mmengine 0.10.7 assumes a GPU per process when a launcher is given: its
``init_dist`` calls ``torch.cuda.set_device`` and its runner passes
``device_ids=[LOCAL_RANK]`` to DDP. Without a GPU both fail. We do not patch
mmengine: the process group is initialised here first (mmengine then skips its
own ``init_dist``) and the model is wrapped by
:class:`~muscle_mm.models.wrappers.CPUDistributedDataParallel`, which drops
``device_ids`` for CPU modules. On CUDA machines nothing changes.
"""
import os

import torch
import torch.distributed as dist
from mmengine.config import Config


def _slurm_env_to_torch_env() -> None:
    """Fill torch's ``env://`` variables from SLURM's, as mmengine does."""
    import subprocess

    node_list = os.environ['SLURM_NODELIST']
    os.environ.setdefault(
        'MASTER_ADDR',
        subprocess.getoutput(
            f'scontrol show hostname {node_list} | head -n1'))
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['LOCAL_RANK'] = os.environ['SLURM_LOCALID']


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Prepare a CPU (gloo) distributed run when no GPU is visible.

    Args:
        cfg (Config): The training config; its ``model_wrapper_cfg`` is set
            to the CPU-aware DDP wrapper unless the user gave one.
        launcher (str): The job launcher (``none``, ``pytorch``, ``slurm``).

    Returns:
        bool: True if this function initialised a CPU process group.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher == 'slurm':
        _slurm_env_to_torch_env()
    elif launcher != 'pytorch':
        raise ValueError(
            f'CPU distributed training supports the "pytorch" (torchrun) and '
            f'"slurm" launchers, got "{launcher}".')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo', init_method='env://')
    # the same defaults mmengine uses when no wrapper is configured
    wrapper_cfg = cfg.get('model_wrapper_cfg') or dict(
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_cfg.setdefault('type', 'muscle_mm.CPUDistributedDataParallel')
    cfg.model_wrapper_cfg = wrapper_cfg
    return True
