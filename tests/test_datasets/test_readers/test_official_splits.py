# Copyright (c) muscle_mm contributors. All rights reserved.
"""The official protocol: ``make_splits.py --protocol official`` on the demo
releases' own split folders/lists, and the readers' ``protocol``."""
import csv
import importlib.util
import json
import os.path as osp
import sys
from pathlib import Path

import pytest

from muscle_mm.datasets.readers import (ChestXrayMasksDataset,
                                        KermanyPneumoniaDataset, MURADataset,
                                        TBX11KDataset)
from muscle_mm.datasets.readers.base import PROTOCOL_ENV, read_split
from muscle_mm.datasets.readers.pneumonia import patient_of

REPO = str(Path(__file__).resolve().parents[3])
TOOL = 'tools/dataset_converters/make_splits.py'


def run_tool(rel, argv, monkeypatch):
    monkeypatch.setattr(sys, 'argv', [rel] + argv)
    spec = importlib.util.spec_from_file_location('tool_make_splits',
                                                  osp.join(REPO, rel))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main()


@pytest.fixture(scope='module')
def official(demo_data_root, tmp_path_factory):
    """Official split files of the four task datasets, written with
    ``--out`` next to the shared demo data (which stays as it is)."""
    out = str(tmp_path_factory.mktemp('official_splits'))
    mp = pytest.MonkeyPatch()
    try:
        assert run_tool(TOOL, [
            '--data-root', demo_data_root, '--out', out, '--protocol',
            'official'
        ], mp) == 0
    finally:
        mp.undo()
    return demo_data_root, out


def split(root, out, key, name):
    folder = osp.join(root, dict(
        pneumonia='chest_xray', mura='MURA-v1.1', tbx11k='TBX11K',
        lung_masks='Lung Segmentation')[key])
    return folder, read_split(folder, name, key, out, 'official')


def test_pneumonia_official_test_is_kermanys_test_folder(official):
    root, out = official
    folder, test = split(root, out, 'pneumonia', 'test')
    assert test and all(p.startswith('chest_xray/test/') for p in test)
    assert len(test) == len(KermanyPneumoniaDataset.split_candidates(
        folder, ('test', )))
    _, train = split(root, out, 'pneumonia', 'train')
    _, val = split(root, out, 'pneumonia', 'val')
    # val carved from train/ + the official val/, patient-aware, at the
    # paper's val:train ratio (585 of 4,686 + 585)
    assert val and not any('/test/' in p for p in train + val)
    assert any('/val/' in p for p in train + val)
    assert {patient_of(p) for p in train}.isdisjoint(
        patient_of(p) for p in val)
    assert len(val) == pytest.approx(len(train + val) * 585 / 5271, abs=3)
    info = json.load(open(osp.join(out, 'chest_xray',
                                   'muscle_splits_official', 'info.json')))
    assert info['protocol'] == 'official'


def test_mura_official_test_is_the_released_valid(official):
    root, out = official
    folder, test = split(root, out, 'mura', 'test')
    with open(osp.join(folder, 'valid_image_paths.csv')) as f:
        valid = {row[0].split('MURA-v1.1/', 1)[1] for row in csv.reader(f)}
    assert set(test) == valid
    _, train = split(root, out, 'mura', 'train')
    _, val = split(root, out, 'mura', 'val')
    patients = [{p.split('/')[2] for p in s} for s in (train, val)]
    assert val and patients[0].isdisjoint(patients[1])
    assert all(p.startswith('train/') for p in train + val)


def test_tbx11k_official_test_is_every_image_of_its_val(official):
    root, out = official
    folder, test = split(root, out, 'tbx11k', 'test')
    val_json = json.load(
        open(osp.join(folder, 'annotations/json/TBX11K_val.json')))
    assert sorted(test) == sorted('imgs/' + im['file_name']
                                  for im in val_json['images'])
    assert any(p.startswith('imgs/health/') for p in test)
    # the COCO json of the test split holds the non-TB images too
    coco = json.load(
        open(osp.join(out, 'TBX11K', 'muscle_splits_official', 'test.json')))
    assert len(coco['images']) == len(test)
    ds = TBX11KDataset(
        folder, 'test', split_root=out, protocol='official', test_mode=True)
    assert len(ds) == len(test)
    assert sum(not ds.get_data_info(i)['instances']
               for i in range(len(ds))) > 0  # healthy / sick images


def test_lung_official_is_the_paper_split(official, demo_data_root):
    root, out = official
    for name in ('train', 'val', 'test'):
        folder, got = split(root, out, 'lung_masks', name)
        assert got == read_split(folder, name, 'lung_masks')  # paper's


def test_protocol_from_the_environment_and_missing_files(
        official, monkeypatch, tmp_path):
    root, out = official
    folder = osp.join(root, 'MURA-v1.1')
    monkeypatch.setenv(PROTOCOL_ENV, 'official')
    ds = MURADataset(folder, 'test', split_root=out)
    assert ds.protocol == 'official'
    assert all('/valid/' in ds.get_data_info(i)['img_path']
               for i in range(len(ds)))
    monkeypatch.delenv(PROTOCOL_ENV)
    paper = MURADataset(folder, 'test', protocol='paper')  # the fixture's
    assert any('/train/' in paper.get_data_info(i)['img_path']
               for i in range(len(paper)))  # a re-split of train+valid
    with pytest.raises(
            FileNotFoundError,
            match=r"(?s)official protocol's test split.*--protocol official"):
        ChestXrayMasksDataset(
            osp.join(root, 'Lung Segmentation'),
            'test',
            split_root=str(tmp_path),
            protocol='official')
    with pytest.raises(ValueError, match='protocol must be one of'):
        MURADataset(folder, 'test', protocol='offical')
