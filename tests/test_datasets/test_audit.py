# Copyright (c) muscle_mm contributors. All rights reserved.
"""The leakage audit: hashes, pair search, cache, exclusion list, CLI."""
import csv
import json
import os
import os.path as osp
import runpy
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from muscle_mm.datasets.audit import (DEFAULT_THRESHOLD, FLIP_MASK, HashCache,
                                      content_hash, decode_grey, hamming,
                                      hash_images, near_pairs,
                                      near_pairs_brute, perceptual_hash,
                                      planted_scores, read_planted, run_audit,
                                      stage1_exclusions, to_words)
from muscle_mm.datasets.audit import hashing
from muscle_mm.datasets.audit.pairs import plan_bands
from muscle_mm.metainfo import PROTOCOL_ENV, TABLE1
from muscle_mm.testing.generator import plant_transform
from muscle_mm.testing.phantoms import Style, chest_phantom, render

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools/misc/audit_overlap.py')
#: measured on the demo data (README, "Leakage audit")
MIN_PRECISION = 1.0


def chest(seed: int, size=(256, 256), dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    return render(chest_phantom(rng, *size).image,
                  Style(gamma=1.0, lo=0.02, hi=0.95, noise=0.01,
                        max_value=top), rng)


def test_content_hash_is_the_decoded_pixels(tmp_path):
    img = chest(0)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    cv2.imwrite(str(tmp_path / 'b.png'), img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    cv2.imwrite(str(tmp_path / 'rgb.png'), cv2.cvtColor(img,
                                                        cv2.COLOR_GRAY2BGR))
    cv2.imwrite(str(tmp_path / 'c.jpg'), img)
    a, b, rgb, jpg = (content_hash(decode_grey(str(tmp_path / n)))
                      for n in ('a.png', 'b.png', 'rgb.png', 'c.jpg'))
    assert (tmp_path / 'a.png').read_bytes() != (tmp_path /
                                                 'b.png').read_bytes()
    assert a == b == rgb  # lossless re-encodes, grey saved as RGB
    assert jpg != a  # lossy: a near copy, not an exact one
    assert content_hash(np.zeros((4, 6))) != content_hash(np.zeros((6, 4)))


def words(*hashes):
    return to_words(hashes)


def test_perceptual_hash_invariances():
    img = chest(1).astype(np.float32)
    h = perceptual_hash(img)
    assert 0 <= h < 2**255
    # any positive linear grey map (8 vs 16 bit, linear stretch): same bits
    assert perceptual_hash(img * 257.0) == h
    assert perceptual_hash(3.5 * img + 40) == h
    # a mirror flips exactly the bits of odd horizontal frequency
    assert perceptual_hash(img[:, ::-1].copy()) == h ^ FLIP_MASK
    assert bin(FLIP_MASK).count('1') == 128  # u = 1, 3, ..., 15 of 16 x 16
    assert hamming(words(h), words(h ^ FLIP_MASK)) == 0
    assert hamming(words(h), words(h ^ FLIP_MASK), flip=False) == 128
    other = perceptual_hash(chest(2).astype(np.float32))
    assert hamming(words(h), words(other)) > 2 * DEFAULT_THRESHOLD


@pytest.mark.parametrize('kind', ['jpeg', 'resize', 'contrast', 'flip',
                                  'bit_depth'])
def test_planted_transforms_stay_within_the_threshold(kind):
    for seed in range(3):
        img = chest(seed, (300, 260))
        copy = plant_transform(img, kind).astype(np.float32)
        if copy.max() > 255:
            copy = copy / 257.0
        d = hamming(words(perceptual_hash(img.astype(np.float32))),
                    words(perceptual_hash(copy)))
        assert d <= DEFAULT_THRESHOLD, (kind, seed, d)


@pytest.mark.parametrize('threshold', [0, 3, 8, 20])
@pytest.mark.parametrize('flip', [True, False])
def test_near_pairs_equal_brute_force(threshold, flip):
    rng = np.random.default_rng(threshold)
    ints = [int(x) for x in rng.integers(0, 2**62, 500)]
    ints = [x | int(y) << 62 | int(z) << 124 | int(t) << 186
            for x, y, z, t in zip(ints, *rng.integers(0, 2**62, (3, 500)))]
    # close relatives (a third of them mirrored) of the first 100
    for k in range(100):
        bits = rng.choice(255, int(rng.integers(0, 30)), replace=False)
        rel = ints[k] ^ sum(1 << int(b) for b in bits)
        ints.append(rel ^ FLIP_MASK if k % 3 == 0 else rel)
    h = to_words(ints)
    found = near_pairs(h, threshold, flip)
    ref = near_pairs_brute(h, threshold, flip)
    assert len(ref) > (10 if threshold >= 8 else 0)
    np.testing.assert_array_equal(found[:, :3], ref)
    direct = hamming(h[found[:, 0]], h[found[:, 1]], flip=False)
    assert ((found[:, 3] == 1) == (found[:, 2] < direct)).all()
    assert (near_pairs(ints, threshold, flip) == found).all()  # from ints


def test_band_plan_uses_the_pigeonhole():
    for t in range(0, 41):
        bands, radius = plan_bands(t, 180_000)
        assert sum(w for *_, w in bands) == 255
        assert len(bands) * (radius + 1) > t  # a pair within t matches
        assert all(s + w <= 64 for _, s, w in bands)
    bands, radius = plan_bands(DEFAULT_THRESHOLD, 180_000)
    assert len(bands) > 4 and radius == 0  # not the all-pairs scan


def test_cache_decodes_nothing_twice(tmp_path, monkeypatch):
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f'{i}.png'))
        cv2.imwrite(paths[-1], chest(i, (64, 64)))
    calls = []
    real = hashing.decode_grey

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(hashing, 'decode_grey', counting)
    work = str(tmp_path / 'work')
    first, errors, decoded = hash_images(paths, HashCache(work))
    assert decoded == 3 and len(calls) == 3 and not errors
    second, _, decoded = hash_images(paths, HashCache(work))  # new process
    assert decoded == 0 and len(calls) == 3 and second == first
    cv2.imwrite(paths[1], chest(7, (64, 64)))  # changed: hashed again
    os.utime(paths[1], ns=(1, 1))
    third, _, decoded = hash_images(paths, HashCache(work))
    assert decoded == 1 and calls[-1] == paths[1]
    assert third[paths[1]] != first[paths[1]]
    assert third[paths[0]] == first[paths[0]]


