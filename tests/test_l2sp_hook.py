# Copyright (c) muscle_mm contributors. All rights reserved.
"""L2SPHook against Eq. 2 of the MUSCLE paper, computed by hand."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper, build_optim_wrapper

from muscle_mm.engine.hooks import L2SPHook
from muscle_mm.engine.schedulers import CyclicCosineLR  # noqa: F401


class Net(nn.Module):
    """A backbone (conv + BN + FC) and a head, like the task models."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return self.head(self.backbone(x))


class FakeRunner:
    """The runner attributes the hook reads."""

    def __init__(self, model, optim_wrapper):
        self.model = model
        self.optim_wrapper = optim_wrapper
        self.message_hub = MessageHub.get_instance(f'l2sp_{id(self)}')


def make(lr=0.1, weight_decay=0., hook_kwargs=None, seed=0):
    torch.manual_seed(seed)
    model = Net().double()
    optim = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay))
    hook = L2SPHook(**(hook_kwargs or {}))
    return model, FakeRunner(model, optim), hook


def perturb(module, scale=0.3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def zero_task_grads(model):
    for p in model.parameters():
        p.grad = torch.zeros_like(p)


def regularised(model, mode):
    """Names of the parameters Eq. 2 applies to, by construction of Net."""
    names = [n for n, _ in model.backbone.named_parameters()]
    if mode == 'all':
        return names
    return ['0.weight', '5.weight']  # conv and FC weights, not BN / biases


@pytest.mark.parametrize('mode', ['weights', 'all'])
@pytest.mark.parametrize('alpha', [0., 0.5, 1.])
def test_sgd_step_is_eq2_gradient(mode, alpha):
    lr, lam = 0.1, 0.05
    model, runner, hook = make(
        lr, hook_kwargs=dict(alpha=alpha, lam=lam, params=mode))
    hook.before_train(runner)
    hook.before_train_epoch(runner)  # w0 := current backbone
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    perturb(model)  # so that w != w0 and every term of Eq. 2 is non-zero
    w = {n: p.detach().clone() for n, p in model.named_parameters()}

    zero_task_grads(model)
    runner.optim_wrapper.step()

    targets = {'backbone.' + n for n in regularised(model, mode)}
    for n, p in model.named_parameters():
        if n in targets:
            wn, w0n = w[n], w0[n]
            expected = wn - lr * lam * (2 * alpha * (wn - w0n) + 2 *
                                        (1 - alpha) * wn)
        else:
            expected = w[n]  # head, and BN / biases in 'weights' mode
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-15)
    if alpha == 0:  # plain ridge: SGD with weight_decay = 2 * lam
        n = 'backbone.0.weight'
        torch.testing.assert_close(
            model.get_parameter(n).detach(), w[n] * (1 - lr * 2 * lam))


@pytest.mark.parametrize('mode', ['weights', 'all'])
def test_logged_value_is_lambda_omega(mode):
    alpha, lam = 0.3, 0.02
    model, runner, hook = make(
        hook_kwargs=dict(alpha=alpha, lam=lam, params=mode))
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    w0 = {
        n: p.detach().numpy().copy()
        for n, p in model.backbone.named_parameters()
    }
    perturb(model)
    w = {
        n: p.detach().numpy().copy()
        for n, p in model.backbone.named_parameters()
    }
    names = regularised(model, mode)
    expected = lam * (
        alpha * sum(np.sum((w[n] - w0[n])**2) for n in names) +
        (1 - alpha) * sum(np.sum(w[n]**2) for n in names))

    zero_task_grads(model)
    runner.optim_wrapper.step()
    hook.after_train_iter(runner, 0)
    logged = runner.message_hub.get_scalar('train/l2sp_loss').current()
    assert logged == pytest.approx(expected, rel=1e-12)
    # no optimizer step in an iteration -> nothing new is logged
    hook.after_train_iter(runner, 1)
    assert len(runner.message_hub.get_scalar('train/l2sp_loss').data[0]) == 1


