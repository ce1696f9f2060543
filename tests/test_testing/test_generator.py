# Copyright (c) muscle_mm contributors. All rights reserved.
"""Tests for the synthetic demo datasets (layouts, determinism, signals)."""
import csv
import hashlib
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from muscle_mm import testing as demo

phantoms = demo.phantoms
SCALE = 0.3
#: The output of generate_demo_data(root, seed=0, scale=0.3), pinned by
#: tree_digest: paths, the decoded pixels of PNGs/JPEGs (dtype, shape,
#: values; not the encoders' bytes, which a build with other libpng/zlib/
#: libjpeg may change) and the bytes of every other file. The pixels
#: themselves depend on the opencv version, since the phantoms are drawn
#: with it (same inputs, other outputs): float cv2.resize rounding in 4.12
#: (3 pixels by one level, TBX11K and bone age), thick cv2.line clipped
#: at the border and GaussianBlur in 4.13 (MURA and bone-age forearms, up
#: to 24% of the range over a few thousand pixels), cv2.putText (the
#: bone-age side marker 'L') in 5.0 and again in 5.1. So DIGEST is pinned
#: per opencv major.minor, checked with the opencv-python(-headless) wheels
#: 4.7.0 to 5.1.0 (numpy 2.4.6 from 4.10 on, 1.26.4 up to 4.10: the same
#: under 4.10; from 4.10 on, their PNG/JPEG bytes too were the same where
#: the pixels were), and STABLE pins, under any opencv, the folders whose
#: pixels are the same under all of them.
#: History (raw-byte digests then): the move from muscle_mm.datasets.demo
#: to muscle_mm.testing kept it (2e5f4670...); issue 13's learnable demo
#: changed the data on purpose (f91acb41..., then bolder MURA fractures in
#: version 3: 35927393...); issue 12's planted copies (version 4, raw bytes
#: 9d3630cb... under 5.1) added 12 images to NIH and Indiana and left the
#: other folders byte for byte as they were. Any other change of the output
#: must update it knowingly.
DIGEST = {
    '1e9dd8caaaaa7cd0879bbe277d85676482d093be950f1bf301b37801ff6700ca':
    ('4.7', '4.8', '4.9', '4.10', '4.11'),
    '429331f62e57827c3f47486747aaa3a51e436a31f7bc60c277b9c10b5aea5615':
    ('4.12', ),
    'a53549c36e7bc6faaeb02ba70aebd3b3619f550076ea53ea4f4c67e128d38d60':
    ('4.13', '4.14'),
    '80eefb15cb6be80f1e21756df0d370305b727c9855ed483e3913ac70e1c4b5e3':
    ('5.0', ),
    '3e6b5472a948f55146a877bc8ece88ed2b82025cfb14c267db288d83815f97e1':
    ('5.1', ),
}
#: sha256 of each folder (marker files left out) drawn alike by every opencv
#: above; MURA-v1.1, RSNA-BoneAge and TBX11K are pinned by DIGEST only.
STABLE = {
    'ChinaSet_AllFiles':
    '7560d6cda014d2f95b8c96f58933d22a0d08680696d84189b4613978e9014570',
    'IndianaCXR':
    'd2379e5dc3a54cf3502ef8f1f14c19819ad11c0271d54af49981dd977d369533',
    'Lung Segmentation':
    '50d7ad5929d32370d824fcb777d61a418e37d4b3653212d912285977c7c06477',
    'MontgomerySet':
    '30f9fed027b592ca9d06511c21145f5d84bdc8bfe4625a2ce90e19488b4deb75',
    'NIH-ChestXray14':
    'b34faed7ad5080b5d8b2066adaa7e9adc2d5f20d0264f91938a14b0990f7e509',
    'chest_xray':
    'ecc844063f5c4d5e7ca5be6c74fab39942883afe47fede98735e80db6d2b3e2b',
}
IMAGES = ('.png', '.jpg', '.jpeg')


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('demo')
    counts = demo.generate_demo_data(str(root), seed=0, scale=SCALE)
    assert set(counts) == set(demo.DEMO_DATASETS)
    assert all(n >= 4 for n in counts.values()), counts
    return root