def test_cache_saves_merge_what_another_audit_saved(tmp_path):
    """Two audits hashing into one cache at once: neither loses the
    other's entries (the later save merges into what is on disk)."""
    paths = []
    for i in range(2):
        paths.append(str(tmp_path / f'{i}.png'))
        cv2.imwrite(paths[-1], chest(i, (64, 64)))
    cache = str(tmp_path / 'cache')
    a, b = HashCache(cache), HashCache(cache)  # both read an empty cache
    hash_images(paths[:1], a)
    hash_images(paths[1:], b)
    merged = HashCache(cache)
    assert set(merged.entries) == set(paths)
    assert merged.get(paths[0]) == a.get(paths[0])
    assert merged.get(paths[1]) == b.get(paths[1])
    assert sorted(os.listdir(cache)) == ['hash_cache.json',
                                         'hash_cache.json.lock']


def _run_tool(monkeypatch, *args):
    monkeypatch.setattr(sys, 'argv', [TOOL, '--workers', '1', *args])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(TOOL, run_name='__main__')
    assert done.value.code == 0


def test_work_dirs_share_a_cache_and_each_audit_states_its_protocol(
        demo_data_root, tmp_path, monkeypatch):
    """Two audits of other work dirs (and protocols) through one
    ``--cache-dir``: the second decodes nothing. The protocol comes from
    ``--protocol``, else ``$MUSCLE_PROTOCOL``, and the summary names it."""
    folder = TABLE1['pneumonia']['folder']
    data = tmp_path / 'data'
    # without any official split another test (make_splits --protocol
    # official on the shared demo data) may have written there
    shutil.copytree(osp.join(demo_data_root, folder), data / folder,
                    ignore=shutil.ignore_patterns('muscle_splits_official'))
    paper = {s: (data / folder / 'muscle_splits' / f'{s}.txt').read_text(
    ).split() for s in ('train', 'val', 'test')}
    # a hand-made official split: other images in val and test
    official = dict(train=paper['train'][:150], val=paper['train'][150:],
                    test=paper['val'] + paper['test'])
    (data / folder / 'muscle_splits_official').mkdir()
    for split, lines in official.items():
        (data / folder / 'muscle_splits_official' / f'{split}.txt'
         ).write_text('\n'.join(lines) + '\n')
    calls = []
    real = hashing.decode_grey
    monkeypatch.setattr(hashing, 'decode_grey',
                        lambda path: calls.append(path) or real(path))
    monkeypatch.delenv(PROTOCOL_ENV, raising=False)
    cache = tmp_path / 'cache'

    def summary(work):
        return json.loads((tmp_path / work / 'audit_summary.json').read_text())

    def groups(splits):
        return {f'pneumonia/{s}': len(v) for s, v in splits.items()}

    n = sum(len(v) for v in paper.values())
    _run_tool(monkeypatch, '--data-root', str(data), '--work-dir',
              str(tmp_path / 'paper'), '--cache-dir', str(cache))
    assert len(calls) == n
    first = summary('paper')
    assert first['protocol'] == 'paper' and first['groups'] == groups(paper)
    assert first['decoded'] == n
    assert first['hash_cache'] == str(cache / 'hash_cache.json')

    monkeypatch.setenv(PROTOCOL_ENV, 'official')
    _run_tool(monkeypatch, '--data-root', str(data), '--work-dir',
              str(tmp_path / 'official'), '--cache-dir', str(cache))
    assert len(calls) == n  # nothing decoded again
    second = summary('official')
    assert second['protocol'] == 'official'
    assert second['groups'] == groups(official)
    assert second['decoded'] == 0 and second['from_cache'] == n
    assert not (tmp_path / 'official' / 'hash_cache.json').exists()

    # --protocol wins over the variable; no --cache-dir: the work dir's own
    _run_tool(monkeypatch, '--data-root', str(data), '--work-dir',
              str(tmp_path / 'own'), '--protocol', 'paper')
    assert summary('own')['protocol'] == 'paper'
    assert summary('own')['decoded'] == n and len(calls) == 2 * n
    assert (tmp_path / 'own' / 'hash_cache.json').is_file()


