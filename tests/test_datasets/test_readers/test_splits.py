# Copyright (c) muscle_mm contributors. All rights reserved.
"""The split policy (paper counts, groups, strata, seeds) and the
``make_splits.py`` tool on demo data."""
import hashlib
import importlib.util
import json
import os
import os.path as osp
import random
import re
import shutil
import sys
from pathlib import Path
from collections import Counter

import pytest

from muscle_mm.datasets.readers import TABLE1
from muscle_mm.datasets.readers.splits import grouped_split, largest_remainder
from muscle_mm.testing import generate_demo_data

REPO = str(Path(__file__).resolve().parents[3])


def load_tool(rel):
    spec = importlib.util.spec_from_file_location(
        'tool_' + osp.basename(rel)[:-3], osp.join(REPO, rel))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(rel, argv, monkeypatch):
    monkeypatch.setattr(sys, 'argv', [rel] + argv)
    return load_tool(rel).main()


@pytest.mark.parametrize('key', ['pneumonia', 'mura', 'lung_masks', 'tbx11k'])
def test_largest_remainder_gives_paper_counts_at_paper_size(key):
    paper = TABLE1[key]['counts']
    assert largest_remainder(sum(paper.values()), paper) == paper


def test_largest_remainder_scales_and_sums_exactly():
    lung = TABLE1['lung_masks']['counts']
    # 704 public masks: 704 * 718 / 896 = 564.1, 704 * 89 / 896 = 69.9
    assert largest_remainder(704, lung) == dict(train=564, val=70, test=70)
    for total in (0, 1, 7, 108, 1001):
        out = largest_remainder(total, TABLE1['mura']['counts'])
        assert sum(out.values()) == total


def synthetic(n, seed=0):
    """``n`` images of patients with 1-4 images, two classes."""
    rng, items, p = random.Random(seed), [], 0
    while len(items) < n:
        p += 1
        cls = 'a' if rng.random() < 0.3 else 'b'
        for j in range(min(n - len(items), rng.randint(1, 4))):
            items.append((f'{cls}/p{p}_{j}.png', f'p{p}', cls))
    return items


def test_grouped_split_paper_counts_patients_and_strata():
    items = synthetic(5856)
    out = grouped_split(items, TABLE1['pneumonia']['counts'], seed=0)
    assert {
        k: len(v)
        for k, v in out.items()
    } == dict(
        train=4686, val=585, test=585)
    split_of = {p: s for s, paths in out.items() for p in paths}
    assert sorted(split_of) == sorted(p for p, _, _ in items)
    groups = {}
    for path, group, _ in items:
        assert groups.setdefault(group, split_of[path]) == split_of[path]
    frac = {s: Counter(p[0] for p in out[s])['a'] / len(out[s]) for s in out}
    overall = Counter(c for _, _, c in items)['a'] / len(items)
    for s in out:
        assert abs(frac[s] - overall) < 0.01, (s, frac, overall)


def test_grouped_split_is_deterministic_per_seed():
    items = synthetic(500)
    paper = TABLE1['mura']['counts']
    a = grouped_split(items, paper, seed=0)
    assert a == grouped_split(list(reversed(items)), paper, seed=0)
    assert a != grouped_split(items, paper, seed=1)


def test_grouped_split_refuses_duplicates():
    with pytest.raises(ValueError, match='duplicate'):
        grouped_split([('x.png', 'a', 's')] * 2, dict(train=1, val=1, test=1))


def test_make_splits_on_demo_prints_differences(tmp_path, capsys, monkeypatch):
    generate_demo_data(
        str(tmp_path),
        seed=0,
        datasets=['pneumonia', 'mura', 'lung_masks', 'tbx11k'])
    tool = 'tools/dataset_converters/make_splits.py'
    assert run_tool(tool, ['--data-root', str(tmp_path)], monkeypatch) == 0
    out = capsys.readouterr().out
    for key in ('pneumonia', 'mura', 'lung_masks', 'tbx11k'):
        root = tmp_path / TABLE1[key]['folder'] / 'muscle_splits'
        lines = {
            s: (root / f'{s}.txt').read_text().split('\n')[:-1]
            for s in ('train', 'val', 'test')
        }
        found = {s: len(v) for s, v in lines.items()}
        for s, n in found.items():
            paper = TABLE1[key]['counts'][s]
            assert re.search(
                rf'{s}\s+found\s+{n}\s+paper\s+{paper}\s+'
                rf'difference {n - paper:+d}', out), (key, out)
        # the paper's ratio applied to what the release holds
        assert found == largest_remainder(
            sum(found.values()), TABLE1[key]['counts'])
    coco = json.loads(
        (tmp_path / 'TBX11K/muscle_splits/test.json').read_text())
    assert coco['info']['uncertain_tb'] == 'active'  # the default, recorded
    before = (tmp_path / 'MURA-v1.1/muscle_splits/train.txt').read_text()
    run_tool(
        tool,
        ['--data-root', str(tmp_path), '--datasets', 'mura'], monkeypatch)
    assert 'kept' in capsys.readouterr().out
    run_tool(tool, [
        '--data-root',
        str(tmp_path), '--datasets', 'mura', '--force', '--seed', '0'
    ], monkeypatch)
    after = (tmp_path / 'MURA-v1.1/muscle_splits/train.txt').read_text()
    assert before == after