def test_weight_decay_on_backbone_fails_clearly():
    model, runner, hook = make(weight_decay=1e-4)
    with pytest.raises(ValueError, match=r"decay_mult=0.*"):
        hook.before_train(runner)

    # the documented fix: backbone without decay, the head keeps its decay
    optim = build_optim_wrapper(
        model,
        dict(
            optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4),
            paramwise_cfg=dict(custom_keys={'backbone': dict(decay_mult=0.)})))
    runner = FakeRunner(model, optim)
    hook.before_train(runner)
    wd = {
        id(p): g['weight_decay']
        for g in optim.param_groups
        for p in g['params']
    }
    assert all(wd[id(p)] == 0 for p in model.backbone.parameters())
    assert all(wd[id(p)] == 1e-4 for p in model.head.parameters())


def test_anchor_previous_follows_each_epoch_pretrained_stays():
    model, runner, prev = make(hook_kwargs=dict(anchor='previous'))
    pre = L2SPHook(anchor='pretrained')
    for hook in (prev, pre):
        hook.before_train(runner)
    start = model.backbone[0].weight.detach().clone()
    for epoch in range(3):
        for hook in (prev, pre):
            hook.before_train_epoch(runner)
        now = model.backbone[0].weight.detach().clone()
        torch.testing.assert_close(prev._w0['0.weight'], now, rtol=0, atol=0)
        torch.testing.assert_close(pre._w0['0.weight'], start, rtol=0, atol=0)
        perturb(model, seed=epoch + 10)  # the epoch's training
    assert not torch.equal(prev._w0['0.weight'], start)
    # a snapshot is a copy, not a view of the live weights
    assert prev._w0['0.weight'].data_ptr() != \
        model.backbone[0].weight.data_ptr()


def test_frozen_and_gradless_params_are_skipped():
    model, runner, hook = make(hook_kwargs=dict(params='all', alpha=0.))
    model.backbone[0].weight.requires_grad_(False)  # partially frozen
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    frozen = model.backbone[0].weight.detach().clone()
    zero_task_grads(model)
    model.backbone[0].weight.grad = None
    model.backbone[5].bias.grad = None  # unused by this task
    bias = model.backbone[5].bias.detach().clone()
    runner.optim_wrapper.step()
    assert torch.equal(model.backbone[0].weight, frozen)
    assert torch.equal(model.backbone[5].bias.detach(), bias)
    assert model.backbone[5].bias.grad is None
    assert not torch.equal(model.backbone[5].weight.grad,
                           torch.zeros_like(model.backbone[5].weight))


def test_added_once_per_accumulated_step():
    lr, lam, alpha = 0.1, 0.05, 0.5
    model, _, hook = make(lr, hook_kwargs=dict(alpha=alpha, lam=lam))
    optim = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=lr), accumulative_counts=2)
    runner = FakeRunner(model, optim)
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    w0 = model.backbone[0].weight.detach().clone()
    perturb(model)
    w = model.backbone[0].weight.detach().clone()
    x = torch.randn(2, 3, 8, 8, dtype=torch.double)

    optim.update_params(0. * model(x).sum())  # accumulating: no step
    torch.testing.assert_close(model.backbone[0].weight.detach(), w)
    optim.update_params(0. * model(x).sum())  # real step: Eq. 2 once
    expected = w - lr * lam * (2 * alpha * (w - w0) + 2 * (1 - alpha) * w)
    torch.testing.assert_close(
        model.backbone[0].weight.detach(), expected, rtol=0, atol=1e-15)


