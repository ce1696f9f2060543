# Copyright (c) muscle_mm contributors. All rights reserved.
"""Inference on new radiographs (issue 10, item 1): the inferencer gives
``tools/test.py``'s predictions for the same images, for the four task
models and a multi-task checkpoint; DICOM, 16-bit PNG and bad files in one
folder through ``tools/infer.py``."""
import csv
import json
import os
import os.path as osp
import pickle
import runpy
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from muscle_mm.apis import XrayInferencer
from muscle_mm.registry import MODELS
from muscle_mm.utils import register_all_modules

REPO = str(Path(__file__).resolve().parents[2])
FINETUNE = osp.join(REPO, 'configs', 'muscle', 'finetune', 'demo')
CONFIGS = {
    task: osp.join(FINETUNE, f'{task}_r18_scratch_demo.py')
    for task in ('pneumonia', 'mura', 'lung', 'tbx')
}
CL_DEMO = osp.join(REPO, 'configs', 'muscle', 'demo', 'cl_r18_demo.py')


def build_model(cfg) -> torch.nn.Module:
    register_all_modules(init_default_scope=False)
    cfg = cfg if isinstance(cfg, Config) else Config.fromfile(cfg)
    with DefaultScope.overwrite_default_scope('muscle_mm'):
        model = MODELS.build(cfg.model)
        model.init_weights()
    return model


def save(state_dict: dict, path) -> str:
    """A checkpoint laid out as tools/train.py writes them."""
    torch.save(dict(meta=dict(epoch=1), state_dict=state_dict), path)
    return str(path)


@pytest.fixture(autouse=True, scope='module')
def flush_denormals():
    """Randomly initialised heads produce denormal floats, which make CPU
    convolutions ~10x slower; flushing them to zero keeps these tests fast
    (it applies to both sides of every comparison)."""
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


@pytest.fixture(scope='module')
def workdir(demo_data_root, tmp_path_factory):
    """A working folder whose data/demo is the demo data (the demo configs
    read it relative to the current directory)."""
    cwd = tmp_path_factory.mktemp('infer')
    (cwd / 'data').mkdir()
    (cwd / 'data' / 'demo').symlink_to(
        demo_data_root, target_is_directory=True)
    return cwd


@pytest.fixture(scope='module')
def checkpoints(workdir):
    """Randomly initialised checkpoints of the four stage-3 demo models."""
    torch.manual_seed(0)
    return {
        task: save(build_model(config).state_dict(), workdir / f'{task}.pth')
        for task, config in CONFIGS.items()
    }


def run_test_tool(workdir, monkeypatch, config, checkpoint, dump):
    """tools/test.py on the config's test split, run in this process,
    with its predictions dumped (mmengine DumpResults)."""
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(sys, 'argv', [
        'test.py', config, checkpoint, '--work-dir',
        str(workdir / 'test'), '--dump',
        str(dump)
    ])
    runpy.run_path(osp.join(REPO, 'tools', 'test.py'), run_name='__main__')
    with open(dump, 'rb') as f:
        return pickle.load(f)


def read_json(out_dir, name):
    with open(osp.join(out_dir, f'{name}.json')) as f:
        return json.load(f)


def write_list(workdir, task: str, dumped: list, suffix: str = '.txt') -> str:
    """The dumped images as a list file, in the test split's order."""
    listing = workdir / f'{task}_images{suffix}'
    listing.write_text('\n'.join(osp.abspath(s['img_path'])
                                 for s in dumped) + '\n')
    return str(listing)


