# Copyright (c) muscle_mm contributors. All rights reserved.
"""Overhead of L2SPHook on a ResNet-18 train step (goal: <= 2 % per step).

Builds a stock mmpretrain ImageClassifier-R18 with the optimizer and the
L2SPHook of the stage-2 schedule (configs/_base_/schedules/
cl_sgd-cyclic-cos_10rounds.py) and measures, in one run, the train step (data
preprocessor + forward + backward + SGD step) without and with the L2-SP step
pre-hook, alternating every step so that the load of a shared machine hits
both alike. It also times the hook's own work alone, which is less noisy than
the difference of two step times: the pre-hook (every step) and the logged
value (every LoggerHook interval of configs/_base_/default_runtime.py).

Example::

    python tools/analysis_tools/benchmark_l2sp.py --size 224 --batch 8 \
        --threads 1
"""
import argparse
import statistics
import time
from types import SimpleNamespace

import torch
from mmengine.config import Config
from mmengine.hooks import LoggerHook
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper

from muscle_mm.apis.paths import get_config_path
from muscle_mm.engine.hooks import L2SPHook
from muscle_mm.registry import MODELS


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=224, help='image side')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument(
        '--pairs',
        type=int,
        default=8,
        help='timed steps without and with the hook')
    parser.add_argument(
        '--params', default='weights', choices=['weights', 'all'])
    parser.add_argument(
        '--threads', type=int, help="torch intra-op threads (torch's default)")
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    return parser.parse_args()


def build(args, schedule):
    xray = Config.fromfile(get_config_path('_base_/xray_constants.py'))
    model = MODELS.build(
        dict(
            type='mmpretrain.ImageClassifier',
            data_preprocessor=dict(
                type='mmpretrain.ClsDataPreprocessor',
                mean=xray.xray_mean,
                std=xray.xray_std),
            backbone=dict(type='mmpretrain.ResNet', depth=18),
            neck=dict(type='mmpretrain.GlobalAveragePooling'),
            head=dict(
                type='mmpretrain.LinearClsHead',
                num_classes=2,
                in_channels=512,
                loss=dict(type='mmpretrain.CrossEntropyLoss')))).to(
                    args.device)
    model.train()
    optim = build_optim_wrapper(model, schedule.optim_wrapper)
    from mmpretrain.structures import DataSample
    gen = torch.Generator().manual_seed(0)
    data = dict(
        inputs=[
            torch.randint(
                0,
                256, (3, args.size, args.size),
                generator=gen,
                dtype=torch.uint8) for _ in range(args.batch)
        ],
        data_samples=[
            DataSample().set_gt_label(i % 2) for i in range(args.batch)
        ])
    return model, optim, data


def sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    schedule = Config.fromfile(
        get_config_path('_base_/schedules/cl_sgd-cyclic-cos_10rounds.py'))
    runtime = Config.fromfile(get_config_path('_base_/default_runtime.py'))
    model, optim, data = build(args, schedule)
    (hook_cfg, ) = [h for h in schedule.custom_hooks if h.type == 'L2SPHook']
    hook_cfg = {k: v for k, v in hook_cfg.items() if k != 'type'}
    hook = L2SPHook(**dict(hook_cfg, params=args.params))
    interval = runtime.default_hooks.logger.interval
    runner = SimpleNamespace(
        model=model,
        optim_wrapper=optim,
        hooks=[LoggerHook(interval=interval)],
        train_dataloader=range(10**9),  # no end of epoch
        message_hub=MessageHub.get_instance('benchmark_l2sp'))
    n_iter = 0

    def step(with_hook):
        nonlocal n_iter
        sync(args.device)
        start = time.perf_counter()
        model.train_step(data, optim)
        if with_hook:
            hook.after_train_iter(runner, n_iter)
            n_iter += 1
        sync(args.device)
        return time.perf_counter() - start

    for _ in range(2):  # warm-up
        step(False)
    hook.before_train(runner)
    hook.before_train_epoch(runner)  # snapshots w0
    times = {False: [], True: []}
    for _ in range(args.pairs):
        # alternate every step so that the load of a shared machine hits
        # both alike; the pair's difference is the overhead
        hook.after_train(runner)  # removes the pre-hook
        times[False].append(step(False))
        hook.before_train(runner)  # registers it again
        times[True].append(step(True))

    # the hook's own work alone, on real gradients of the last step
    model.train_step(data, optim)
    optimizer = optim.optimizer
    for p in model.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)

    def timed(fn):
        sync(args.device)
        start = time.perf_counter()
        fn()
        sync(args.device)
        return time.perf_counter() - start

    pre = [
        timed(lambda: hook._pre_step(optimizer, (), {}))
        for _ in range(2 * args.pairs)
    ]
    logged = [
        timed(lambda: hook.after_train_iter(runner, interval - 1))
        for _ in range(2 * args.pairs)
    ]
    hook.after_train(runner)
    snapshot = [
        timed(lambda: hook.before_train_epoch(runner)) for _ in range(5)
    ]

    base = statistics.median(times[False])
    with_l2sp = statistics.median(times[True])
    paired = statistics.median(
        [b - a for a, b in zip(times[False], times[True])])
    own_pre = statistics.median(pre)
    own_log = statistics.median(logged) / interval
    n_reg = sum(p.numel() for p in hook._targets[id(optimizer)][0])
    print(f'ResNet-18 ImageClassifier, {args.batch}x3x{args.size}x'
          f'{args.size}, SGD, device={args.device}, '
          f'threads={torch.get_num_threads()}, params={args.params} '
          f'({n_reg / 1e6:.2f} M regularised)')
    print(f'train step without L2-SP (median of {len(times[False])}):  '
          f'{base * 1e3:8.2f} ms')
    print(f'train step with    L2-SP (median of {len(times[True])}):  '
          f'{with_l2sp * 1e3:8.2f} ms   ratio {with_l2sp / base:.4f}')
    print(f'median paired difference (with - without):  '
          f'{paired * 1e3:8.2f} ms   = {100 * paired / base:.2f} %')
    print(f'L2-SP pre-hook alone, every step:          {own_pre * 1e3:8.3f} '
          f'ms   = {100 * own_pre / base:.2f} % of the step (goal <= 2 %)')
    print(f'logged value, every {interval} iterations, per step: '
          f'{own_log * 1e3:8.3f} ms   = {100 * own_log / base:.2f} %')
    print(f'pre-hook + logging per step:              '
          f'{(own_pre + own_log) * 1e3:8.3f} ms   = '
          f'{100 * (own_pre + own_log) / base:.2f} % of the step')
    print(f'w0 snapshot per task-iterate (once an epoch): '
          f'{statistics.median(snapshot) * 1e3:.2f} ms')


if __name__ == '__main__':
    main()
