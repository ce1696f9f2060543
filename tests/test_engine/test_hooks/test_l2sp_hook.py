# Copyright (c) muscle_mm contributors. All rights reserved.
"""L2SPHook against Eq. 2 of the MUSCLE paper, computed by hand."""
import copy
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.hooks import LoggerHook
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

    def __init__(self, model, optim_wrapper, hooks=(), iters_per_epoch=6):
        self.model = model
        self.optim_wrapper = optim_wrapper
        self.hooks = list(hooks)
        self.train_dataloader = range(iters_per_epoch)
        self.message_hub = MessageHub.get_instance(f'l2sp_{id(self)}')


def make(lr=0.1, weight_decay=0., hook_kwargs=None, seed=0):
    torch.manual_seed(seed)
    model = Net().double()
    optim = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay))
    hook = L2SPHook(**dict(dict(distance_weight=0.05), **(hook_kwargs or {})))
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
    """Eq. 2 = the optimizer's weight decay 2λ(1-α) (ridge, every parameter)
    + the hook's distance term λα||w - w0||² (regularised parameters)."""
    lr, lam = 0.1, 0.05
    model, runner, hook = make(
        lr,
        weight_decay=2 * lam * (1 - alpha),
        hook_kwargs=dict(distance_weight=lam * alpha, params=mode))
    hook.before_train(runner)
    hook.before_train_epoch(runner)  # w0 := current backbone
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    perturb(model)  # so that w != w0 and every term of Eq. 2 is non-zero
    w = {n: p.detach().clone() for n, p in model.named_parameters()}

    zero_task_grads(model)
    runner.optim_wrapper.step()

    targets = {'backbone.' + n for n in regularised(model, mode)}
    for n, p in model.named_parameters():
        wn, w0n = w[n], w0[n]
        if n in targets:
            expected = wn - lr * lam * (2 * alpha * (wn - w0n) + 2 *
                                        (1 - alpha) * wn)
            added = 2 * lam * alpha * (wn - w0n)
        else:  # head, and BN / biases in 'weights' mode: the ridge only
            expected = wn - lr * lam * 2 * (1 - alpha) * wn
            added = torch.zeros_like(wn)
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-15)
        # the hook adds the distance term to the gradient, nothing else
        torch.testing.assert_close(p.grad, added, rtol=0, atol=1e-15)


@pytest.mark.parametrize('mode', ['weights', 'all'])
def test_logged_value_is_the_distance_term(mode):
    distance = 0.02
    model, runner, hook = make(
        hook_kwargs=dict(distance_weight=distance, params=mode))
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
    expected = distance * sum(
        np.sum((w[n] - w0[n])**2) for n in regularised(model, mode))

    hook.after_train_iter(runner, 0)  # also without an optimizer step
    logged = runner.message_hub.get_scalar('train/l2sp').current()
    assert logged == pytest.approx(expected, rel=1e-12)


def test_logged_on_the_logger_hooks_iterations_only():
    model, runner, hook = make()
    # LoggerHook logs every 3rd iteration and at the end of a 7-iteration
    # epoch; the hook computes its value there only
    runner.hooks = [LoggerHook(interval=3)]
    runner.train_dataloader = range(7)
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    with mock.patch.object(hook, '_value', return_value=1.) as value:
        for idx in range(7):
            hook.after_train_iter(runner, idx)
    assert value.call_count == 3  # batch_idx 2, 5 and 6 (end of epoch)

    runner.hooks = []  # no LoggerHook: every iteration
    hook.before_train(runner)
    with mock.patch.object(hook, '_value', return_value=1.) as value:
        for idx in range(7):
            hook.after_train_iter(runner, idx)
    assert value.call_count == 7


def test_ridge_is_the_optimizers_weight_decay():
    """The backbone keeps the optimizer's weight decay, as under MUSCLE--;
    turning it off there (the setting of the former hook) is warned about."""
    model, runner, hook = make(weight_decay=1e-4)
    with mock.patch('muscle_mm.engine.hooks.l2sp_hook.print_log') as log:
        hook.before_train(runner)
    log.assert_not_called()

    optim = build_optim_wrapper(
        model,
        dict(
            optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4),
            paramwise_cfg=dict(custom_keys={'backbone': dict(decay_mult=0.)})))
    runner = FakeRunner(model, optim)
    with mock.patch('muscle_mm.engine.hooks.l2sp_hook.print_log') as log:
        hook.before_train(runner)
    log.assert_called_once()
    assert 'decay_mult' in log.call_args.args[0]