def check_against_dump(task: str, out, names: list, dumped: list) -> None:
    """The JSON (and mask) files of ``names`` hold ``tools/test.py``'s
    predictions ``dumped`` of the same images: same scores, the same mask
    at the original size, the same boxes in original coordinates."""
    classes = dict(
        pneumonia=['normal', 'pneumonia'],
        mura=['negative', 'abnormal'],
        lung=['background', 'lung'],
        tbx=['ActiveTuberculosis', 'ObsoletePulmonaryTuberculosis'])[task]
    for name, ref in zip(names, dumped):
        record = read_json(out, name)
        assert record['file'] == osp.abspath(ref['img_path'])
        assert record['status'] == 'ok'
        assert record['image_size'] == list(ref['ori_shape'])
        assert osp.isfile(out / f'{name}_vis.png')
        pred = record['predictions'][task]
        if task in ('pneumonia', 'mura'):
            assert list(pred['class_scores']) == classes
            np.testing.assert_allclose(
                list(pred['class_scores'].values()),
                ref['pred_score'].numpy(),
                rtol=0,
                atol=1e-6)
            assert pred['pred_label'] == int(ref['pred_label'])
        elif task == 'lung':
            mask = cv2.imread(
                str(out / osp.dirname(name) / pred['mask_file']),
                cv2.IMREAD_UNCHANGED)
            expected = ref['pred_sem_seg']['data'][0].numpy()
            assert mask.shape == tuple(ref['ori_shape'])
            np.testing.assert_array_equal(mask // 255, expected)
            assert pred['mask_area_px'] == int((expected == 1).sum())
            assert pred['mask_fraction'] == pytest.approx(
                (expected == 1).mean())
        else:
            inst = ref['pred_instances']
            assert len(pred['boxes']) == len(inst['scores']) > 0
            np.testing.assert_allclose([b['bbox'] for b in pred['boxes']],
                                       inst['bboxes'].numpy(),
                                       rtol=0,
                                       atol=1e-4)
            np.testing.assert_allclose([b['score'] for b in pred['boxes']],
                                       inst['scores'].numpy(),
                                       rtol=0,
                                       atol=1e-6)
            assert [b['label']
                    for b in pred['boxes']] == inst['labels'].tolist()
            assert {b['class_name'] for b in pred['boxes']} <= set(classes)


@pytest.mark.parametrize('task', ['mura', 'lung', 'tbx'])
def test_inferencer_gives_test_tool_predictions(task, workdir, checkpoints,
                                                monkeypatch):
    """The Python API on the test split (as a .lst list) gives
    tools/test.py's predictions (pneumonia: through the CLI, below); with
    an output folder, masks live in their PNG files, not in memory."""
    config, ckpt = CONFIGS[task], checkpoints[task]
    dumped = run_test_tool(workdir, monkeypatch, config, ckpt,
                           workdir / f'{task}_test.pkl')
    cfg = Config.fromfile(config)
    inferencer = XrayInferencer(
        config, ckpt, batch_size=cfg.test_dataloader.batch_size)
    out = workdir / f'{task}_out'
    items = inferencer(
        write_list(workdir, task, dumped, '.lst'),
        out_dir=str(out),
        show_progress=False)
    assert not any('mask' in p for i in items for p in i.predictions.values())
    assert [i.path
            for i in items] == [osp.abspath(s['img_path']) for s in dumped]
    check_against_dump(task, out, [i.name for i in items], dumped)
    with open(out / 'summary.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['file'] for r in rows] == [i.path for i in items]
    assert {r['status'] for r in rows} == {'ok'}


@pytest.mark.slow
def test_multitask_heads_equal_the_task_models(workdir, demo_data_root):
    """``task='all'`` on a stage-2 checkpoint runs each head; each gives
    what the stage-3 model with the same weights gives."""
    cfg = Config.fromfile(CL_DEMO)
    cfg.model.backbone.init_cfg = None  # no stage-1 file here
    torch.manual_seed(1)
    state = build_model(cfg).state_dict()
    ckpt = save(state, workdir / 'cl.pth')
    images = sorted(
        Path(demo_data_root, 'chest_xray', 'chest_xray',
             'test').rglob('*.jpeg'))[:3]
    assert images
    images = [str(p) for p in images]
    old_cwd = os.getcwd()
    os.chdir(workdir)
    try:
        multi = XrayInferencer(cfg, ckpt, task='all', batch_size=2)
        assert list(multi.tasks) == ['pneumonia', 'mura', 'lung', 'tbx']
        got = multi(images, show_progress=False)
        for task in multi.tasks:
            own = {
                k[len(f'tasks.{task}.'):]: v
                for k, v in state.items() if k.startswith(f'tasks.{task}.')
            }
            own.update({
                k: v
                for k, v in state.items() if k.startswith('backbone.')
            })
            task_cfg = Config.fromfile(CONFIGS[task])
            if task == 'tbx':  # the stage-2 demo's proposal counts
                task_cfg.model.test_cfg.rpn.update(
                    nms_pre=200, max_per_img=100)
            single = XrayInferencer(
                task_cfg, save(own, workdir / f'cl_{task}.pth'), batch_size=2)
            want = single(images, show_progress=False)
            for a, b in zip(got, want):
                pa, pb = a.predictions[task], b.predictions[task]
                if 'class_scores' in pa:
                    np.testing.assert_allclose(
                        list(pa['class_scores'].values()),
                        list(pb['class_scores'].values()),
                        atol=1e-5)
                elif 'mask' in pa:
                    np.testing.assert_array_equal(pa['mask'], pb['mask'])
                else:
                    np.testing.assert_allclose(
                        [b['bbox'] for b in pa['boxes']],
                        [b['bbox'] for b in pb['boxes']],
                        atol=1e-3)
    finally:
        os.chdir(old_cwd)


# ------------------------------------------------------- DICOM, bad files
@pytest.fixture(scope='module')
def scans(workdir, demo_data_root):
    """One radiograph as 8-bit PNG, 16-bit PNG, DICOM MONOCHROME2 and
    MONOCHROME1 (tools/misc/image_to_dicom.py; all the same pixels once
    loaded), a JPEG, a DICOM without suffix (as PACS exports name them), a
    corrupt and a truncated file in a subfolder, and files that are not
    read (a note, a suffixless text file, a DICOMDIR)."""
    src = sorted(
        Path(demo_data_root, 'chest_xray', 'chest_xray',
             'test').rglob('*.jpeg'))
    grey = cv2.imread(str(src[0]), cv2.IMREAD_GRAYSCALE).astype(np.float64)
    grey = np.rint((grey - grey.min()) * 255 / (grey.max() - grey.min()))
    grey = grey.astype(np.uint8)  # spans 0-255: every mapping keeps it
    root = workdir / 'scans'
    (root / 'more').mkdir(parents=True)
    cv2.imwrite(str(root / 'a8.png'), grey)
    cv2.imwrite(str(root / 'a16.png'), grey.astype(np.uint16) * 257)
    tool = runpy.run_path(osp.join(REPO, 'tools', 'misc', 'image_to_dicom.py'))
    tool['write_dicom'](grey, root / 'mono2.dcm')
    tool['write_dicom'](grey, root / 'mono1.dcm', monochrome1=True)
    jpeg = Path(src[1]).read_bytes()
    (root / 'more' / 'b.jpg').write_bytes(jpeg)
    (root / 'more' / 'truncated.jpg').write_bytes(jpeg[:len(jpeg) // 2])
    (root / 'more' / 'corrupt.png').write_bytes(b'\x89PNG not an image')
    tool['write_dicom'](grey, root / 'more' / 'IM0001')
    (root / 'more' / 'DICOMDIR').write_bytes(
        (root / 'more' / 'IM0001').read_bytes())  # an index: not read
    (root / 'more' / 'README').write_text('no suffix, not DICOM: not read')
    (root / 'notes.txt').write_text('not searched: not an image suffix')
    return root


def test_cli_gives_test_tool_predictions_and_skips_bad_files(
        workdir, checkpoints, scans, monkeypatch):
    """tools/infer.py on the pneumonia test split (a .txt list) and a
    folder: the test split's JSON hold tools/test.py's predictions; in the
    folder, the DICOMs (MONOCHROME1 inverted) and the 16-bit PNG score as
    the 8-bit PNG of the same pixels, and the corrupt and the truncated
    file are reported, skipped and listed in summary.csv."""
    config, ckpt = CONFIGS['pneumonia'], checkpoints['pneumonia']
    dumped = run_test_tool(workdir, monkeypatch, config, ckpt,
                           workdir / 'pneumonia_test.pkl')
    listing = write_list(workdir, 'pneumonia', dumped)
    out = workdir / 'cli_out'
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'infer.py'), config, ckpt, listing,
        str(scans), '--out-dir',
        str(out), '--batch-size', '16', '--task', 'pneumonia'
    ],
                          cwd=str(workdir),
                          env=dict(os.environ, OMP_NUM_THREADS='2'),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    total = len(dumped) + 8
    assert f'{total - 2} of {total} inputs done' in proc.stdout
    with open(out / 'summary.csv') as f:
        rows = list(csv.DictReader(f))
    names = {r['file']: r['output'] for r in rows}
    check_against_dump('pneumonia', out,
                       [names[osp.abspath(s['img_path'])] for s in dumped],
                       dumped)
    rows = {r['output']: r for r in rows[len(dumped):]}
    assert sorted(rows) == [
        'a16', 'a8', 'mono1', 'mono2', 'more/IM0001', 'more/b',
        'more/corrupt', 'more/truncated'
    ]
    assert '3 file(s) not read' in proc.stdout + proc.stderr
    for name in ('more/corrupt', 'more/truncated'):
        assert rows[name]['status'] == 'error'
        assert 'XrayDecodeError' in rows[name]['error']
        assert name.split('/')[1] in rows[name]['error']
        assert not read_json(out, name)['predictions']
        assert f'skipped {scans}/{name}' in proc.stderr
    scores = {}
    for name in ('a8', 'a16', 'mono2', 'mono1', 'more/IM0001', 'more/b'):
        assert rows[name]['status'] == 'ok', rows[name]
        assert osp.isfile(out / f'{name}_vis.png')
        scores[name] = read_json(
            out, name)['predictions']['pneumonia']['class_scores']
        assert set(scores[name]) == {'normal', 'pneumonia'}
    for name in ('a16', 'mono2', 'mono1', 'more/IM0001'):
        assert scores[name] == scores['a8'], name


def test_features_of_a_folder(workdir, checkpoints, scans):
    """Pooled backbone features: one row per readable file, the classifier's
    own pooled features (its neck), same pixels same row."""
    inferencer = XrayInferencer(
        CONFIGS['pneumonia'], checkpoints['pneumonia'], batch_size=3)
    out = workdir / 'features'
    feats, items = inferencer.extract_features(
        str(scans), out_dir=str(out), show_progress=False)
    ok = [i for i in items if i.status == 'ok']
    assert feats.shape == (len(ok), 512) == (6, 512)
    np.testing.assert_array_equal(np.load(out / 'features.npy'), feats)
    with open(out / 'features.csv') as f:
        index = list(csv.DictReader(f))
    rows = {osp.basename(r['file']): r['row'] for r in index}
    assert rows['corrupt.png'] == '' and rows['truncated.jpg'] == ''
    a8, mono1 = feats[int(rows['a8.png'])], feats[int(rows['mono1.dcm'])]
    np.testing.assert_array_equal(a8, mono1)
    # the classifier's own neck (global average pooling) on the same image
    item = next(i for i in items if i.name == 'a8')
    spec = inferencer.tasks['pneumonia']
    data = spec.rest(spec.load(dict(img_path=item.path)))
    model = inferencer.model
    with torch.no_grad():
        batch = model.data_preprocessor(
            dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
            False)
        own = model.extract_feat(batch['inputs'])[-1]
    np.testing.assert_allclose(own[0].numpy(), a8, atol=1e-5)


def test_wrong_task_and_wrong_checkpoint_are_refused(checkpoints):
    from muscle_mm.utils.checkpoint_checks import CheckpointMismatchError
    with pytest.raises(ValueError, match='pneumonia task model'):
        XrayInferencer(
            CONFIGS['pneumonia'], checkpoints['pneumonia'], task='lung')
    with pytest.raises(CheckpointMismatchError):
        XrayInferencer(CONFIGS['lung'], checkpoints['pneumonia'])
