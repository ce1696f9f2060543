# Copyright (c) muscle_mm contributors. All rights reserved.
"""CPU time of mmcv's compiled ops and of a Faster R-CNN step, one mmcv
build against another (e.g. the optimised build against the -O0 one).

Each build runs in its own process, with ``PYTHONPATH`` pointing at the
unpacked wheel; the two alternate ``--rounds`` times so that load from other
processes hits both alike, and the fastest round of each counts. torchvision's
``roi_align`` / ``nms`` on the same inputs are timed in every process too, as
a reference that does not change between builds.

Example (the baseline is the unoptimised build muscle_mm 0.1 shipped)::

    bash tools/misc/build_mmcv_wheel.sh /tmp/mmcv_O0 "-g0 -O0"
    python tools/analysis_tools/benchmark_mmcv_ops.py \
        --baseline /tmp/mmcv_O0/mmcv-2.1.0-*.whl
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from typing import Callable, Dict

import muscle_mm

# the folder the driver imports muscle_mm from (a checkout or site-packages):
# the workers import the same one (muscle_mm itself is light to import)
IMPORT_ROOT = osp.dirname(osp.dirname(muscle_mm.__file__))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--baseline', required=True, help='mmcv wheel to compare against')
    parser.add_argument(
        '--candidate',
        help='mmcv wheel to measure (default: the installed mmcv)')
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument(
        '--threads', type=int, default=1, help='torch intra-op threads')
    parser.add_argument(
        '--det-size',
        type=int,
        nargs=2,
        default=(800, 500),
        metavar=('W', 'H'),
        help='image size of the Faster R-CNN step (the paper: 800 500)')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    return parser.parse_args()


# ------------------------------------------------------------- in a worker
def _median_time(fn: Callable, iters: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(args) -> Dict[str, float]:
    """Times of one build, in the process whose ``mmcv`` it is."""
    import torch
    import torchvision
    from mmcv.ops import nms, roi_align
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)

    # RoIAlign as Faster R-CNN's RoI head runs it: 512 RoIs of one image on
    # a stride-8 level of an 800x500 input, 7x7 output, 2x2 samples per bin
    feats = torch.randn(1, 256, 63, 100, generator=gen)
    xy = torch.rand(512, 2, generator=gen) * torch.tensor([700., 400.])
    wh = 16 + torch.rand(512, 2, generator=gen) * 200
    rois = torch.cat([torch.zeros(512, 1), xy, xy + wh], dim=1)
    # NMS as the RPN runs it: 2000 proposals, IoU 0.7
    boxes = torch.cat([xy.repeat(4, 1), (xy + wh).repeat(4, 1)], dim=1)
    boxes += torch.rand(boxes.shape, generator=gen) * 8
    scores = torch.rand(len(boxes), generator=gen)
    times = dict(
        roi_align=_median_time(
            lambda: roi_align(feats, rois, (7, 7), 1 / 8, 2, 'avg', True),
            args.iters * 4),
        nms=_median_time(lambda: nms(boxes, scores, 0.7), args.iters * 4),
        tv_roi_align=_median_time(
            lambda: torchvision.ops.roi_align(
                feats, rois, (7, 7), 1 / 8, 2, aligned=True), args.iters * 4),
        tv_nms=_median_time(lambda: torchvision.ops.nms(boxes, scores, 0.7),
                            args.iters * 4))
    times['faster_rcnn_step'] = _det_step_time(args)
    return times


def _det_step_time(args) -> float:
    """One training step of the paper's TB detector (Faster R-CNN R18 FPN,
    configs/muscle/finetune/tbx_r18_scratch.py) on a batch of 2."""
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmengine.structures import InstanceData

    from muscle_mm.registry import MODELS
    from muscle_mm.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    from muscle_mm.apis import get_config_path
    cfg = Config.fromfile(
        get_config_path('muscle/finetune/tbx_r18_scratch.py'))
    w, h = args.det_size
    with DefaultScope.overwrite_default_scope('muscle_mm'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
    gen = torch.Generator().manual_seed(1)
    batch = dict(inputs=[], data_samples=[])
    for _ in range(2):
        batch['inputs'].append(
            torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8))
        sample = DetDataSample(
            metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                          pad_shape=(h, w), scale_factor=(1., 1.)))
        xy = torch.rand(3, 2, generator=gen) * torch.tensor([w / 2, h / 2])
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + 60], dim=1),
            labels=torch.tensor([0, 1, 0]))
        batch['data_samples'].append(sample)
    model.train()
    return _median_time(lambda: model.train_step(batch, optim), args.iters)


# ------------------------------------------------------------ the driver
def unpack(wheel: str, into: str) -> str:
    with zipfile.ZipFile(wheel) as z:
        z.extractall(into)
    return into


def run_worker(args, pythonpath: str) -> Dict[str, float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (pythonpath, IMPORT_ROOT, env.get('PYTHONPATH')) if p)
    cmd = [
        sys.executable, __file__, '--worker', '--baseline', args.baseline,
        '--iters',
        str(args.iters), '--threads',
        str(args.threads), '--det-size',
        *map(str, args.det_size)
    ]
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f'benchmark worker failed:\n{out.stderr[-3000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    args = parse_args()
    if args.worker:
        import mmcv
        times = measure(args)
        times['mmcv_path'] = osp.dirname(mmcv.__file__)
        print(json.dumps(times))
        return
    for wheel in (args.baseline, args.candidate):
        if wheel and not osp.isfile(wheel):
            raise SystemExit(f'{wheel}: no such wheel. Build one with '
                             'bash tools/misc/build_mmcv_wheel.sh OUT_DIR')
    with tempfile.TemporaryDirectory() as tmp:
        paths = dict(
            baseline=unpack(args.baseline, osp.join(tmp, 'baseline')),
            candidate=unpack(args.candidate, osp.join(tmp, 'candidate'))
            if args.candidate else '')
        best: Dict[str, Dict[str, float]] = {}
        for r in range(args.rounds):
            for name, path in paths.items():
                times = run_worker(args, path)
                where = times.pop('mmcv_path')
                print(f'round {r + 1} {name:<9} ({where}): ' + ', '.join(
                    f'{k} {v * 1e3:.2f} ms' for k, v in times.items()))
                for key, value in times.items():
                    best.setdefault(name, {})[key] = min(
                        value, best.get(name, {}).get(key, float('inf')))
    base, cand = best['baseline'], best['candidate']
    print(f'\nCPU time, fastest of {args.rounds} rounds, {args.threads} '
          'thread(s); ratio = candidate / baseline')
    print(f'{"":<18}{"baseline":>12}{"candidate":>12}{"ratio":>8}')
    for key in ('roi_align', 'nms', 'faster_rcnn_step'):
        print(f'{key:<18}{base[key] * 1e3:>10.2f}ms{cand[key] * 1e3:>10.2f}ms'
              f'{cand[key] / base[key]:>8.3f}')
    for key in ('roi_align', 'nms'):
        print(f'{key} vs torchvision: baseline '
              f'{base[key] / base["tv_" + key]:.2f}x, candidate '
              f'{cand[key] / cand["tv_" + key]:.2f}x')


if __name__ == '__main__':
    main()