def test_anchor_previous_follows_each_epoch_pretrained_stays():
    model, runner, prev = make(hook_kwargs=dict(anchor='previous'))
    pre = L2SPHook(distance_weight=1., anchor='pretrained')
    for hook in (prev, pre):
        hook.before_train(runner)
    start = model.backbone[0].weight.detach().clone()
    for epoch in range(3):
        for hook in (prev, pre):
            hook.before_train_epoch(runner)
        now = model.backbone[0].weight.detach().clone()
        torch.testing.assert_close(prev.w0['0.weight'], now, rtol=0, atol=0)
        torch.testing.assert_close(pre.w0['0.weight'], start, rtol=0, atol=0)
        perturb(model, seed=epoch + 10)  # the epoch's training
    assert not torch.equal(prev.w0['0.weight'], start)
    # a snapshot is a copy, not a view of the live weights
    assert prev.w0['0.weight'].data_ptr() != \
        model.backbone[0].weight.data_ptr()


def test_frozen_and_gradless_params_are_skipped():
    model, runner, hook = make(hook_kwargs=dict(params='all'))
    model.backbone[0].weight.requires_grad_(False)  # partially frozen
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    perturb(model)  # w != w0: the distance term is non-zero
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
    model, _, hook = make(lr, hook_kwargs=dict(distance_weight=lam * alpha))
    optim = OptimWrapper(
        torch.optim.SGD(
            model.parameters(), lr=lr, weight_decay=2 * lam * (1 - alpha)),
        accumulative_counts=2)
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


def test_amp_sees_unscaled_gradients_and_skips_overflow():
    """GradScaler.step (AmpOptimWrapper's) unscales before optimizer.step,
    hence before the pre-hook, and skips both on inf/nan gradients."""
    lr, distance = 0.1, 0.05
    model, runner, hook = make(lr, hook_kwargs=dict(distance_weight=distance))
    optimizer = runner.optim_wrapper.optimizer
    scaler = torch.amp.GradScaler('cpu', init_scale=2.**10)
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    w0 = model.backbone[0].weight.detach().clone()
    perturb(model)
    w = model.backbone[0].weight.detach().clone()

    scaler.scale((2 * model.backbone[0].weight).sum()).backward()
    scaler.step(optimizer)
    scaler.update()
    expected = w - lr * (2. + 2 * distance * (w - w0))
    torch.testing.assert_close(
        model.backbone[0].weight.detach(), expected, rtol=0, atol=1e-15)

    optimizer.zero_grad()
    before = model.backbone[0].weight.detach().clone()
    (model.backbone[0].weight.sum() * float('inf')).backward()
    scaler.step(optimizer)  # overflow: no step, no L2-SP
    assert torch.equal(model.backbone[0].weight.detach(), before)


def test_amp_with_fused_optimizer_scales_the_term_like_the_gradients():
    """A fused optimizer unscales inside its own step: GradScaler hands it
    scaled gradients and `grad_scale`, so the pre-hook must add the term
    scaled too; the step is still Eq. 2's."""
    lr, distance = 0.1, 0.05
    model, runner, hook = make(lr, hook_kwargs=dict(distance_weight=distance))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, fused=True)
    runner.optim_wrapper = OptimWrapper(optimizer)
    scaler = torch.amp.GradScaler('cpu', init_scale=2.**10)
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    w0 = model.backbone[0].weight.detach().clone()
    perturb(model)
    w = model.backbone[0].weight.detach().clone()

    scaler.scale((2 * model.backbone[0].weight).sum()).backward()
    scaler.step(optimizer)
    scaler.update()
    expected = w - lr * (2. + 2 * distance * (w - w0))
    torch.testing.assert_close(
        model.backbone[0].weight.detach(), expected, rtol=0, atol=1e-15)
    assert not hasattr(optimizer, 'grad_scale')  # only set during the step

    # explicitly unscaled first (AmpOptimWrapper with clip_grad): no scale
    optimizer.zero_grad()
    w = model.backbone[0].weight.detach().clone()
    scaler.scale((2 * model.backbone[0].weight).sum()).backward()
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    expected = w - lr * (2. + 2 * distance * (w - w0))
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
    hook = L2SPHook(distance_weight=1., anchor='pretrained', anchor_ckpt=path)
    hook.before_train(runner)
    torch.testing.assert_close(hook.w0['0.weight'],
                               stage1['backbone.0.weight'])

    bad = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict={'encoder.0.weight': torch.zeros(1)}), bad)
    with pytest.raises(KeyError, match='other.pth.*anchor_prefix'):
        L2SPHook(
            distance_weight=1., anchor='pretrained',
            anchor_ckpt=bad).before_train(runner)

    # without a file, the start weights travel in the checkpoint
    hook = L2SPHook(distance_weight=1., anchor='pretrained')
    hook.before_train(runner)
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)
    start = model.backbone[0].weight.detach().clone()
    perturb(model)
    resumed = L2SPHook(distance_weight=1., anchor='pretrained')
    resumed.after_load_checkpoint(runner, ckpt)
    resumed.before_train(runner)  # must not re-snapshot the moved weights
    torch.testing.assert_close(resumed.w0['0.weight'], start, rtol=0, atol=0)