@pytest.fixture(scope='module')
def audit_dir(demo_data_root, tmp_path_factory):
    work = str(tmp_path_factory.mktemp('audit'))
    audit = run_audit(demo_data_root, work, search=16, log=lambda _: None)
    return audit, work


def split_of(data_root: str, rel: str) -> str:
    """The split file that lists ``rel`` (a path under the data root)."""
    folder, inner = rel.split('/', 1)
    for split in ('train', 'val', 'test'):
        path = osp.join(data_root, folder, 'muscle_splits', f'{split}.txt')
        if inner in open(path).read().split('\n'):
            return split
    return ''


def test_audit_finds_every_planted_copy(audit_dir, demo_data_root):
    audit, _ = audit_dir
    planted = read_planted(demo_data_root)
    assert len(planted) == 12
    assert {p['transform'] for p in planted} == {
        'exact', 'jpeg', 'resize', 'contrast', 'flip', 'bit_depth'}
    row, = planted_scores(audit, planted, [DEFAULT_THRESHOLD])
    assert row['recall'] == 1.0, row['missed']
    assert row['precision'] >= MIN_PRECISION, row
    # exact copies are found by the content hash
    exact = {frozenset((audit.rel(a), audit.rel(b)))
             for a, b, *_ in audit.pairs.tolist() if _[2]}
    assert exact == {frozenset((p['copy'], p['source']))
                     for p in planted if p['transform'] == 'exact'}
    # what stage 1 leaves out: the copies of val/test images, from the
    # split files read here
    expected = sorted(p['copy'] for p in planted
                      if split_of(demo_data_root, p['source']) in ('val',
                                                                   'test'))
    assert stage1_exclusions(audit) == expected


def test_cli_matrix_csv_and_warm_cache(audit_dir, demo_data_root):
    audit, work = audit_dir
    out = subprocess.run(
        [sys.executable, TOOL, '--data-root', demo_data_root,
         '--work-dir', work, '--workers', '1'],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO))
    assert out.returncode == 0, out.stderr
    n = len({p for _, p in audit.images})
    assert f'({0} decoded, {n} from the cache)' in out.stdout
    assert 'nih/all' in out.stdout and 'pneumonia/test' in out.stdout
    with open(osp.join(work, 'pairs.csv')) as f:
        rows = list(csv.DictReader(f))
    found = {frozenset((r['image_a'], r['image_b'])) for r in rows}
    planted = read_planted(demo_data_root)
    assert {frozenset((p['copy'], p['source'])) for p in planted} <= found
    summary = json.load(open(osp.join(work, 'audit_summary.json')))
    assert summary['decoded'] == 0 and summary['from_cache'] == n
    assert sum(summary['cells'].values()) == len(rows)
    excluded = open(osp.join(work, 'stage1_exclude.txt')).read().split()
    assert excluded == stage1_exclusions(audit)
    assert summary['leakage']['stage1_images_with_heldout_copy'] == len(
        excluded)
    at_t = [r for r in summary['planted']
            if r['threshold'] == DEFAULT_THRESHOLD]
    assert at_t[0]['recall'] == 1.0


