# Copyright (c) muscle_mm contributors. All rights reserved.
"""MultiSourceXrayDataset and MultiSourceWeightedSampler with fake readers
registered here (and, when present, the real readers on demo data)."""
import logging
import os.path as osp
import subprocess
import sys
from unittest import mock

import cv2
import numpy as np
import pytest
from mmengine.dataset import BaseDataset
from mmengine.logging import MMLogger
from scipy.stats import chisquare

import muscle_mm.datasets.transforms  # noqa: F401 (LoadXrayImage)
from muscle_mm.datasets.multi_source import (MultiSourceWeightedSampler,
                                             MultiSourceXrayDataset)
from muscle_mm.registry import DATASETS

SAMPLER_MODULE = 'muscle_mm.datasets.multi_source.multi_source'


@pytest.fixture(scope='module', autouse=True)
def muscle_scope():
    """Pipelines resolve 'LoadXrayImage' in the muscle default scope."""
    from muscle_mm.utils import register_all_modules
    register_all_modules()


@DATASETS.register_module(force=True)
class _FakeReader(BaseDataset):
    """``n`` labelled items under ``data_root``, tagged ``source``."""

    def __init__(self,
                 data_root,
                 n=5,
                 source='fake',
                 split='train',
                 write_png=False,
                 **kwargs):
        self.n, self.source, self.write_png = n, source, write_png
        self.split = split
        super().__init__(data_root=data_root, **kwargs)

    def load_data_list(self):
        items = []
        for i in range(self.n):
            path = osp.join(self.data_root, f'{self.source}_{i}.png')
            if self.write_png:
                cv2.imwrite(path, np.full((12, 20), 10 * i, np.uint8))
            items.append(
                dict(
                    img_path=path,
                    source=self.source,
                    gt_label=i % 2,
                    extra=[1, 2, 3]))
        return items


@DATASETS.register_module(force=True)
class _UntaggedReader(_FakeReader):
    """Items without a ``source`` key."""

    def load_data_list(self):
        return [dict(img_path=f'/x/{i}.png') for i in range(self.n)]


@DATASETS.register_module(force=True)
class _NoPathReader(_FakeReader):

    def load_data_list(self):
        return [dict(mask='m.png')]


def src(n, source, root='/fake', **kwargs):
    return dict(
        type='_FakeReader', data_root=root, n=n, source=source, **kwargs)