def test_anchor_from_checkpoint_and_resume(tmp_path):
    model, runner, _ = make()
    stage1 = {
        f'backbone.{n}': p.detach().clone() + 1.
        for n, p in model.backbone.named_parameters()
    }
    path = str(tmp_path / 'stage1.pth')
    torch.save(dict(state_dict=stage1), path)
    hook = L2SPHook(anchor='pretrained', anchor_ckpt=path)
    hook.before_train(runner)
    torch.testing.assert_close(hook._w0['0.weight'],
                               stage1['backbone.0.weight'])

    bad = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict={'encoder.0.weight': torch.zeros(1)}), bad)
    with pytest.raises(KeyError, match='other.pth.*anchor_prefix'):
        L2SPHook(anchor='pretrained', anchor_ckpt=bad).before_train(runner)

    # without a file, the start weights travel in the checkpoint
    hook = L2SPHook(anchor='pretrained')
    hook.before_train(runner)
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)
    start = model.backbone[0].weight.detach().clone()
    perturb(model)
    resumed = L2SPHook(anchor='pretrained')
    resumed.after_load_checkpoint(runner, ckpt)
    resumed.before_train(runner)  # must not re-snapshot the moved weights
    torch.testing.assert_close(resumed._w0['0.weight'], start, rtol=0, atol=0)


@pytest.mark.parametrize('kwargs,match', [
    (dict(alpha=1.5), 'alpha'),
    (dict(lam=-1.), 'lam'),
    (dict(params='bn'), 'params'),
    (dict(anchor='first'), 'anchor'),
    (dict(anchor_ckpt='x.pth'), 'anchor_ckpt'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L2SPHook(**kwargs)


def test_model_without_backbone_fails_clearly():
    model, runner, _ = make()
    with pytest.raises(AttributeError, match='encoder'):
        L2SPHook(module='encoder').before_train(runner)


@pytest.mark.slow
def test_in_runner_two_epochs(tmp_path):
    """Registered hook in a real Runner: logs every step, re-anchors each
    epoch, and pulls the weights compared with the same run without it."""
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):

        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
            self.head = nn.Linear(8, 1)

        def forward(self, inputs, labels=None, mode='tensor'):
            out = self.head(self.backbone(inputs))
            return dict(loss=out.pow(2).mean()) if mode == 'loss' else out

    class Record(Hook):
        priority = 'LOW'  # after L2SPHook (NORMAL)

        def __init__(self):
            self.starts, self.anchors = [], []

        def before_train_epoch(self, runner):
            self.starts.append(
                runner.model.backbone[0].weight.detach().clone())
            l2sp = [h for h in runner.hooks if isinstance(h, L2SPHook)]
            if l2sp:
                self.anchors.append(l2sp[0]._w0['0.weight'].clone())

    torch.manual_seed(0)
    data = [dict(inputs=torch.randn(4)) for _ in range(6)]

    def run(lam):
        torch.manual_seed(1)
        record = Record()
        runner = Runner(
            model=Toy(),
            work_dir=str(tmp_path / f'lam{lam}'),
            train_dataloader=dict(
                dataset=data,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'),
                batch_size=2),
            train_cfg=dict(by_epoch=True, max_epochs=2),
            optim_wrapper=dict(
                optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4),
                paramwise_cfg=dict(
                    custom_keys={'backbone': dict(decay_mult=0.)})),
            param_scheduler=dict(
                type='CyclicCosineLR', period=3, by_epoch=False),
            custom_hooks=[dict(type='L2SPHook', alpha=0.5, lam=lam), record],
            default_hooks=dict(checkpoint=None),
            default_scope='muscle',
            experiment_name=f'l2sp_runner_{lam}')
        runner.train()
        return runner, record

    runner, record = run(lam=0.5)
    values, counts = runner.message_hub.get_scalar('train/l2sp_loss').data
    assert len(values) == 6  # 2 epochs x 3 iterations, one per step
    assert np.all(values > 0)
    assert len(record.anchors) == 2
    for start, anchor in zip(record.starts, record.anchors):
        torch.testing.assert_close(anchor, start, rtol=0, atol=0)
    assert not torch.equal(record.anchors[0], record.anchors[1])
    assert not runner.optim_wrapper.optimizer._optimizer_step_pre_hooks

    plain, _ = run(lam=0.)
    w = runner.model.backbone[0].weight
    w_plain = plain.model.backbone[0].weight
    assert w.norm() < w_plain.norm()  # the ridge part shrinks the weights
