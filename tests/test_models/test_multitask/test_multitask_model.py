# Copyright (c) muscle_mm contributors. All rights reserved.
"""MultiTaskModel: one backbone shared by native mmpretrain/mmseg/mmdet
models (MUSCLE Sec. 2.2)."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmpretrain.structures import DataSample
from mmseg.structures import SegDataSample

import muscle_mm.models.multitask  # noqa: F401 (registers MultiTaskModel)
from muscle_mm.models.multitask import build_task_model
from muscle_mm.registry import MODELS
from muscle_mm.utils import register_all_modules

register_all_modules()


def _cfg(repo_root, name='muscle_cl_r18'):
    return Config.fromfile(
        osp.join(repo_root, 'configs', '_base_', 'models', f'{name}.py'))


@pytest.fixture(scope='module')
def model(repo_root):
    torch.manual_seed(0)
    m = MODELS.build(_cfg(repo_root).model)
    m.init_weights()
    return m


def _images(n=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
        for _ in range(n)
    ]


def test_one_backbone_shared_by_stock_task_models(model):
    assert [type(t).__name__ for t in model.tasks.values()] == [
        'ImageClassifier', 'ImageClassifier', 'EncoderDecoder', 'FasterRCNN'
    ]
    ref = {k: p.data_ptr() for k, p in model.backbone.named_parameters()}
    for name, task in model.tasks.items():
        assert task.backbone is model.backbone, name
        ptrs = {k: p.data_ptr() for k, p in task.backbone.named_parameters()}
        assert ptrs == ref, name
        # not in the task's module tree: no duplicate anywhere
        assert 'backbone' not in dict(task.named_children())
        assert not any(k.startswith('backbone.') for k in task.state_dict())
    # a step on the shared weights is seen by every task
    p = next(model.backbone.parameters())
    with torch.no_grad():
        p.add_(1.0)
    for task in model.tasks.values():
        assert torch.equal(next(task.backbone.parameters()), p)
    with torch.no_grad():
        p.sub_(1.0)


def test_state_dict_holds_backbone_once(model):
    keys = list(model.state_dict())
    backbone_keys = [f'backbone.{k}' for k in model.backbone.state_dict()]
    assert [k for k in keys if '.backbone.' in k] == []
    assert [k for k in keys if k.startswith('backbone.')] == backbone_keys
    n_unique = len({id(p) for p in model.parameters()})
    assert n_unique == len(list(model.named_parameters()))
    # round trip into a freshly built model
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.zero_()
    other.load_state_dict(model.state_dict(), strict=True)
    for (k, a), b in zip(model.state_dict().items(),
                         other.state_dict().values()):
        assert torch.equal(a, b), k


def test_segmentation_runs_shared_weights_dilated(model, repo_root):
    """The lung task equals mmseg's own dilated ResNet with these weights."""
    seg_cfg = Config.fromfile(
        osp.join(repo_root,
                 'configs/_base_/models/tasks/lung_deeplabv3_r18.py'))
    reference = build_task_model(seg_cfg.model)  # mmseg-built, dilated
    lung_sd = {
        **{
            f'backbone.{k}': v
            for k, v in model.backbone.state_dict().items()
        },
        **model.tasks['lung'].state_dict()
    }
    reference.load_state_dict(lung_sd, strict=True)
    reference.eval()
    model.eval()
    inputs = _images(size=64)

    model.active_task = 'lung'
    out = model(inputs=inputs, mode='tensor')
    ref_out = reference(
        **reference.data_preprocessor(dict(inputs=inputs), False),
        mode='tensor')
    assert out.shape == (2, 2, 8, 8)  # output stride 8
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-5)

    # the backbone features alone, too, and plain geometry comes back after
    x = torch.randn(1, 3, 64, 64)
    with model.task_geometry('lung'):
        feats = model.backbone(x)
    ref_feats = reference.backbone(x)
    for a, b in zip(feats, ref_feats):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert [f.shape[-1] for f in feats] == [16, 8, 8, 8]
    assert [f.shape[-1] for f in model.backbone(x)] == [16, 8, 4, 2]


def test_dilated_backward_after_context(model, repo_root):
    """Gradients of the dilated forward match mmseg's dilated ResNet."""
    seg_cfg = Config.fromfile(
        osp.join(repo_root,
                 'configs/_base_/models/tasks/lung_deeplabv3_r18.py'))
    ref_backbone = build_task_model(seg_cfg.model).backbone
    ref_backbone.load_state_dict(model.backbone.state_dict())
    ref_backbone.eval()
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    with model.task_geometry('lung'):
        loss = model.backbone(x)[-1].square().mean()
    model.zero_grad()
    loss.backward()  # outside the context: geometry recorded by autograd
    ref_backbone(x)[-1].square().mean().backward()
    g = dict(ref_backbone.named_parameters())
    for k, p in model.backbone.named_parameters():
        torch.testing.assert_close(p.grad, g[k].grad, rtol=1e-4, atol=1e-6)
    model.zero_grad()