def test_make_splits_demo_proportions(tmp_path, capsys, monkeypatch):
    """``--proportions 40 10 50`` (the demo study's): half of each task set
    is test data, both classes of Pneumonia in it, recorded in info.json."""
    from muscle_mm.testing import DEMO_SPLIT_PROPORTIONS
    generate_demo_data(str(tmp_path), seed=0, datasets=['pneumonia', 'mura'])
    weights = [
        str(DEMO_SPLIT_PROPORTIONS[s]) for s in ('train', 'val', 'test')
    ]
    assert weights == ['40', '10', '50']
    tool = 'tools/dataset_converters/make_splits.py'
    assert run_tool(tool, ['--data-root', str(tmp_path), '--proportions',
                           *weights], monkeypatch) == 0
    for key in ('pneumonia', 'mura'):
        root = tmp_path / TABLE1[key]['folder'] / 'muscle_splits'
        found = {
            s: len((root / f'{s}.txt').read_text().split())
            for s in ('train', 'val', 'test')
        }
        total = sum(found.values())
        assert found['test'] >= 100 and abs(found['test'] - total / 2) <= 4
        info = json.loads((root / 'info.json').read_text())
        assert info['proportions'] == dict(train=40., val=10., test=50.)
    test = (tmp_path / 'chest_xray/muscle_splits/test.txt').read_text()
    assert 'NORMAL/' in test and 'PNEUMONIA/' in test
    with pytest.raises(SystemExit, match='non-negative weights'):
        run_tool(tool, ['--data-root', str(tmp_path), '--proportions', '1',
                        '-1', '1', '--force'], monkeypatch)


def test_make_splits_reports_missing_folders(tmp_path, capsys, monkeypatch):
    tool = 'tools/dataset_converters/make_splits.py'
    assert run_tool(tool, ['--data-root', str(tmp_path)], monkeypatch) == 1
    assert 'not found, skipped' in capsys.readouterr().out


def test_make_splits_on_read_only_data(tmp_path, capsys, monkeypatch):
    """A data folder that cannot be written: the tool falls back to the
    per-user cache, says so, and the readers find the splits there without
    any setting; with ``--out`` the readers load the very same splits from
    ``split_root`` (or ``MUSCLE_SPLIT_ROOT``); when the fallback is not
    writable either, the tool stops naming ``--out``.

    Tests run as root, whom ``chmod`` does not stop, so ``os.access`` (the
    tool's check) answers for the data folder as it would for a user."""
    from muscle_mm.registry import DATASETS
    data = tmp_path / 'data'
    generate_demo_data(str(data), seed=0, datasets=['pneumonia', 'lung_masks'])
    access = os.access

    def user_access(path, mode, *args, **kwargs):
        inside = osp.realpath(path).startswith(str(data.resolve()))
        return False if inside and mode & os.W_OK else access(
            path, mode, *args, **kwargs)

    monkeypatch.setattr(os, 'access', user_access)
    monkeypatch.delenv('MUSCLE_SPLIT_ROOT', raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    tool = 'tools/dataset_converters/make_splits.py'
    assert run_tool(tool, ['--data-root', str(data)], monkeypatch) == 0
    said = capsys.readouterr().out
    assert f'the dataset folder {data / "chest_xray"} is not writable' in said
    cached = {}
    for key in ('pneumonia', 'lung_masks'):
        root = data / TABLE1[key]['folder']
        assert not (root / 'muscle_splits').exists()
        folder = osp.join(
            str(tmp_path / 'cache'), 'muscle_mm', 'splits',
            hashlib.sha1(str(root).encode()).hexdigest()[:12],
            TABLE1[key]['folder'], 'muscle_splits')
        assert folder in said
        cached[key] = sorted(open(osp.join(folder, 'test.txt')).read().split())
        ds = DATASETS.build(
            dict(type=TABLE1[key]['type'], data_root=str(root), split='test'))
        assert sorted(
            osp.relpath(ds.get_data_info(i)['img_path'], root)
            for i in range(len(ds))) == cached[key]
    # another copy of the release has its own (none yet)
    copy = tmp_path / 'copy'
    shutil.copytree(data / 'chest_xray', copy / 'chest_xray')
    with pytest.raises(FileNotFoundError, match='not found'):
        DATASETS.build(
            dict(type=TABLE1['pneumonia']['type'],
                 data_root=str(copy / 'chest_xray'), split='test'))
    # neither the data nor the cache writable: stop, naming --out
    monkeypatch.setenv('XDG_CACHE_HOME', str(data / 'cache'))
    with pytest.raises(SystemExit) as e:
        run_tool(tool, ['--data-root', str(data)], monkeypatch)
    message = str(e.value)
    assert str(data / 'chest_xray') in message and 'writable' in message
    assert '--out DIR' in message and 'MUSCLE_SPLIT_ROOT' in message

    out = tmp_path / 'splits'
    assert run_tool(tool, ['--data-root', str(data), '--out',
                           str(out)], monkeypatch) == 0
    assert f"split_root='{out}'" in capsys.readouterr().out
    for key in ('pneumonia', 'lung_masks'):
        root = data / TABLE1[key]['folder']
        folder = out / TABLE1[key]['folder'] / 'muscle_splits'
        assert not (root / 'muscle_splits').exists()
        for split in ('train', 'val', 'test'):
            listed = (folder / f'{split}.txt').read_text().split()
            cfg = dict(type=TABLE1[key]['type'], data_root=str(root),
                       split=split)
            for given in (dict(split_root=str(out)), {}):
                if not given:
                    monkeypatch.setenv('MUSCLE_SPLIT_ROOT', str(out))
                ds = DATASETS.build(dict(cfg, **given))
                read = [
                    osp.relpath(ds.get_data_info(i)['img_path'], root)
                    for i in range(len(ds))
                ]
                assert sorted(read) == sorted(listed), (key, split)
                monkeypatch.delenv('MUSCLE_SPLIT_ROOT', raising=False)
    with pytest.raises(FileNotFoundError, match='--out'):
        DATASETS.build(dict(type=TABLE1['pneumonia']['type'],
                            data_root=str(data / 'chest_xray'),
                            split_root=str(tmp_path / 'elsewhere')))
