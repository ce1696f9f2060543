# Copyright (c) muscle_mm contributors. All rights reserved.
"""``tools/train.py --amp`` on every stage of MUSCLE (CPU: bfloat16).

The end-to-end tests build the runner as ``python tools/train.py CONFIG
--amp`` does (its ``parse_args`` and ``build_runner``, hence ``merge_args``'
choice of optimizer wrapper), train on the demo data and compare the
parameter update of the optimizer steps with the float32 run of the same
config from the same weights and data: ``err = |d_amp - d_fp32| / |d_fp32|``
over the parameters the float32 steps moved.

``TOL = 0.6``, and why. bfloat16 keeps 8 significant bits. At random
initialisation the gradient of a step is a sum with much cancellation
(near-chance losses, BatchNorm statistics of few images), so bfloat16's
update differs from float32's by far more than its rounding, most in the
first layers. Measured here at batch 8: MD-MoCo 0.34 (its key encoder
equals the query one at step 0, so q and k nearly coincide), classifier
0.12, DeepLabV3 0.20, Faster R-CNN 0.15; the CL run (batch 2) 0.08.

The broken paths miss TOL anyway. Without autocast the update equals
float32's (err = 0, refused; the first convolution must output bfloat16).
Gradients left loss-scaled miss by the scale (2^16). In the CL run the
backbone is moved away from L2-SP's anchor so that Eq. 2's term is most of
the update: the run without the term misses TOL (0.93, asserted), as would
a term added to loss-scaled gradients (divided by 2^16); the GradScaler run
is also checked against the bfloat16 one to 1e-5.
"""
import importlib.util
import os
import os.path as osp
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.hooks import Hook

import muscle_mm.engine.optimizers.amp as amp_choice
from muscle_mm.engine.optimizers import CPUAmpOptimWrapper
from muscle_mm.utils.compat import float32_mmcv_ops_under_cpu_autocast

REPO = str(Path(__file__).resolve().parents[3])
TOL = 0.6
BATCH = 8  # images per step: at 2, BN statistics cancel in bfloat16
CL_BATCH = 2  # the L2-SP term dominates the CL test's update
MOVE = 2.  # backbone move from the L2-SP anchor, in units of mean |w|
TASK_DATA = dict(pneumonia='pneumonia', mura='mura', lung='lung', tbx='tbx11k')


