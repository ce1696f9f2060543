# Copyright (c) muscle_mm contributors. All rights reserved.
"""Training-step speed and memory of every stage on a GPU, fp32 vs AMP.

    python tools/analysis_tools/benchmark_gpu.py            # r18, a few min
    python tools/analysis_tools/benchmark_gpu.py --backbone r50 --channels-last

One training step of each stage's paper config at 800x500 and the configs'
batch sizes (MD-MoCo, the stage-2 model on each of its tasks, the four
fine-tunes), timed over ``--steps`` steps after ``--warmup``, in fp32 and
with ``--amp``'s wrapper: seconds a step, images a second, AMP/fp32 and
``torch.cuda.max_memory_allocated``, as one table. The data are the demo
generator's synthetic images (resized to 800x500 by the paper pipelines)
unless ``--data-root`` names real ones. Without CUDA it says so and exits 0
(``--device cpu`` runs it anyway, e.g. to check it).
"""
import argparse
import os
import os.path as osp
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Optional

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

STAGES = ('mdmoco', 'cl', 'pneumonia', 'mura', 'lung', 'tbx')


def stage_config(stage: str, backbone: str) -> str:
    from muscle_mm.apis.paths import get_config_path
    if stage == 'mdmoco':
        return get_config_path(f'muscle/mdmoco_{backbone}.py')
    if stage == 'cl':
        return get_config_path(f'muscle/cl_{backbone}.py')
    return get_config_path(f'muscle/finetune/{stage}_{backbone}_scratch.py')


def time_stage(config: str, amp: bool, device: str, steps: int, warmup: int,
               channels_last: bool = False) -> Dict[str, dict]:
    """Per task ('' for one-task stages): batch, seconds a step, peak
    bytes (CUDA only)."""
    from muscle_mm.apis.preflight import step_batches, step_runner
    runner, work_dir = step_runner(config, amp, random_init=True)
    model = runner.model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    cuda = device.startswith('cuda')
    results = {}
    try:
        for task, batch, data in step_batches(runner, model):
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            for i in range(warmup + steps):
                if i == warmup:
                    if cuda:
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                model.train_step(data, optim_wrapper=runner.optim_wrapper)
            if cuda:
                torch.cuda.synchronize()
            seconds = (time.perf_counter() - start) / steps
            results[task] = dict(
                batch=batch,
                seconds=seconds,
                peak=torch.cuda.max_memory_allocated() if cuda else None)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return results


def table(rows: List[dict]) -> str:
    gib = 1024**3

    def mem(v: Optional[int]) -> str:
        return '-' if v is None else f'{v / gib:.2f}'

    lines = [
        '| stage | task | batch | fp32 s/step | fp32 img/s | AMP s/step | '
        'AMP img/s | AMP/fp32 time | fp32 GiB | AMP GiB |',
        '|---|---|---|---|---|---|---|---|---|---|'
    ]
    for r in rows:
        f, a = r['fp32'], r['amp']
        lines.append(
            f'| {r["stage"]} | {r["task"] or "-"} | {f["batch"]} | '
            f'{f["seconds"]:.3f} | {f["batch"] / f["seconds"]:.1f} | '
            f'{a["seconds"]:.3f} | {a["batch"] / a["seconds"]:.1f} | '
            f'{a["seconds"] / f["seconds"]:.2f} | {mem(f["peak"])} | '
            f'{mem(a["peak"])} |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--backbone', default='r18', choices=['r18', 'r50'])
    parser.add_argument('--stages', nargs='+', default=list(STAGES),
                        choices=STAGES)
    parser.add_argument('--config', help='time this config instead')
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--data-root', help='real datasets (default: the '
                        'demo generator\'s, in a temporary folder)')
    parser.add_argument('--device', help='default: cuda if available')
    args = parser.parse_args(argv)
    device = args.device or ('cuda' if torch.cuda.is_available() else None)
    if device is None:
        print('benchmark_gpu.py needs a CUDA device (none is visible); '
              'nothing measured. --device cpu runs it on the CPU.')
        return 0
    from muscle_mm.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    here = os.getcwd()
    work = tempfile.mkdtemp(prefix='benchmark_gpu_data_')
    try:
        data = osp.join(work, 'data')  # the configs read ./data/...
        if args.data_root:
            os.symlink(osp.abspath(args.data_root), data)
        else:
            import subprocess

            from muscle_mm.testing import generate_demo_data
            generate_demo_data(data)
            subprocess.run([
                sys.executable,
                osp.join(REPO, 'tools/dataset_converters/make_splits.py'),
                '--data-root', data
            ], check=True, capture_output=True)
        os.chdir(work)
        configs = {'config': args.config} if args.config else {
            s: stage_config(s, args.backbone) for s in args.stages}
        rows = []
        for stage, config in configs.items():
            print(f'[benchmark_gpu] {stage}: {config}', flush=True)
            got = {
                name: time_stage(config, name == 'amp', device, args.steps,
                                 args.warmup, args.channels_last)
                for name in ('fp32', 'amp')
            }
            for task in got['fp32']:
                rows.append(dict(stage=stage, task=task,
                                 fp32=got['fp32'][task],
                                 amp=got['amp'][task]))
    finally:
        os.chdir(here)
        shutil.rmtree(work, ignore_errors=True)
    name = torch.cuda.get_device_name() if device.startswith('cuda') \
        else 'CPU'
    print(f'\n{name}, {args.backbone}, {args.steps} steps after '
          f'{args.warmup} warm-up, channels_last={args.channels_last}\n')
    print(table(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
