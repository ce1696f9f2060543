# Copyright (c) muscle_mm contributors. All rights reserved.
"""Cost of BufferSyncHook's all-reduce against DDP's gradient all-reduce.

    python -m torch.distributed.run --nproc_per_node 2 \\
        tools/analysis_tools/benchmark_buffer_sync.py [--config CONFIG]

Builds the config's model (default: the stage-2 ResNet-18 model with its
four task models) on every process and times, over ``--repeat`` rounds,
one all-reduce of all its buffers (what ``BufferSyncHook`` does before each
validation, test and checkpoint) and one all-reduce of all its parameters
(the gradient volume DDP reduces at every iteration), on gloo (CPU) or NCCL
(CUDA). Prints both and their ratio.
"""
import argparse
import os.path as osp
import sys
import time

import torch
import torch.distributed as dist

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def timed(tensors, repeat: int, cuda: bool) -> float:
    """Median seconds of one coalesced mean all-reduce of ``tensors``."""
    from mmengine.dist import all_reduce_params
    times = []
    for _ in range(repeat):
        if cuda:
            torch.cuda.synchronize()
        dist.barrier()
        start = time.perf_counter()
        all_reduce_params(tensors, op='mean')
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--config', default=osp.join(REPO, 'configs/muscle/cl_r18.py'))
    parser.add_argument('--repeat', type=int, default=20)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    dist.init_process_group('nccl' if cuda else 'gloo')
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from muscle_mm.registry import MODELS
    from muscle_mm.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('muscle_mm'):
        model = MODELS.build(cfg.model)
    if cuda:
        model = model.cuda()
    buffers = [b for b in model.buffers()]
    params = [p.detach().clone() for p in model.parameters()]
    n_buf = sum(b.numel() for b in buffers)
    n_par = sum(p.numel() for p in params)
    sync = timed(buffers, args.repeat, cuda)
    grads = timed(params, args.repeat, cuda)
    if dist.get_rank() == 0:
        print(f'{osp.basename(args.config)} on {dist.get_world_size()} '
              f'processes ({dist.get_backend()}), median of {args.repeat}:')
        print(f'  buffers   {n_buf:>11,} values  {sync * 1e3:8.2f} ms')
        print(f'  gradients {n_par:>11,} values  {grads * 1e3:8.2f} ms '
              '(every iteration)')
        print(f'  one buffer sync = {sync / grads:.3f} x one gradient '
              'all-reduce')
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
