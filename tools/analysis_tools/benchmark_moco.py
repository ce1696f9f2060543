# Copyright (c) muscle_mm contributors. All rights reserved.
"""Step time of ``XrayMoCo`` vs mmpretrain ``MoCo`` vs plain PyTorch MoCo.

All three train the same ResNet (same initial weights), batch, input size,
queue length, temperature and momentum, on the same uint8 views, one full
step each (normalise, query + key forward, loss, backward, SGD, EMA, queue).
Steps are interleaved model by model so that load from other processes hits
all three alike, and the median step time is reported with the ratios.

The plain PyTorch step is a single-process port of facebookresearch/moco's
``builder.py`` (MoCo v2 MLP head) on ``torchvision.models.resnet{18,50}``.

Example::

    python tools/analysis_tools/benchmark_moco.py --depth 18 --batch 8 \
        --size 128 80 --queue 4096 --iters 30 --threads 1
"""
import argparse
import copy
import statistics
import time
from typing import Callable, Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 122.786, 18.390  # configs/_base_/xray_constants.py


class PlainMoCo(nn.Module):
    """MoCo v2 as in facebookresearch/moco ``builder.py``, one process."""

    def __init__(self, depth: int, dim: int, queue_len: int, m: float,
                 t: float) -> None:
        super().__init__()
        import torchvision
        self.m, self.t = m, t

        def encoder() -> nn.Module:
            net = getattr(torchvision.models, f'resnet{depth}')()
            width = net.fc.in_features
            net.fc = nn.Sequential(
                nn.Linear(width, width), nn.ReLU(), nn.Linear(width, dim))
            return net

        self.encoder_q, self.encoder_k = encoder(), encoder()
        for p_q, p_k in zip(self.encoder_q.parameters(),
                            self.encoder_k.parameters()):
            p_k.data.copy_(p_q.data)
            p_k.requires_grad = False
        self.register_buffer('queue',
                             F.normalize(torch.randn(dim, queue_len), dim=0))
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def _momentum_update_key_encoder(self) -> None:
        for p_q, p_k in zip(self.encoder_q.parameters(),
                            self.encoder_k.parameters()):
            p_k.data = p_k.data * self.m + p_q.data * (1. - self.m)

    @torch.no_grad()
    def _dequeue_and_enqueue(self, keys: torch.Tensor) -> None:
        n, ptr = keys.shape[0], int(self.queue_ptr)
        self.queue[:, ptr:ptr + n] = keys.T
        self.queue_ptr[0] = (ptr + n) % self.queue.shape[1]

    def forward(self, im_q: torch.Tensor, im_k: torch.Tensor) -> torch.Tensor:
        q = F.normalize(self.encoder_q(im_q), dim=1)
        with torch.no_grad():
            self._momentum_update_key_encoder()
            # the shuffle of shuffle-BN (a permutation on one process)
            idx = torch.randperm(im_k.shape[0])
            k = F.normalize(self.encoder_k(im_k[idx]), dim=1)
            k = k[torch.argsort(idx)]
        l_pos = torch.einsum('nc,nc->n', [q, k]).unsqueeze(-1)
        l_neg = torch.einsum('nc,ck->nk', [q, self.queue.clone().detach()])
        logits = torch.cat([l_pos, l_neg], dim=1) / self.t
        labels = torch.zeros(logits.shape[0], dtype=torch.long)
        loss = F.cross_entropy(logits, labels)
        self._dequeue_and_enqueue(k)
        return loss


def mm_model_cfg(type_: str, depth: int, queue_len: int, dim: int,
                 momentum: float, t: float) -> dict:
    width = 512 if depth < 50 else 2048
    return dict(
        type=type_,
        queue_len=queue_len,
        feat_dim=dim,
        momentum=momentum,
        data_preprocessor=dict(
            type='mmpretrain.SelfSupDataPreprocessor',
            mean=[MEAN] * 3,
            std=[STD] * 3,
            to_rgb=False),
        backbone=dict(type='mmpretrain.ResNet', depth=depth),
        neck=dict(
            type='mmpretrain.MoCoV2Neck',
            in_channels=width,
            hid_channels=width,
            out_channels=dim,
            with_avg_pool=True),
        head=dict(
            type='mmpretrain.ContrastiveHead',
            loss=dict(type='mmpretrain.CrossEntropyLoss'),
            temperature=t))