def test_detection_runs_plain_geometry(model, repo_root):
    det_cfg = Config.fromfile(
        osp.join(repo_root,
                 'configs/_base_/models/tasks/tbx_faster-rcnn_r18_fpn.py'))
    ref = build_task_model(det_cfg.model).backbone
    ref.load_state_dict(model.backbone.state_dict())
    ref.eval()
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with model.task_geometry('tbx'):
        feats = model.backbone(x)
    for a, b in zip(feats, ref(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_forward_delegates_to_active_task(model):
    """Own preprocessor and loss of each task, loss keys prefixed."""
    inputs = _images(size=64)
    model.train()
    cls_samples = [DataSample().set_gt_label(i % 2) for i in range(2)]
    task = model.tasks['mura']
    model.active_task = 'mura'
    data = model.data_preprocessor(
        dict(inputs=inputs, data_samples=cls_samples), True)
    torch.manual_seed(0)
    losses = model(**data, mode='loss')
    torch.manual_seed(0)
    own = task(**task.data_preprocessor(data, True), mode='loss')
    assert set(losses) == {f'mura.{k}' for k in own}
    torch.testing.assert_close(losses['mura.loss'], own['loss'])

    seg_samples = []
    for _ in range(2):
        s = SegDataSample(
            metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64)))
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, 2, (1, 64, 64), dtype=torch.long))
        seg_samples.append(s)
    model.active_task = 'lung'
    losses = model(inputs=inputs, data_samples=seg_samples, mode='loss')
    assert {'lung.decode.loss_ce', 'lung.aux.loss_ce'} <= set(losses)
    parsed, _ = model.parse_losses(losses)
    parsed.backward()
    # the inactive heads get no gradient, the shared backbone does
    assert all(p.grad is None for p in model.tasks['tbx'].parameters())
    assert next(model.backbone.parameters()).grad is not None
    model.zero_grad(set_to_none=True)

    model.eval()
    model.active_task = 'pneumonia'
    preds = model.val_step(dict(inputs=inputs, data_samples=cls_samples))
    assert len(preds) == 2 and preds[0].pred_score.shape == (2, )


def test_init_backbone_from_stage1_checkpoint(repo_root, tmp_path):
    """A MoCo-style checkpoint initialises the shared backbone."""
    cfg = _cfg(repo_root).model
    cfg.tasks = dict(pneumonia=cfg.tasks.pneumonia)
    stage1 = MODELS.build(
        dict(type='mmpretrain.ResNet', depth=18, out_indices=(0, 1, 2, 3)))
    state = {
        f'backbone.{k}': v + 0.5
        for k, v in stage1.state_dict().items() if v.is_floating_point()
    }
    state['neck.mlp.0.weight'] = torch.zeros(3, 3)  # ignored by the prefix
    ckpt = str(tmp_path / 'mdmoco.pth')
    torch.save(dict(state_dict=state), ckpt)
    cfg.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=ckpt, prefix='backbone.')
    m = MODELS.build(cfg)
    m.init_weights()
    loaded = m.backbone.state_dict()
    for k, v in state.items():
        if k.startswith('backbone.'):
            assert torch.equal(loaded[k[len('backbone.'):]], v), k


def test_bad_task_configs_fail_clearly(repo_root):
    cfg = _cfg(repo_root).model
    bad = copy.deepcopy(cfg)
    bad.tasks = dict(lung=bad.tasks.lung, big=bad.tasks.pneumonia)
    big = Config.fromfile(bad.tasks['big']).model
    big.backbone.depth = 50
    bad.tasks['big'] = big
    with pytest.raises(ValueError, match='task "big".*does not match'):
        MODELS.build(bad)
    missing = copy.deepcopy(cfg)
    missing.tasks = dict(x='/nonexistent/task.py')
    with pytest.raises(FileNotFoundError, match='nonexistent'):
        MODELS.build(missing)
    with pytest.raises(ValueError, match='non-empty'):
        MODELS.build(
            dict(type='MultiTaskModel', backbone=cfg.backbone, tasks={}))


def test_unknown_active_task(model):
    with pytest.raises(KeyError, match='unknown task "nope"'):
        model.active_task = 'nope'


def test_r50_tasks_share_one_backbone(repo_root):
    m = MODELS.build(_cfg(repo_root, 'muscle_cl_r50').model)
    assert all(t.backbone is m.backbone for t in m.tasks.values())
    x = torch.randn(1, 3, 64, 64)
    m.eval()
    plain = [f.shape[-1] for f in m.backbone(x)]
    with m.task_geometry('lung'):  # dilated: output stride 8
        assert [f.shape[-1] for f in m.backbone(x)] == [16, 8, 8, 8]
    with m.task_geometry('tbx'):
        assert [f.shape[-1] for f in m.backbone(x)] == plain == [16, 8, 4, 2]
    with pytest.raises(KeyError, match='unknown task "nope"'):
        m.task_geometry('nope')