def test_exclusion_list_filters_the_demo_union(audit_dir, demo_data_root):
    from mmengine.config import Config

    from muscle_mm.registry import DATASETS
    from muscle_mm.utils import register_all_modules
    register_all_modules()
    audit, work = audit_dir
    listed = stage1_exclusions(audit)
    assert listed  # the demo has copies of val/test images in stage 1
    exclude = osp.join(work, 'exclude_test.txt')
    with open(exclude, 'w') as f:
        f.writelines(f'{p}\n' for p in listed)
    sources = Config.fromfile(
        osp.join(REPO, 'configs/_base_/datasets/xray9.py')).xray9_sources
    cfg = dict(type='MultiSourceXrayDataset', data_root=demo_data_root,
               sources=sources)
    full = DATASETS.build(cfg)
    cut = DATASETS.build(dict(cfg, exclude_file=exclude))
    assert len(cut) == len(full) - len(listed)
    assert sum(cut.excluded) == len(listed)
    kept = {osp.relpath(cut.get_data_info(i)['img_path'], demo_data_root)
            for i in range(len(cut))}
    assert not kept & set(listed)
    with pytest.raises(FileNotFoundError, match='audit_overlap.py'):
        DATASETS.build(dict(cfg, exclude_file=osp.join(work, 'none.txt')))


def test_missing_data_root_is_a_clear_error(tmp_path, monkeypatch, capsys):
    missing = str(tmp_path / 'nowhere')
    monkeypatch.setattr(sys, 'argv', [TOOL, '--data-root', missing])
    with pytest.raises(SystemExit) as err:
        runpy.run_path(TOOL, run_name='__main__')
    assert missing in str(err.value) and 'not a folder' in str(err.value)
    empty = tmp_path / 'empty'
    empty.mkdir()
    monkeypatch.setattr(sys, 'argv', [TOOL, '--data-root', str(empty),
                                      '--work-dir', str(tmp_path / 'w')])
    with pytest.raises(SystemExit) as err:
        runpy.run_path(TOOL, run_name='__main__')
    assert TABLE1['nih']['folder'] in str(err.value)


def test_hashing_benchmark_on_synthetic_radiographs(tmp_path, monkeypatch,
                                                    capsys):
    import importlib.util
    path = osp.join(REPO, 'tools/analysis_tools/benchmark_hashing.py')
    spec = importlib.util.spec_from_file_location('benchmark_hashing', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    files = {}
    for fmt, depth in (('png', 16), ('png', 8), ('jpeg', 8), ('dicom', 16)):
        folder = tmp_path / f'{fmt}{depth}'
        folder.mkdir()
        files[fmt, depth] = tool.write_synthetic(str(folder), 2, 96, 120,
                                                 fmt, depth)
        assert len(set(files[fmt, depth])) == 2
    for seed in range(2):
        imgs = [decode_grey(p[seed]) for p in files.values()]
        assert all(i.shape[:2] == (120, 96) for i in imgs)
        # one radiograph in four encodings: the audit sees one image
        ref = words(perceptual_hash(imgs[0]))
        assert all(
            hamming(ref, words(perceptual_hash(i))) <= DEFAULT_THRESHOLD
            for i in imgs[1:])
    with pytest.raises(ValueError, match='8-bit'):
        tool.write_synthetic(str(tmp_path), 1, 96, 120, 'jpeg', 16)
    monkeypatch.setattr(sys, 'argv', [
        path, '--synthetic', '3', '--size', '96x120', '--bit-depth', '16',
        '--format', 'dicom', '--repeat', '2'
    ])
    assert tool.main() == 0
    out = capsys.readouterr().out
    assert '3 96x120 16-bit dicom radiographs' in out
    assert 'median of 2 rounds' in out
    assert 'cold: decode + hashes' in out and 'warm: from the cache' in out
