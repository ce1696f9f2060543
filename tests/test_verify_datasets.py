# Copyright (c) muscle_mm contributors. All rights reserved.
"""``tools/misc/verify_datasets.py``: counts against Table 1, missing and
unreadable files."""
import glob
import importlib.util
import os
import os.path as osp
import re
import sys

from muscle_mm.datasets.readers import TABLE1
from muscle_mm.testing import generate_demo_data

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
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