def tree_digest(root: Path, markers: bool = True) -> str:
    """sha256 over the files under ``root``: each path and the sha256 of its
    content, for an image its decoded pixels with their dtype and shape."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob('*')):
        if path.is_file() and (markers or not path.name.startswith('.')):
            data = path.read_bytes()
            if path.suffix.lower() in IMAGES:
                img = cv2.imdecode(np.frombuffer(data, np.uint8),
                                   cv2.IMREAD_UNCHANGED)
                assert img is not None, path
                data = f'{img.dtype.str}{img.shape}'.encode() + img.tobytes()
            digest.update(path.relative_to(root).as_posix().encode() + b'\0')
            digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


def test_output_is_pinned(demo_root):
    """The pinned output, pixel for pixel: refactors leave the data alone."""
    for folder, digest in STABLE.items():
        assert tree_digest(demo_root / folder, markers=False) == digest, folder
    version = '.'.join(cv2.__version__.split('.')[:2])
    pinned = [d for d, versions in DIGEST.items() if version in versions]
    if not pinned:
        pytest.skip(f'no DIGEST pinned for opencv {cv2.__version__} (its '
                    'drawing may differ): check the output and add it')
    assert tree_digest(demo_root) == pinned[0]


def test_import_needs_neither_torch_nor_openmmlab():
    code = ('import sys, muscle_mm.testing; '
            "print(sorted(m for m in ('torch', 'mmengine', 'mmcv') "
            'if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code],
                         check=True,
                         capture_output=True,
                         text=True).stdout
    assert out.strip() == '[]'


def read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img


def grey(path: Path) -> np.ndarray:
    """Grey float image in [0, 1] whatever the bit depth/channels."""
    img = read(path)
    if img.ndim == 3:
        assert (img[..., 0] == img[..., 1]).all()
        img = img[..., 0]
    return img.astype(np.float32) / np.iinfo(img.dtype).max


def csv_rows(path: Path) -> list:
    with open(path, newline='') as f:
        return list(csv.reader(f))


def test_dataset_folders(demo_root):
    assert demo.DEMO_DATASETS['lung_masks'] == 'Lung Segmentation'
    for key, folder in demo.DEMO_DATASETS.items():
        marker = json.loads((demo_root / folder / '.complete').read_text())
        assert marker['seed'] == 0 and marker['images'] > 0, key


def test_nih_layout(demo_root):
    root = demo_root / 'NIH-ChestXray14'
    header = (root / 'Data_Entry_2017.csv').read_text().splitlines()[0]
    assert header == (
        'Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,'
        'Patient Gender,View Position,OriginalImage[Width,Height],'
        'OriginalImagePixelSpacing[x,y]')
    rows = csv_rows(root / 'Data_Entry_2017.csv')[1:]
    assert all(len(r) == 11 for r in rows)
    names = {r[0] for r in rows}
    for r in rows:
        labels = r[1].split('|')
        assert r[1] == 'No Finding' or set(labels) <= set(
            demo.generator.NIH_FINDINGS)
        assert r[0] == f'{int(r[3]):08d}_{int(r[2]):03d}.png'
    found = {p.name: p for p in root.glob('images_*/images/*.png')}
    assert set(found) == names
    assert {p.parent.parent.name for p in found.values()} == {
        'images_001', 'images_002'}
    planted = {c['copy'].split('/', 1)[1] for c in json.loads(
        (root / 'planted_copies.json').read_text())['copies']}
    originals = [p for p in found.values()
                 if p.relative_to(root).as_posix() not in planted]
    assert len(originals) == len(found) - len(planted)
    assert {read(p).dtype for p in originals[:5]} == {np.dtype(np.uint8)}
    train = (root / 'train_val_list.txt').read_text().split()
    test = (root / 'test_list.txt').read_text().split()
    assert set(train) | set(test) == names and not set(train) & set(test)
    pid = {n: n.split('_')[0] for n in names}
    assert not {pid[n] for n in train} & {pid[n] for n in test}


def test_shenzhen_montgomery_layout(demo_root):
    root = demo_root / 'ChinaSet_AllFiles'
    pngs = sorted((root / 'CXR_png').glob('CHNCXR_*_[01].png'))
    assert {p.stem[-1] for p in pngs} == {'0', '1'}
    assert {read(p).ndim for p in pngs} == {2, 3}  # some RGB-saved grey
    for p in pngs:
        lines = (root / 'ClinicalReadings' / f'{p.stem}.txt').read_text()
        sex_age, reading = lines.splitlines()
        assert sex_age.split()[0] in ('male', 'female')
        assert sex_age.endswith('yrs')
        assert (reading == 'normal') == p.stem.endswith('_0')

    root = demo_root / 'MontgomerySet'
    pngs = sorted((root / 'CXR_png').glob('MCUCXR_*_[01].png'))
    assert {p.stem[-1] for p in pngs} == {'0', '1'}
    for p in pngs:
        img = read(p)
        assert img.dtype == np.uint16 and img.ndim == 2
        assert 255 < img.max() <= 4095  # 12-bit in 16-bit PNG
        masks = [read(root / 'ManualMask' / s / p.name)
                 for s in ('leftMask', 'rightMask')]
        for m in masks:
            assert m.shape == img.shape and set(np.unique(m)) == {0, 255}
        assert not (masks[0] & masks[1]).any()
        assert (root / 'ClinicalReadings' / f'{p.stem}.txt').is_file()


def test_indiana_layout(demo_root):
    root = demo_root / 'IndianaCXR'
    pngs = {p.stem for p in (root / 'NLMCXR_png').glob('CXR*_IM-*.png')}
    assert 'CXR1_1_IM-0001-3001' in pngs
    referenced = []
    for xml in (root / 'NLMCXR_reports/ecgen-radiology').glob('*.xml'):
        tree = ET.parse(xml).getroot()
        assert tree.tag == 'eCitation'
        labels = {a.get('Label') for a in tree.iter('AbstractText')}
        assert {'FINDINGS', 'IMPRESSION'} <= labels
        ids = [p.get('id') for p in tree.iter('parentImage')]
        assert 1 <= len(ids) <= 2
        assert all(i.startswith(f'CXR{xml.stem}_') for i in ids)
        referenced += ids
    assert sorted(referenced) == sorted(pngs)


def test_boneage_layout(demo_root):
    root = demo_root / 'RSNA-BoneAge'
    rows = csv_rows(root / 'boneage-training-dataset.csv')
    assert rows[0] == ['id', 'boneage', 'male']
    dtypes = set()
    for img_id, age, male in rows[1:]:
        assert male in ('True', 'False') and 0 < int(age) <= 228
        dtypes.add(read(root / f'boneage-training-dataset/{img_id}.png').dtype)
    assert dtypes == {np.dtype(np.uint8), np.dtype(np.uint16)}


def test_pneumonia_layout(demo_root):
    root = demo_root / 'chest_xray/chest_xray'
    for split in ('train', 'val', 'test'):
        for cls in ('NORMAL', 'PNEUMONIA'):
            files = list((root / split / cls).glob('*.jpeg'))
            assert len(files) >= 2, (split, cls)
            for f in files:
                if cls == 'NORMAL':
                    assert f.name.startswith(('IM-', 'NORMAL2-IM-'))
                else:
                    assert f.stem.split('_')[1] in ('bacteria', 'virus')
            img = read(files[0])
            assert img.dtype == np.uint8 and img.ndim == 2
    patients = {
        split: {f.stem.split('_')[0]
                for f in (root / split / 'PNEUMONIA').glob('*.jpeg')}
        for split in ('train', 'val', 'test')
    }
    assert not patients['train'] & patients['test']
    persons = [f.stem.split('_')[0]
               for f in (root / 'train/PNEUMONIA').glob('*.jpeg')]
    assert len(set(persons)) < len(persons)  # several images per person


def test_mura_layout(demo_root):
    root = demo_root / 'MURA-v1.1'
    for split in ('train', 'valid'):
        parts = set()
        paths = csv_rows(root / f'{split}_image_paths.csv')
        studies = dict(csv_rows(root / f'{split}_labeled_studies.csv'))
        assert all(len(p) == 1 for p in paths)
        for (path, ) in paths:
            assert path.startswith(f'MURA-v1.1/{split}/XR_')
            assert (demo_root / path).is_file()  # relative to out_dir
            study = path.rsplit('/', 1)[0] + '/'
            assert studies[study] == str(int(study.endswith('_positive/')))
            parts.add(path.split('/')[2])
        assert set(studies.values()) == {'0', '1'}
        assert len(parts) == min(len(studies), 7)
    assert parts <= {f'XR_{p}' for p in phantoms.MURA_PARTS}


def test_lung_masks_layout(demo_root):
    root = demo_root / 'Lung Segmentation'
    pngs = sorted((root / 'CXR_png').glob('*.png'))
    assert {p.name[:6] for p in pngs} == {'CHNCXR', 'MCUCXR'}
    n_masks = 0
    for p in pngs:
        suffix = '_mask' if p.name.startswith('CHNCXR') else ''
        mask_path = root / 'masks' / f'{p.stem}{suffix}.png'
        if not mask_path.exists():
            continue
        n_masks += 1
        mask, img = read(mask_path), read(p)
        assert mask.shape == img.shape[:2]
        assert set(np.unique(mask)) == {0, 255}
        assert 0.05 < (mask > 0).mean() < 0.6
        # The mask is the dark lung field actually drawn in the image.
        g = grey(p)
        assert g[mask > 0].mean() < g[mask == 0].mean()
    assert 0 < n_masks < len(pngs)
    assert len(list((root / 'masks').iterdir())) == n_masks


def test_tbx11k_layout(demo_root):
    root = demo_root / 'TBX11K'
    for split in ('train', 'val'):
        coco = json.loads(
            (root / f'annotations/json/TBX11K_{split}.json').read_text())
        assert coco['categories'] == [
            {'id': 1, 'name': 'ActiveTuberculosis'},
            {'id': 2, 'name': 'ObsoletePulmonaryTuberculosis'},
            {'id': 3, 'name': 'PulmonaryTuberculosis'},
        ]
        images = {im['id']: im for im in coco['images']}
        assert {im['file_name'].split('/')[0]
                for im in images.values()} == {'tb', 'health', 'sick'}
        for im in images.values():
            img = read(root / 'imgs' / im['file_name'])
            assert img.shape == (im['height'], im['width'])
        boxed = {a['image_id'] for a in coco['annotations']}
        assert {images[i]['file_name'][:3] for i in boxed} == {'tb/'}
        assert boxed == {i for i, im in images.items()
                         if im['file_name'].startswith('tb/')}
        for a in coco['annotations']:
            x, y, w, h = a['bbox']
            assert a['iscrowd'] == 0 and a['area'] == w * h > 0
            assert x >= 0 and y >= 0 and x + w <= 256 and y + h <= 256
        names = [im['file_name'] for im in coco['images']]
        for lst in (f'TBX11K_{split}.txt', f'all_{split}.txt'):
            assert (root / 'lists' / lst).read_text().split() == names


def test_determinism_and_idempotency(demo_root, tmp_path):
    keys = ['montgomery', 'tbx11k', 'pneumonia', 'indiana']
    again = demo.generate_demo_data(str(tmp_path / 'a'), 0, SCALE, keys)
    other = demo.generate_demo_data(str(tmp_path / 'b'), 1, SCALE, keys)
    assert set(again) == set(keys)
    mcu = sorted((demo_root / 'MontgomerySet/CXR_png').glob('*.png'))
    files = [
        f'MontgomerySet/CXR_png/{mcu[0].name}',
        f'MontgomerySet/ManualMask/leftMask/{mcu[-1].name}',
        'TBX11K/annotations/json/TBX11K_train.json',
        'IndianaCXR/NLMCXR_reports/ecgen-radiology/1.xml',
    ] + [str(p.relative_to(demo_root)) for p in sorted(
        (demo_root / 'chest_xray/chest_xray/val').rglob('*.jpeg'))]
    for rel in files:
        ref = (demo_root / rel).read_bytes()
        assert (tmp_path / 'a' / rel).read_bytes() == ref, rel
    assert any((tmp_path / 'b' / rel).exists()
               and (tmp_path / 'b' / rel).read_bytes() !=
               (demo_root / rel).read_bytes() for rel in files)

    # Second call: nothing rewritten, same counts.
    probe = tmp_path / 'a' / files[0]
    stamp = probe.stat().st_mtime_ns
    assert demo.generate_demo_data(str(tmp_path / 'a'), 0, SCALE,
                                   keys) == again
    assert probe.stat().st_mtime_ns == stamp
    # An interrupted folder (no marker) is redone; overwrite forces it.
    (tmp_path / 'a/MontgomerySet/.complete').unlink()
    probe.unlink()
    demo.generate_demo_data(str(tmp_path / 'a'), 0, SCALE, ['montgomery'])
    assert probe.read_bytes() == (demo_root / files[0]).read_bytes()
    # Foreign (e.g. real) data is never touched.
    real = tmp_path / 'c' / 'TBX11K'
    real.mkdir(parents=True)
    (real / 'real.txt').write_text('x')
    with pytest.raises(FileExistsError):
        demo.generate_demo_data(str(tmp_path / 'c'), datasets=['tbx11k'],
                                overwrite=True)
    with pytest.raises(ValueError):
        demo.generate_demo_data(str(tmp_path / 'c'), datasets=['nope'])


def test_pneumonia_signal(demo_root):
    # Phantom level: opacities raise the density inside the lung masks.
    rng = np.random.default_rng(0)
    for _ in range(5):
        chest = phantoms.chest_phantom(rng, 200, 240, pediatric=True)
        before = chest.image[chest.lungs > 0].mean()
        phantoms.add_blobs(chest, rng, 2, (0.09, 0.13), 0.5, 0.45)
        assert chest.image[chest.lungs > 0].mean() > before + 0.02
    # Dataset level, at 64x64: lung windows are brighter with pneumonia.
    root = demo_root / 'chest_xray/chest_xray'

    def lung_mean(path):
        g = cv2.resize(grey(path), (64, 64), interpolation=cv2.INTER_AREA)
        return g[20:44, 10:26].mean() + g[20:44, 38:54].mean() - g.mean()

    means = {
        cls: np.mean([lung_mean(p) for split in ('train', 'val', 'test')
                      for p in (root / split / cls).glob('*.jpeg')])
        for cls in ('NORMAL', 'PNEUMONIA')
    }
    assert means['PNEUMONIA'] > means['NORMAL'] + 0.02, means


def test_tb_boxes_brighter(demo_root):
    root = demo_root / 'TBX11K'
    coco = json.loads(
        (root / 'annotations/json/TBX11K_train.json').read_text())
    files = {im['id']: im['file_name'] for im in coco['images']}
    wins = []
    for a in coco['annotations']:
        g = grey(root / 'imgs' / files[a['image_id']])
        x, y, w, h = a['bbox']
        m = max(2, max(w, h) // 2)
        ring = g[max(0, y - m):y + h + m, max(0, x - m):x + w + m]
        inside = g[y:y + h, x:x + w]
        ring_mean = (ring.sum() - inside.sum()) / (ring.size - inside.size)
        wins.append(inside.mean() > ring_mean)
    assert len(wins) >= 4 and np.mean(wins) >= 0.75, wins


def test_bone_age_and_mura_signals():
    rng = np.random.default_rng(0)
    # Older hands are larger (more bone pixels) - bone age is learnable.
    area = [(phantoms.hand_phantom(rng, 256, 208, age, True) > 0.5).mean()
            for age in (12, 60, 120, 200)]
    assert area == sorted(area), area
    # Implants add saturated metal; fractures change the bone outline.
    normal = phantoms.limb_phantom(np.random.default_rng(1), 256, 200,
                                   'FOREARM')
    metal = phantoms.limb_phantom(np.random.default_rng(1), 256, 200,
                                  'FOREARM', 'implant')
    broken = phantoms.limb_phantom(np.random.default_rng(1), 256, 200,
                                   'FOREARM', 'fracture')
    assert (metal >= 1).sum() > (normal >= 1).sum() + 50
    assert np.abs(broken - normal).max() > 0.3


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob('*')) if p.is_file()}


def test_concurrent_generators_leave_one_complete_folder(demo_root, tmp_path):
    """Two generators started together (two study runs on a fresh clone):
    both succeed and the folder is whole and identical to a single run's;
    no temporary folder is left behind."""
    repo = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, str(repo / 'tools/misc/generate_demo_data.py'),
           '--out', str(tmp_path), '--scale', str(SCALE),
           '--datasets', 'mura', 'pneumonia']
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT) for _ in range(3)]
    for p in procs:
        out = p.communicate(timeout=300)[0].decode()
        assert p.returncode == 0, out
    for folder in ('MURA-v1.1', 'chest_xray'):
        assert _tree(tmp_path / folder) == _tree(demo_root / folder), folder
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'MURA-v1.1', 'chest_xray']


def test_an_interrupted_generation_is_never_taken_as_complete(
        tmp_path, monkeypatch):
    """Killed halfway (here: the encoder fails on the 10th image), nothing
    appears under the dataset's name and its temporary folder is removed;
    the next run writes it whole and removes the temporary folders of dead
    generators (SIGKILL runs no clean-up), not those of live ones."""
    real, calls = cv2.imencode, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cv2, 'imencode', failing)
    with pytest.raises(KeyboardInterrupt):
        demo.generate_demo_data(str(tmp_path), 0, SCALE, ['mura'])
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(cv2, 'imencode', real)
    dead = subprocess.Popen(['true'])
    dead.wait()
    for pid in (dead.pid, os.getppid()):  # os.getppid(): alive
        (tmp_path / f'.MURA-v1.1.tmp-{pid}' / 'train').mkdir(parents=True)
    (tmp_path / f'.MURA-v1.1.old-{dead.pid}').mkdir()
    n = demo.generate_demo_data(str(tmp_path), 0, SCALE, ['mura'])['mura']
    images = list((tmp_path / 'MURA-v1.1').rglob('*.png'))
    assert n == len(images) > 10
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f'.MURA-v1.1.tmp-{os.getppid()}', 'MURA-v1.1']


def test_planted_copies(demo_root):
    """Copies of task images in NIH and Indiana, each listed by its dataset
    as the release would list it, and recorded in ``planted_copies.json``
    with its source and transform (the leakage audit's ground truth)."""
    copies = []
    for key in ('nih', 'indiana'):
        root = demo_root / demo.DEMO_DATASETS[key]
        copies += json.loads(
            (root / 'planted_copies.json').read_text())['copies']
    assert len(copies) == 12
    transforms = [c['transform'] for c in copies]
    assert sorted(set(transforms)) == [
        'bit_depth', 'contrast', 'exact', 'flip', 'jpeg', 'resize']
    assert all(transforms.count(t) == 2 for t in transforms)
    task_folders = {demo.DEMO_DATASETS[k]
                    for k in ('pneumonia', 'mura', 'lung_masks', 'tbx11k')}
    nih_csv = {r[0] for r in csv_rows(
        demo_root / 'NIH-ChestXray14/Data_Entry_2017.csv')}
    nih_list = (demo_root / 'NIH-ChestXray14/train_val_list.txt').read_text()
    reports = ''.join(p.read_text() for p in (demo_root / 'IndianaCXR').glob(
        'NLMCXR_reports/ecgen-radiology/*.xml'))
    for c in copies:
        assert c['source'].split('/')[0] in task_folders, c
        copy, src = read(demo_root / c['copy']), read(demo_root / c['source'])
        src = src[..., 0] if src.ndim == 3 else src  # RGB-saved grey
        name = Path(c['copy']).name
        if c['copy'].startswith('NIH'):
            assert name in nih_csv and name in nih_list.split()
        else:
            assert f'id="{Path(name).stem}"' in reports
        kind = c['transform']
        if kind == 'exact':
            np.testing.assert_array_equal(copy, src)
        elif kind == 'flip':
            np.testing.assert_array_equal(copy, src[:, ::-1])
        elif kind == 'resize':
            assert copy.shape == tuple(round(0.7 * s) for s in src.shape)
        elif kind == 'bit_depth':
            assert copy.dtype != src.dtype and copy.shape == src.shape
        else:  # jpeg, contrast: same size, other pixels
            assert copy.shape == src.shape and (copy != src).any()