class _Records(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_union_keeps_paths_and_tags_only(tmp_path):
    handler = _Records()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        ds = MultiSourceXrayDataset(sources=[
            src(30, 'nih'),
            src(7, 'mura'),
            dict(type='_UntaggedReader', data_root='/u', n=4)
        ])
    finally:
        logger.removeHandler(handler)

    assert len(ds) == 41
    assert ds.source_names == ['nih', 'mura', '_UntaggedReader']
    assert ds.source_counts == [30, 7, 4]
    np.testing.assert_array_equal(ds.item_source_idx,
                                  [0] * 30 + [1] * 7 + [2] * 4)
    info = ds.get_data_info(31)
    # sample_idx is added by mmengine's BaseDataset; labels are gone
    assert set(info) == {'img_path', 'source', 'source_idx', 'sample_idx'}
    assert info['source'] == 'mura' and info['source_idx'] == 1
    assert info['img_path'] == '/fake/mura_1.png'
    assert ds.get_data_info(40)['source'] == '_UntaggedReader'

    log = '\n'.join(handler.messages)
    assert '41 images from 3 sources' in log
    for name, count in [('nih', 30), ('mura', 7), ('_UntaggedReader', 4)]:
        assert any(name in line and f' {count} ' in line
                   for line in log.splitlines()), log


def test_pipeline_and_data_root_join(tmp_path):
    (tmp_path / 'a').mkdir()
    ds = MultiSourceXrayDataset(
        data_root=str(tmp_path),
        sources=[src(3, 'a', root='a', write_png=True)],
        pipeline=[dict(type='LoadXrayImage', to_channels=1)])
    out = ds[2]
    assert out['img_path'] == osp.join(str(tmp_path), 'a', 'a_2.png')
    assert out['img'].shape == (12, 20) and out['img'][0, 0] == 20
    assert out['source'] == 'a' and 'gt_label' not in out


def test_empty_source_names_it():
    with pytest.raises(
            ValueError,
            match=r"sources\[1\] \(_FakeReader, "
            r"data_root='/empty'.*has no images"):
        MultiSourceXrayDataset(
            sources=[src(2, 'a'), src(0, 'b', root='/empty')])


@pytest.mark.parametrize('sources,match', [
    ([], 'non-empty list'),
    ([dict(data_root='/x')], r"sources\[0\].*'type'"),
    ([src(2, 'a', weight=-1.0)], r'weight=-1.0; expected a positive'),
    ([src(2, 'a', weight=1.0), src(2, 'b')], r'missing: 1 \(_FakeReader\)'),
])
def test_bad_sources(sources, match):
    with pytest.raises((ValueError, TypeError), match=match):
        MultiSourceXrayDataset(sources=sources)


def test_item_without_path_names_source():
    with pytest.raises(KeyError, match=r"_NoPathReader.*no 'img_path'"):
        MultiSourceXrayDataset(
            sources=[dict(type='_NoPathReader', data_root='/n')])


# ------------------------------------------------------------------ sampler
def weighted(weights, sizes=(30, 7, 200)):
    return MultiSourceXrayDataset(sources=[
        src(n, f's{i}', weight=w)
        for i, (n, w) in enumerate(zip(sizes, weights))
    ])


def test_sampler_frequencies_follow_weights():
    ds = weighted([1.0, 3.0, 4.0])
    sampler = MultiSourceWeightedSampler(ds, seed=0, num_samples=40000)
    idx = np.array(list(sampler))
    assert len(idx) == len(sampler) == 40000
    share = np.bincount(ds.item_source_idx[idx], minlength=3) / len(idx)
    # binomial sd <= 0.0025 at n=40000: 4 sd
    np.testing.assert_allclose(share, [1 / 8, 3 / 8, 4 / 8], atol=0.01)
    # images within a source equally likely (scipy chi-square test)
    in_s1 = idx[ds.item_source_idx[idx] == 1]
    assert chisquare(np.bincount(in_s1 - 30, minlength=7)).pvalue > 1e-3


def test_sampler_without_weights_is_uniform_over_images():
    ds = MultiSourceXrayDataset(sources=[src(10, 'a'), src(90, 'b')])
    assert ds.source_weights is None
    sampler = MultiSourceWeightedSampler(ds, seed=1, num_samples=20000)
    counts = np.bincount(np.array(list(sampler)), minlength=100)
    assert chisquare(counts).pvalue > 1e-3
    assert len(MultiSourceWeightedSampler(ds, seed=1)) == 100  # default


def test_sampler_deterministic_per_seed_and_epoch():
    ds = weighted([1.0, 1.0, 1.0])
    first = list(MultiSourceWeightedSampler(ds, seed=3))
    assert first == list(MultiSourceWeightedSampler(ds, seed=3))
    assert first != list(MultiSourceWeightedSampler(ds, seed=4))
    sampler = MultiSourceWeightedSampler(ds, seed=3)
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_sampler_distributed_ranks_partition_the_draw():
    ds = weighted([1.0, 2.0, 3.0])
    single = list(MultiSourceWeightedSampler(ds, seed=5, num_samples=101))
    ranks = []
    for rank in range(2):
        with mock.patch(
                f'{SAMPLER_MODULE}.get_dist_info', return_value=(rank, 2)):
            ranks.append(
                list(MultiSourceWeightedSampler(ds, seed=5, num_samples=101)))
    assert len(ranks[0]) == len(ranks[1]) == 51  # 101 rounded up to 102
    merged = [i for pair in zip(*ranks) for i in pair]
    assert merged[:101] == single[:101]


def test_sampler_rejects_plain_dataset():
    with pytest.raises(TypeError, match='item_source_idx'):
        MultiSourceWeightedSampler(_FakeReader('/x', n=3), seed=0)


def test_runner_builds_weighted_loader():
    from mmengine.runner import Runner

    loader = Runner.build_dataloader(
        dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type='MultiSourceWeightedSampler'),
            dataset=dict(
                type='MultiSourceXrayDataset',
                sources=[src(5, 'a', weight=0.5),
                         src(5, 'b', weight=0.5)]),
            collate_fn=dict(type='default_collate')),
        seed=7)
    assert isinstance(loader.sampler, MultiSourceWeightedSampler)
    assert loader.sampler.seed == 7
    batch = next(iter(loader))
    assert len(batch['source']) == 4


# ------------------------------------------------------------------ real data
@pytest.mark.slow
def test_demo_xray9_config_counts(tmp_path, repo_root):
    """The demo config over freshly generated demo data: one source per
    dataset, counts equal to the readers' own."""
    from mmengine.config import Config

    from muscle_mm import testing as demo

    demo.generate_demo_data(str(tmp_path), seed=0, scale=0.2)
    make_splits = osp.join(repo_root,
                           'tools/dataset_converters/make_splits.py')
    subprocess.run([sys.executable, make_splits, '--data-root',
                    str(tmp_path)],
                   check=True,
                   capture_output=True)
    cfg = Config.fromfile(
        osp.join(repo_root, 'configs/_base_/datasets/demo/xray9.py'))
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.data_root = str(tmp_path)
    ds = DATASETS.build(dataset_cfg)
    assert len(ds.source_counts) == 9
    for cfg_src, count in zip(dataset_cfg.sources, ds.source_counts):
        reader = DATASETS.build(
            dict(
                cfg_src,
                data_root=osp.join(str(tmp_path), cfg_src['data_root'])))
        assert count == len(reader) > 0
    assert len(set(ds.source_names)) == 9

    # every demo image loads onto 0-255; 16-bit ones are stretched to it
    dataset_cfg.pipeline = [dict(type='LoadXrayImage')]
    ds = DATASETS.build(dataset_cfg)
    depths = {}
    for i in range(len(ds)):
        out = ds[i]
        assert out['img'].dtype == np.uint8 and out['img'].ndim == 3
        depths.setdefault(out['source'], set()).add(out['bit_depth'])
        if out['bit_depth'] == 16:
            assert out['img'].min() == 0 and out['img'].max() == 255
    assert any(16 in d for d in depths.values()), depths
