# Copyright (c) muscle_mm contributors. All rights reserved.
"""Precise BN of the shared backbone against a hand computation."""
import random

import numpy as np
import torch
import torch.nn as nn

from muscle_mm.engine.loops.bn_stats import (estimate_backbone_bn,
                                             preserved_rng, restored_buffers)


class Pre(nn.Module):
    """A task's data preprocessor: scales its inputs by ``k``."""

    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, data, training=False):
        return dict(inputs=data['inputs'] * self.k)


class Toy(nn.Module):
    """The parts of a MultiTaskModel the estimation touches."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.BatchNorm2d(2))
        self.tasks = nn.ModuleDict(dict(a=nn.Module(), b=nn.Module()))
        self.tasks.a.data_preprocessor = Pre(1.)
        self.tasks.b.data_preprocessor = Pre(3.)

    def task_geometry(self, name):
        raise AssertionError('plain geometry asked for')


def test_pooled_statistics_are_the_mean_of_batch_statistics():
    torch.manual_seed(0)
    model = Toy()
    bn = model.backbone[0]
    bn.eval()
    bn.running_mean.fill_(7.)  # what training left: must not leak in
    batches = {t: [dict(inputs=torch.randn(4, 2, 3, 3) + i) for i in range(2)]
               for t in ('a', 'b')}
    names = estimate_backbone_bn(model, batches)
    assert names == ['0']
    seen = [b['inputs'] * k for t, k in (('a', 1.), ('b', 3.))
            for b in batches[t]]
    mean = torch.stack([x.mean((0, 2, 3)) for x in seen]).mean(0)
    var = torch.stack([x.var((0, 2, 3), unbiased=True) for x in seen]).mean(0)
    assert torch.allclose(bn.running_mean, mean, atol=1e-6)
    assert torch.allclose(bn.running_var, var, atol=1e-5)
    # left as it was found: eval mode, its momentum
    assert not bn.training and bn.momentum == 0.1


def test_buffers_and_rngs_come_back():
    model = Toy()
    bn = model.backbone[0]
    before = {k: v.clone() for k, v in model.backbone.named_buffers()}
    with restored_buffers(model.backbone):
        estimate_backbone_bn(model, {'a': [dict(inputs=torch.ones(2, 2, 2,
                                                                   2))]})
        assert not torch.equal(bn.running_var, before['0.running_var'])
    for k, v in model.backbone.named_buffers():
        assert torch.equal(v, before[k]), k
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    want = random.random(), np.random.rand(), torch.rand(1).item()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with preserved_rng():
        random.random(), np.random.rand(), torch.rand(5)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == want