@pytest.mark.parametrize('kwargs,match', [
    (dict(distance_weight=-1.), 'distance_weight'),
    (dict(params='bn'), 'params'),
    (dict(anchor='first'), 'anchor'),
    (dict(anchor_ckpt='x.pth'), 'anchor_ckpt'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L2SPHook(**dict(dict(distance_weight=0.05), **kwargs))


def test_model_without_backbone_fails_clearly():
    model, runner, _ = make()
    with pytest.raises(AttributeError, match='encoder'):
        L2SPHook(distance_weight=1., module='encoder').before_train(runner)


@pytest.mark.slow
def test_in_runner_two_epochs(tmp_path):
    """Registered hook in a real Runner: logs on the LoggerHook's
    iterations, re-anchors each epoch, and keeps the weights nearer to w0
    than the same run without it."""
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
                self.anchors.append(l2sp[0].w0['0.weight'].clone())

    torch.manual_seed(0)
    data = [dict(inputs=torch.randn(4)) for _ in range(6)]

    def run(distance):
        torch.manual_seed(1)
        record = Record()
        runner = Runner(
            model=Toy(),
            work_dir=str(tmp_path / f'distance{distance}'),
            train_dataloader=dict(
                dataset=data,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'),
                batch_size=2),
            train_cfg=dict(by_epoch=True, max_epochs=2),
            optim_wrapper=dict(
                optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4)),
            param_scheduler=dict(
                type='CyclicCosineLR', period=3, by_epoch=False),
            custom_hooks=[
                dict(type='L2SPHook', distance_weight=distance), record
            ],
            default_hooks=dict(
                checkpoint=None, logger=dict(type='LoggerHook', interval=2)),
            default_scope='muscle_mm',
            experiment_name=f'l2sp_runner_{distance}')
        runner.train()
        return runner, record

    runner, record = run(distance=0.5)
    values, counts = runner.message_hub.get_scalar('train/l2sp').data
    # 2 epochs x 3 iterations, logged at batch_idx 1 and 2 (end of epoch)
    assert len(values) == 4
    assert np.all(values > 0)
    assert len(record.anchors) == 2
    for start, anchor in zip(record.starts, record.anchors):
        torch.testing.assert_close(anchor, start, rtol=0, atol=0)
    assert not torch.equal(record.anchors[0], record.anchors[1])
    # the pull ends with training: a later step (e.g. of a user reusing the
    # optimizer) sees its own gradient only. With zero gradients, no
    # momentum and no weight decay, a step must leave every weight alone.
    optimizer = runner.optim_wrapper.optimizer
    optimizer.state.clear()
    for group in optimizer.param_groups:
        group['weight_decay'] = 0
    weights = [p.detach().clone() for p in runner.model.parameters()]
    for p in runner.model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for before, p in zip(weights, runner.model.parameters()):
        torch.testing.assert_close(p.detach(), before, rtol=0, atol=0)

    plain, plain_record = run(distance=0.)
    moved = runner.model.backbone[0].weight - record.anchors[1]
    moved_plain = plain.model.backbone[0].weight - plain_record.anchors[1]
    assert moved.norm() < moved_plain.norm()  # pulled towards w0


# -- MUSCLE vs MUSCLE-- (Sec. 3): the ablation switches L2-SP off, nothing
# else of the regularisation ---------------------------------------------
ABLATION = ('cl_r18', 'muscle_minus_r18')


@pytest.fixture(scope='module')
def ablation_runners(repo_root, tmp_path_factory):
    """Both real configs built as tools/train.py does, same weights."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from muscle_mm.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    built = {}
    for name in ABLATION:
        cfg = Config.fromfile(f'{repo_root}/configs/muscle/{name}.py')
        cfg.work_dir = str(tmp_path_factory.mktemp(name))
        cfg.log_level = 'WARNING'
        runner = Runner.from_cfg(cfg)
        # double: the weight decay's step (1e-4 * lr * w) is within float32
        # rounding of w
        runner.model.double()
        built[name] = (cfg, runner)
    # non-zero weights (for the ratio below), the same in both models
    gen = torch.Generator().manual_seed(0)
    weights = {
        n: 0.5 + torch.rand(p.shape, generator=gen, dtype=p.dtype)
        for n, p in built[ABLATION[0]][1].model.named_parameters()
    }
    return built, weights


def sgd_step(cfg, runner, weights, move=None):
    """One optimizer step with zero data gradients, Eq. 2's w0 = weights;
    `move` (name -> tensor) is added to the weights after the anchoring.
    Returns name -> (w before the step, w after, the parameter's lr)."""
    model = runner.model
    model.load_state_dict(weights, strict=False)
    runner.optim_wrapper = runner.build_optim_wrapper(
        copy.deepcopy(cfg.optim_wrapper))
    hooks = [h for h in runner.hooks if isinstance(h, L2SPHook)]
    for hook in hooks:
        hook.before_train(runner)
        hook.before_train_epoch(runner)
    with torch.no_grad():
        for n, d in (move or {}).items():
            model.get_parameter(n).add_(d)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    zero_task_grads(model)
    runner.optim_wrapper.step()
    for hook in hooks:
        hook.after_train(runner)
    lr = {
        id(p): g['lr']
        for g in runner.optim_wrapper.param_groups
        for p in g['params']
    }
    return {
        n: (before[n], p.detach().clone(), lr[id(p)])
        for n, p in model.named_parameters()
    }


@pytest.mark.slow
def test_muscle_and_muscle_minus_have_the_same_ridge(ablation_runners):
    """Effective ridge coefficient of every parameter (optimizer weight
    decay + what L2-SP adds in proportion to w, measured with w = w0): the
    same in MUSCLE and MUSCLE--, backbone and heads, BN and biases included,
    and the optimizer's configured weight decay."""
    built, weights = ablation_runners
    ridge = {}
    for name, (cfg, runner) in built.items():
        ridge[name] = {}
        for n, (w, w_new, lr) in sgd_step(cfg, runner, weights).items():
            coef = (w - w_new) / (lr * w)  # SGD: w_new = w - lr * c * w
            torch.testing.assert_close(
                coef, coef.flatten()[0].expand_as(coef), rtol=1e-6, atol=0)
            ridge[name][n] = coef.flatten()[0].item()
    muscle, minus = (ridge[name] for name in ABLATION)
    assert muscle.keys() == minus.keys()
    assert any(n.startswith('backbone.') and 'bn' in n for n in muscle)
    assert any(n.startswith('tasks.') for n in muscle)
    differ = {
        n: (muscle[n], minus[n])
        for n in muscle if muscle[n] != pytest.approx(minus[n], rel=1e-6)
    }
    first = next(iter(differ), None)
    assert not differ, (f'{len(differ)} parameters differ, e.g. {first}: '
                        f'{differ.get(first)} in (MUSCLE, MUSCLE--)')
    decay = built[ABLATION[0]][0].optim_wrapper.optimizer.weight_decay
    assert all(c == pytest.approx(decay, rel=1e-6) for c in muscle.values())


@pytest.mark.slow
def test_muscle_minus_lacks_only_the_distance_term(ablation_runners):
    """With w != w0, MUSCLE's step differs from MUSCLE--'s by the distance
    term of Eq. 2 on the backbone's weights, and nowhere else."""
    built, weights = ablation_runners
    gen = torch.Generator().manual_seed(1)
    move = {
        n: 0.1 * torch.randn(w.shape, generator=gen, dtype=w.dtype)
        for n, w in weights.items()
    }
    muscle, minus = (
        sgd_step(*built[name], weights, move) for name in ABLATION)
    cfg = built[ABLATION[0]][0]
    (l2sp, ) = [h for h in cfg.custom_hooks if h.type == 'L2SPHook']
    for n, (w, w_new, lr) in muscle.items():
        if n.startswith('backbone.') and w.ndim >= 2:
            expected = -lr * 2 * l2sp.distance_weight * move[n]
        else:
            expected = torch.zeros_like(w)
        torch.testing.assert_close(
            w_new - minus[n][1], expected, rtol=1e-6, atol=1e-12)
