# Copyright (c) muscle_mm contributors. All rights reserved.
"""``tools/misc/verify_datasets.py``: counts against Table 1, missing and
unreadable files."""
import glob
import importlib.util
import os
import os.path as osp
import re
import sys
from pathlib import Path

from muscle_mm.datasets.readers import TABLE1
from muscle_mm.testing import generate_demo_data
from muscle_mm.datasets.readers.splits import grouped_split, write_splits
from muscle_mm.registry import DATASETS

REPO = str(Path(__file__).resolve().parents[3])
TOOL = osp.join(REPO, 'tools/misc/verify_datasets.py')


def verify(argv, monkeypatch):
    spec = importlib.util.spec_from_file_location('verify_datasets', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, 'argv', [TOOL] + argv)
    return module.main()


def test_counts_missing_and_unreadable(tmp_path, capsys, monkeypatch):
    keys = ['nih', 'rsna_boneage', 'indiana']
    generate_demo_data(str(tmp_path), seed=0, datasets=keys)
    argv = ['--data-root', str(tmp_path), '--datasets', *keys, '--decode']
    assert verify(argv, monkeypatch) == 0
    out = capsys.readouterr().out
    n_nih = len(glob.glob(f'{tmp_path}/NIH-ChestXray14/images_*/*/*.png'))
    assert re.search(
        rf'nih\s+train\s+{n_nih}\s+112120\s+difference '
        rf'{n_nih - 112120:+d}\n', out), out

    missing = sorted(glob.glob(f'{tmp_path}/RSNA-BoneAge/*/*.png'))[0]
    os.remove(missing)
    corrupt = sorted(glob.glob(f'{tmp_path}/IndianaCXR/NLMCXR_png/*.png'))[0]
    data = open(corrupt, 'rb').read()
    open(corrupt, 'wb').write(data[:len(data) // 3])  # truncated PNG
    assert verify(argv, monkeypatch) == 1
    out = capsys.readouterr().out
    assert osp.basename(missing)[:-4] in out and 'expected' in out
    assert corrupt in out
    assert re.search(
        r'indiana\s+train\s+\d+\s+7470\s+difference -\d+, '
        r'1 problem', out), out
    # header-only check does not decode, so the truncated PNG passes
    verify(argv[:-1], monkeypatch)
    assert corrupt not in capsys.readouterr().out


def test_missing_dataset_folder(tmp_path, capsys, monkeypatch):
    assert verify(
        ['--data-root', str(tmp_path), '--datasets', 'mura'], monkeypatch) == 1
    out = capsys.readouterr().out
    assert out.count('not found') == len(TABLE1['mura']['counts'])


def demo_with_splits(root, keys):
    generate_demo_data(str(root), seed=0, datasets=keys)
    for key in keys:
        folder = osp.join(root, TABLE1[key]['folder'])
        reader = DATASETS.get(TABLE1[key]['type'])
        write_splits(
            folder,
            grouped_split(
                reader.split_candidates(folder), TABLE1[key]['counts']),
            dict(seed=0))


def corrupt_scan(data: bytes) -> bytes:
    """Damage a JPEG's scan but keep its framing (see test_loading.py)."""
    data = bytearray(data)
    sos = data.find(b'\xff\xda')
    start = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], 'big')
    for i in range(start + 64, min(start + 512, len(data) - 2), 5):
        if 0xFF not in data[i - 1:i + 1]:
            data[i] ^= 0x55 if data[i] ^ 0x55 != 0xFF else 0x0F
    return bytes(data)


def test_decode_reads_through_load_xray_image(tmp_path, capfd, monkeypatch):
    """A JPEG with a damaged scan decodes into wrong pixels with only a
    libjpeg warning on stderr; ``--decode`` names it and exits 1."""
    demo_with_splits(tmp_path, ['pneumonia'])
    root = tmp_path / 'chest_xray'
    rel = (root / 'muscle_splits/test.txt').read_text().split()[0]
    bad = str(root / rel)
    with open(bad, 'rb') as f:
        data = f.read()
    with open(bad, 'wb') as f:
        f.write(corrupt_scan(data))
    argv = ['--data-root', str(tmp_path), '--datasets', 'pneumonia']
    assert verify(argv + ['--decode'], monkeypatch) == 1
    out = capfd.readouterr().out
    assert re.search(r'pneumonia\s+test\s+\d+\s+585\s+.*1 problem', out), out
    assert bad in out and 'Corrupt JPEG data' in out
    assert verify(argv, monkeypatch) == 0  # headers alone look fine


def test_overlapping_splits_fail(tmp_path, capsys, monkeypatch):
    demo_with_splits(tmp_path, ['tbx11k'])
    splits = tmp_path / 'TBX11K/muscle_splits'
    first = (splits / 'val.txt').read_text().split()[0]
    with open(splits / 'train.txt', 'a') as f:
        f.write(first + '\n')
    argv = ['--data-root', str(tmp_path), '--datasets', 'tbx11k']
    assert verify(argv, monkeypatch) == 1
    out = capsys.readouterr().out
    assert re.search(r'tbx11k\s+train\s+0\s+640\s+.*1 problem', out), out
    assert f'{splits}/train.txt and {splits}/val.txt share 1 image' in out
    assert first in out