def copy_weights(mm_model: nn.Module, plain: PlainMoCo) -> None:
    """Give the plain model the same backbone and MLP weights."""
    sd = {
        k[len('backbone.'):]: v
        for k, v in mm_model.state_dict().items() if k.startswith('backbone.')
    }
    neck = mm_model.neck.mlp
    sd.update({
        'fc.0.weight': neck[0].weight,
        'fc.0.bias': neck[0].bias,
        'fc.2.weight': neck[2].weight,
        'fc.2.bias': neck[2].bias
    })
    for enc in (plain.encoder_q, plain.encoder_k):
        enc.load_state_dict(sd)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--depth', type=int, default=18, choices=[18, 50])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument(
        '--size', type=int, nargs=2, default=[128, 80], metavar=('W', 'H'))
    parser.add_argument('--queue', type=int, default=4096)
    parser.add_argument('--iters', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument(
        '--threads', type=int, default=0, help='torch threads (0: keep)')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmpretrain.structures import DataSample

    from mmengine.optim import OptimWrapper

    from muscle_mm.registry import MODELS
    from muscle_mm.utils import register_all_modules
    register_all_modules()

    torch.manual_seed(0)
    device = torch.device(args.device)
    dim, m_ema, t = 128, 0.001, 0.2
    ours = MODELS.build(
        mm_model_cfg('XrayMoCo', args.depth, args.queue, dim, m_ema, t))
    stock = MODELS.build(
        mm_model_cfg('mmpretrain.MoCo', args.depth, args.queue, dim, m_ema, t))
    stock.load_state_dict(copy.deepcopy(ours.state_dict()))
    plain = PlainMoCo(args.depth, dim, args.queue, 1 - m_ema, t)
    copy_weights(ours, plain)
    models = dict(XrayMoCo=ours, mmpretrain_MoCo=stock, plain_PyTorch=plain)
    for model in models.values():
        model.to(device).train()

    def sgd(model: nn.Module) -> torch.optim.SGD:
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.SGD(
            params, lr=0.03, momentum=0.9, weight_decay=1e-4)

    w, h = args.size
    views = [
        torch.randint(0, 256, (args.batch, 3, h, w), dtype=torch.uint8)
        for _ in range(2)
    ]
    data = dict(
        inputs=[v.to(device) for v in views],
        data_samples=[DataSample() for _ in range(args.batch)])
    mean = torch.tensor([MEAN] * 3, device=device).view(1, 3, 1, 1)
    std = torch.tensor([STD] * 3, device=device).view(1, 3, 1, 1)
    plain_opt = sgd(plain)

    def plain_step() -> None:
        im_q, im_k = ((v.to(device).float() - mean) / std for v in views)
        loss = plain(im_q, im_k)
        plain_opt.zero_grad()
        loss.backward()
        plain_opt.step()

    def mm_step(model: nn.Module) -> Callable[[], None]:
        wrapper = OptimWrapper(sgd(model))
        return lambda: model.train_step(data, wrapper)

    steps: Dict[str, Callable[[], None]] = dict(
        XrayMoCo=mm_step(ours),
        mmpretrain_MoCo=mm_step(stock),
        plain_PyTorch=plain_step)
    sync = (
        torch.cuda.synchronize if device.type == 'cuda' else (lambda: None))
    times: Dict[str, List[float]] = {k: [] for k in steps}
    for i in range(args.warmup + args.iters):
        for name, step in steps.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f'ResNet-{args.depth}, batch {args.batch}, {w}x{h}, queue '
          f'{args.queue}, {args.iters} steps after {args.warmup} warm-up, '
          f'threads {torch.get_num_threads()}, device {device}')
    for name, value in med.items():
        q1, _, q3 = statistics.quantiles(times[name], n=4)
        print(f'  {name:16s} median {value * 1e3:8.1f} ms/step '
              f'(IQR {q1 * 1e3:.1f}-{q3 * 1e3:.1f})')
    print(f'  XrayMoCo / plain PyTorch     = '
          f'{med["XrayMoCo"] / med["plain_PyTorch"]:.3f}')
    print(f'  XrayMoCo / mmpretrain MoCo   = '
          f'{med["XrayMoCo"] / med["mmpretrain_MoCo"]:.3f}')
    print(f'  mmpretrain MoCo / plain      = '
          f'{med["mmpretrain_MoCo"] / med["plain_PyTorch"]:.3f}')


if __name__ == '__main__':
    main()