def load_train_tool():
    spec = importlib.util.spec_from_file_location(
        'tool_train', osp.join(REPO, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_tool = load_train_tool()


class Record(Hook):
    """The summed parameter updates of the optimizer steps and the dtypes of
    the first convolution's output in training steps (not in the forward
    passes that re-estimate BN statistics); with ``move``, the backbone's
    weights are
    moved from L2-SP's anchor after L2SPHook takes it (priority LOW), a move
    not counted as an update."""

    priority = 'LOW'
    in_step = False

    def __init__(self, move: float = 0.):
        self.move = move
        self.dtypes = set()
        self.update = {}

    @staticmethod
    def _params(runner):
        return {
            n: p.detach().clone()
            for n, p in runner.model.named_parameters() if p.requires_grad
        }

    def before_train(self, runner):
        self.wrapper = type(runner.optim_wrapper).__name__
        self.start = self._params(runner)
        self.update = {n: torch.zeros_like(w) for n, w in self.start.items()}
        conv = next(m for m in runner.model.modules()
                    if isinstance(m, nn.Conv2d))
        conv.register_forward_hook(lambda m, i, o: self.dtypes.add(o.dtype)
                                   if self.in_step else None)

    def before_train_epoch(self, runner):
        if not self.move:
            return
        gen = torch.Generator().manual_seed(runner.train_loop.epoch)
        with torch.no_grad():
            for p in runner.model.backbone.parameters():
                if p.ndim >= 2:
                    p.add_(self.move * p.abs().mean() *
                           torch.randn(p.shape, generator=gen))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._before = self._params(runner)
        self.in_step = True

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        self.in_step = False
        for n, w in self._params(runner).items():
            self.update[n] += w - self._before[n]

    def after_train(self, runner):
        scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
        self.loss_scale = scaler.get_scale() if scaler else None


def train(config, work_dir, options=(), amp=False, move=0.):
    """``tools/train.py CONFIG [--amp] --cfg-options ...``, recorded."""
    argv = [
        osp.join(REPO, config), '--work-dir',
        str(work_dir), '--no-validate', '--cfg-options', 'log_level=WARNING',
        'default_hooks.checkpoint=None', *options
    ]
    runner = train_tool.build_runner(
        train_tool.parse_args(argv + (['--amp'] if amp else [])))
    record = Record(move)
    runner.register_hook(record)
    runner.train()
    return record


def update_error(ref: Record, other: Record) -> float:
    for n, w in ref.start.items():  # same initial weights
        assert torch.equal(w, other.start[n]), n
    names = [n for n, d in ref.update.items() if d.any()]
    d_ref, d_other = (
        torch.cat([r.update[n].flatten() for n in names])
        for r in (ref, other))
    return ((d_other - d_ref).norm() / d_ref.norm()).item()


@pytest.fixture(scope='module')
def workdir(demo_data_root, tmp_path_factory):
    """A folder with ``data/demo`` (the demo configs' data root, relative to
    the current directory) and one-step dataset configs of the CL tasks."""
    root = tmp_path_factory.mktemp('amp')
    os.makedirs(root / 'data')
    os.symlink(demo_data_root, root / 'data' / 'demo')
    for task, name in TASK_DATA.items():
        (root / f'{task}_one_step.py').write_text(
            f"_base_ = ['{REPO}/configs/_base_/datasets/demo/{name}.py']\n"
            f'train_dataloader = dict(batch_size={CL_BATCH}, '
            f'dataset=dict(indices={CL_BATCH}))\n')
    return root


def gpu_path():
    """What ``--amp`` selects on a GPU (AmpOptimWrapper, float16 with
    dynamic loss scaling), with torch's CPU GradScaler in place of the CUDA
    one, so the scaler, its unscale before the optimizer step and the
    hooks run here; autocast is mmengine's on CPU (bfloat16)."""
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_wrapper

    # on GPUs mmcv's kernels have float16; on CPU they need the float32 fix
    float32_mmcv_ops_under_cpu_autocast()
    patches = [
        mock.patch.object(amp_choice, 'is_cuda_available', lambda: True),
        mock.patch.object(amp_wrapper, 'is_cuda_available', lambda: True),
        mock.patch.object(amp_wrapper, 'GradScaler',
                          lambda **kw: torch.amp.GradScaler('cpu', **kw)),
    ]
    for patch in patches:
        patch.start()
    return patches


# ---------------------------------------------------------------- choice
def merged(amp=True, **optim_wrapper):
    cfg = Config(
        dict(
            optim_wrapper=dict(
                optimizer=dict(type='SGD', lr=0.1), **optim_wrapper)))
    args = train_tool.parse_args(['x.py'] + (['--amp'] if amp else []))
    return train_tool.merge_args(cfg, args).optim_wrapper


def test_amp_selects_the_cpu_wrapper_without_gpu():
    assert not torch.cuda.is_available()  # conftest hides GPUs
    wrapper = merged(type='OptimWrapper')
    assert wrapper.type == 'muscle_mm.CPUAmpOptimWrapper'
    assert 'loss_scale' not in wrapper  # bfloat16: no loss scaling
    assert merged(type='AmpOptimWrapper', loss_scale=512.).type == \
        'muscle_mm.CPUAmpOptimWrapper'
    assert merged(amp=False).get('type') is None


def test_amp_on_gpu_is_mmengines_wrapper_as_before():
    with mock.patch.object(amp_choice, 'is_cuda_available', lambda: True):
        wrapper = merged(type='OptimWrapper')
        assert wrapper.type == 'AmpOptimWrapper'
        assert wrapper.loss_scale == 'dynamic'
        assert merged(loss_scale=512.).loss_scale == 512.


def test_cpu_wrapper_refuses_float16():
    params = [nn.Parameter(torch.zeros(1))]
    with pytest.raises(ValueError, match='bfloat16 only'):
        CPUAmpOptimWrapper(
            optimizer=torch.optim.SGD(params, lr=0.1), dtype='float16')


def test_mmcv_ops_run_in_float32_under_cpu_autocast():
    """nms and roi_align (no bfloat16 CPU kernels) under bfloat16 autocast:
    the float32 results of the same inputs, in the input's dtype, and
    gradients flow back."""
    from mmcv.ops import RoIAlign, nms
    float32_mmcv_ops_under_cpu_autocast()
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(20, 2, generator=gen) * 50
    boxes = torch.cat([xy, xy + 10 + torch.rand(20, 2, generator=gen) * 20],
                      1).bfloat16()
    scores = torch.rand(20, generator=gen).bfloat16()
    feats = torch.randn(2, 4, 16, 16, generator=gen).bfloat16()
    rois = torch.tensor([[0, 1., 1., 9., 9.], [1, 2., 3., 15., 12.]])
    align = RoIAlign((3, 3), spatial_scale=1., sampling_ratio=2)

    _, expected_keep = nms(boxes.float(), scores.float(), 0.5)
    expected = align(feats.float(), rois)
    leaf = feats.clone().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        _, keep = nms(boxes, scores, 0.5)
        out = align(leaf, rois)
        out.float().sum().backward()
    assert torch.equal(keep, expected_keep)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected.bfloat16(), rtol=0, atol=0)
    assert leaf.grad.dtype == torch.bfloat16 and leaf.grad.abs().sum() > 0


# ------------------------------------------------------------- end to end
ONE_STEP = [
    f'train_dataloader.batch_size={BATCH}',
    f'train_dataloader.dataset.indices={BATCH}', 'train_cfg.max_epochs=1',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False'
]


@pytest.mark.slow
@pytest.mark.parametrize(
    'config', [
        'configs/muscle/demo/mdmoco_r18_demo.py',
        'configs/muscle/finetune/demo/pneumonia_r18_scratch_demo.py',
        'configs/muscle/finetune/demo/lung_r18_scratch_demo.py',
        'configs/muscle/finetune/demo/tbx_r18_scratch_demo.py',
    ],
    ids=['mdmoco', 'classification', 'deeplabv3', 'faster_rcnn'])
def test_one_step_equals_float32(config, workdir, monkeypatch):
    """Stage 1 (MD-MoCo) and the three stage-3 task types."""
    monkeypatch.chdir(workdir)
    name = osp.basename(config)[:-3]
    ref = train(config, workdir / name / 'fp32', ONE_STEP)
    amp = train(config, workdir / name / 'amp', ONE_STEP, amp=True)
    assert ref.wrapper == 'OptimWrapper' and ref.dtypes == {torch.float32}
    assert amp.wrapper == 'CPUAmpOptimWrapper'
    assert amp.dtypes == {torch.bfloat16}
    err = update_error(ref, amp)
    assert 0 < err < TOL, err


CL = 'configs/muscle/demo/cl_r18_demo.py'


@pytest.fixture(scope='module')
def cl_options(workdir):
    """One round of the four tasks, one step each, from a random backbone."""
    return [
        'model.backbone.init_cfg=None', 'train_cfg.rounds=1',
        'train_cfg.loader_overrides.num_workers=0',
        'train_cfg.loader_overrides.persistent_workers=False'
    ] + [
        f'train_dataloader.{task}={workdir}/{task}_one_step.py'
        for task in TASK_DATA
    ]


@pytest.mark.slow
def test_cl_run_with_l2sp(workdir, cl_options, monkeypatch):
    """Stage 2 (MultiTaskCLLoop, the four task models, L2SPHook): the
    bfloat16 run equals the float32 one within TOL, while the same run
    without Eq. 2's term misses it; the GPU path (AmpOptimWrapper with a
    GradScaler) gives the bfloat16 run's update: L2-SP sees unscaled
    gradients there."""
    monkeypatch.chdir(workdir)
    ref = train(CL, workdir / 'cl_fp32', cl_options, move=MOVE)
    amp = train(CL, workdir / 'cl_amp', cl_options, amp=True, move=MOVE)
    assert amp.wrapper == 'CPUAmpOptimWrapper'
    assert amp.dtypes == {torch.bfloat16}
    err = update_error(ref, amp)
    assert 0 < err < TOL, err

    no_l2sp = train(
        CL,
        workdir / 'cl_no_l2sp',
        cl_options + ['custom_hooks.0.distance_weight=0.'],
        move=MOVE)
    assert update_error(ref, no_l2sp) > TOL

    patches = gpu_path()
    try:
        scaled = train(
            CL, workdir / 'cl_scaler', cl_options, amp=True, move=MOVE)
    finally:
        for patch in patches:
            patch.stop()
    assert scaled.wrapper == 'AmpOptimWrapper'
    assert scaled.loss_scale == 2.**16  # scaled, and no step skipped
    # the loss scale is a power of 2: scaling and unscaling are exact
    for n, d in amp.update.items():
        torch.testing.assert_close(scaled.update[n], d, rtol=1e-5, atol=0)
