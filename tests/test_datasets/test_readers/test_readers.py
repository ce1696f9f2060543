# Copyright (c) muscle_mm contributors. All rights reserved.
"""The nine dataset readers on the demo miniatures and on broken copies.

Expected values come from the files themselves (folder names, CSV rows,
COCO json boxes), parsed here independently of the readers.
"""
import csv
import glob
import importlib.util
import json
import os
import os.path as osp
import re
import shutil
import sys
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from muscle_mm.datasets.readers import TABLE1, DatasetFormatError
from muscle_mm.datasets.readers.splits import grouped_split, write_splits
from muscle_mm.metainfo import TASK_DATASETS
from muscle_mm.registry import DATASETS, TRANSFORMS
from muscle_mm.testing import generate_demo_data

TASKS = tuple(TASK_DATASETS.values())  # the Table 1 sets of stage 3


def make_splits(root, key, seed=0):
    reader = DATASETS.get(TABLE1[key]['type'])
    splits = grouped_split(
        reader.split_candidates(root), TABLE1[key]['counts'], seed)
    write_splits(root, splits, dict(seed=seed))
    return splits


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """Clean demo data with split files (read-only for the tests)."""
    out = str(tmp_path_factory.mktemp('demo'))
    generate_demo_data(out, seed=0)
    for key in TASKS:
        make_splits(osp.join(out, TABLE1[key]['folder']), key)
    return out


@pytest.fixture
def copy_of(demo, tmp_path):
    """A private copy of one demo dataset, to break."""

    def _copy(key):
        dst = str(tmp_path / TABLE1[key]['folder'])
        shutil.copytree(osp.join(demo, TABLE1[key]['folder']), dst)
        return dst

    return _copy


def build(key, root, **kwargs):
    return DATASETS.build(
        dict(type=TABLE1[key]['type'], data_root=root, **kwargs))


def infos(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


# ---------------------------------------------------------------- demo data


@pytest.mark.parametrize('key', list(TABLE1))
def test_every_reader_lists_absolute_existing_images(demo, key):
    root = osp.join(demo, TABLE1[key]['folder'])
    for split in TABLE1[key]['counts']:
        items = infos(build(key, root, split=split))
        assert items
        for info in items:
            assert osp.isabs(info['img_path']), info
            assert osp.isfile(info['img_path']), info
            assert info['source'] == key


def test_md_moco_readers_cover_every_image(demo):
    nih = osp.join(demo, 'NIH-ChestXray14')
    with open(osp.join(nih, 'Data_Entry_2017.csv')) as f:
        rows = list(csv.reader(f))[1:]
    got = {osp.basename(i['img_path']): i for i in infos(build('nih', nih))}
    assert set(got) == {r[0] for r in rows}
    for r in rows:
        expected = [] if r[1] == 'No Finding' else r[1].split('|')
        assert got[r[0]]['labels'] == expected
        assert got[r[0]]['patient_id'] == r[3]
    for key, pattern in [('shenzhen', 'CXR_png/*.png'),
                         ('montgomery', 'CXR_png/*.png'),
                         ('indiana', 'NLMCXR_png/*.png'),
                         ('rsna_boneage', 'boneage-training-dataset/*.png')]:
        root = osp.join(demo, TABLE1[key]['folder'])
        items = infos(build(key, root))
        assert sorted(i['img_path'] for i in items) == sorted(
            osp.abspath(p) for p in glob.glob(osp.join(root, pattern)))
        if key in ('shenzhen', 'montgomery'):
            for i in items:
                assert i['tb_label'] == int(i['img_path'][-5])


def test_rsna_boneage_labels_match_csv(demo):
    root = osp.join(demo, 'RSNA-BoneAge')
    with open(osp.join(root, 'boneage-training-dataset.csv')) as f:
        rows = {r['id']: r for r in csv.DictReader(f)}
    for info in infos(build('rsna_boneage', root)):
        row = rows[osp.basename(info['img_path'])[:-4]]
        assert info['boneage'] == float(row['boneage'])
        assert info['male'] == (row['male'] == 'True')


@pytest.mark.parametrize('key', ['nih', 'indiana', 'rsna_boneage'])
def test_md_moco_readers_have_train_only(demo, key):
    with pytest.raises(ValueError, match="no 'val' split"):
        build(key, osp.join(demo, TABLE1[key]['folder']), split='val')


def test_pneumonia_splits_cover_release_with_folder_labels(demo):
    root = osp.join(demo, 'chest_xray')
    all_files = {
        osp.abspath(p)
        for p in glob.glob(osp.join(root, '*', '*', '*', '*.jpeg'))
    }
    seen, patients = set(), {}
    for split in ('train', 'val', 'test'):
        ds = build('pneumonia', root, split=split)
        assert ds.metainfo['classes'] == ('normal', 'pneumonia')
        for info in infos(ds):
            folder = osp.basename(osp.dirname(info['img_path']))
            assert info['gt_label'] == (folder == 'PNEUMONIA')
            assert info['img_path'] not in seen
            seen.add(info['img_path'])
            m = re.match(r'(person\d+)_|((?:NORMAL2-)?IM-\d+)-',
                         osp.basename(info['img_path']))
            patient = m.group(1) or m.group(2)
            assert patients.setdefault(patient, split) == split, patient
    assert seen == all_files


def test_mura_labels_follow_study_and_patients_stay_in_one_split(demo):
    root = osp.join(demo, 'MURA-v1.1')
    patients, n = {}, 0
    for split in ('train', 'val', 'test'):
        ds = build('mura', root, split=split)
        assert ds.metainfo['classes'] == ('negative', 'abnormal')
        for info in infos(ds):
            study = osp.basename(osp.dirname(info['img_path']))
            assert info['gt_label'] == study.endswith('_positive')
            patient = info['img_path'].split('/')[-3]
            assert patients.setdefault(patient, split) == split
            n += 1
    with open(osp.join(root, 'train_image_paths.csv')) as f1, \
            open(osp.join(root, 'valid_image_paths.csv')) as f2:
        assert n == len(f1.read().split()) + len(f2.read().split())


def test_lung_masks_give_binary_maps_of_image_size(demo):
    root = osp.join(demo, 'Lung Segmentation')
    ds = build('lung_masks', root, split='train')
    assert ds.metainfo['classes'] == ('background', 'lung')
    load = TRANSFORMS.build(dict(type='mmseg.LoadAnnotations'))
    n_masks = len(os.listdir(osp.join(root, 'masks')))
    total = sum(
        len(build('lung_masks', root, split=s))
        for s in ('train', 'val', 'test'))
    assert total == n_masks  # only images with a mask
    for info in infos(ds)[:3]:
        seg = load(dict(info))['gt_seg_map']
        raw = np.array(Image.open(info['seg_map_path']))
        assert set(np.unique(seg)) <= {0, 1}
        np.testing.assert_array_equal(seg, (raw == 255).astype(np.uint8))
        assert seg.shape == Image.open(info['img_path']).size[::-1]


def test_tbx11k_boxes_ids_and_classes_match_json(demo):
    root = osp.join(demo, 'TBX11K')
    ref = {}  # file_name -> xyxy boxes by category name, from the jsons
    for part in ('train', 'val'):
        coco = json.load(open(f'{root}/annotations/json/TBX11K_{part}.json'))
        cats = {c['id']: c['name'] for c in coco['categories']}
        for im in coco['images']:
            ref[im['file_name']] = sorted(
                (cats[a['category_id']], a['bbox'][0], a['bbox'][1],
                 a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3])
                for a in coco['annotations'] if a['image_id'] == im['id'])
    names = ('ActiveTuberculosis', 'ObsoletePulmonaryTuberculosis')
    ids, n_uncertain = set(), 0
    for split in ('train', 'val', 'test'):
        ds = build('tbx11k', root, split=split)
        assert ds.metainfo['classes'] == names
        for info in infos(ds):
            boxes = ref[info['img_path'].split('/imgs/')[1]]
            assert boxes, 'only TB images are used'
            n_uncertain += sum(b[0] == 'PulmonaryTuberculosis' for b in boxes)
            got = sorted((names[i['bbox_label']], *i['bbox'])
                         for i in info['instances'])
            want = sorted(('ActiveTuberculosis' if b[0] ==
                           'PulmonaryTuberculosis' else b[0], *b[1:])
                          for b in boxes)
            assert got == want
            assert info['img_id'] not in ids
            ids.add(info['img_id'])
    assert len(ids) == sum(1 for b in ref.values() if b)
    assert n_uncertain > 0  # the demo exercises category 3
    ds = build('tbx11k', root, split='train', uncertain_tb='ignore')
    flags = [i['ignore_flag'] for d in infos(ds) for i in d['instances']]
    assert 0 < sum(flags) < len(flags)
    # what the metric checks an ann_file against
    assert ds.metainfo['uncertain_tb'] == 'ignore'
    assert build('tbx11k', root).metainfo['uncertain_tb'] == 'active'


# ------------------------------------------------------------- broken input


def test_missing_file_listed_in_csv(copy_of):
    root = copy_of('nih')
    victim = sorted(glob.glob(f'{root}/images_*/images/*.png'))[3]
    os.remove(victim)
    with pytest.raises(
            FileNotFoundError,
            match=rf'Data_Entry_2017.csv lists '
            rf'{osp.basename(victim)}'):
        build('nih', root)
    n_rows = len(open(f'{root}/Data_Entry_2017.csv').readlines()) - 1
    ds = build('nih', root, on_error='skip')
    assert len(ds) == n_rows - 1
    assert len(ds.errors.skipped) == 1
    assert osp.basename(victim) in ds.errors.skipped[0]


def test_csv_without_expected_columns(copy_of):
    root = copy_of('rsna_boneage')
    path = f'{root}/boneage-training-dataset.csv'
    text = open(path).read().replace('id,boneage,male', 'id,age,male', 1)
    open(path, 'w').write(text)
    with pytest.raises(
            DatasetFormatError,
            match=r"boneage-training-dataset.csv: expected "
            r"columns.*missing \['boneage'\]"):
        build('rsna_boneage', root)


def rewrite_row(path, line, fn):
    """Replace CSV line number ``line`` (1 = header) by ``fn(fields)``."""
    with open(path) as f:
        rows = list(csv.reader(f))
    rows[line - 1] = fn(rows[line - 1])
    with open(path, 'w', newline='') as f:
        csv.writer(f, lineterminator='\n').writerows(rows)
    return rows[line - 1]


def test_nih_row_shorter_than_header(copy_of):
    """A short row was read as 'No Finding' with an empty patient id."""
    root = copy_of('nih')
    path = f'{root}/Data_Entry_2017.csv'
    rewrite_row(path, 4, lambda r: r[:1])
    for on_error in ('raise', 'skip'):  # the file is malformed: no skip
        with pytest.raises(
                DatasetFormatError,
                match=rf'{re.escape(path)}, line 4: expected 11 fields as '
                r'in the header .*, found 1'):
            build('nih', root, on_error=on_error)


def test_csv_header_with_trailing_empty_column(copy_of):
    """Kaggle CSVs may end the header (and rows) with a comma."""
    root = copy_of('nih')
    path = f'{root}/Data_Entry_2017.csv'
    ref = infos(build('nih', root))
    rows = list(csv.reader(open(path)))
    with open(path, 'w') as f:  # header and every row end with ','
        f.writelines(','.join(r) + ',\n' for r in rows)
    assert infos(build('nih', root)) == ref
    rewrite_row(path, 3, lambda r: r[:-1])  # this row without the comma
    assert infos(build('nih', root)) == ref
    rewrite_row(path, 5, lambda r: r[:-1] + ['0.5'])  # a value in it
    with pytest.raises(
            DatasetFormatError,
            match=rf'{re.escape(path)}, line 5: .*nameless last column'):
        build('nih', root)
    rewrite_row(path, 5, lambda r: r[:-3] + [''])  # short by a named one
    with pytest.raises(
            DatasetFormatError,
            match=r'line 5: expected 11 or 12 fields .*found 10'):
        build('nih', root)


@pytest.mark.parametrize('column,value', [
    ('Patient ID', ''),
    ('Patient ID', '12a'),
    ('Finding Labels', 'Cardiomegaly|Tumour'),
    ('Finding Labels', 'No Finding|Mass'),
    ('Finding Labels', ''),
])
def test_nih_values_out_of_domain(copy_of, column, value):
    root = copy_of('nih')
    path = f'{root}/Data_Entry_2017.csv'
    header = next(csv.reader(open(path)))
    col = header.index(column)
    rewrite_row(path, 6, lambda r: r[:col] + [value] + r[col + 1:])
    with pytest.raises(DatasetFormatError) as e:
        build('nih', root)
    msg = str(e.value)
    assert f'{path}, line 6' in msg and f"'{column}'" in msg, msg
    assert repr(value) in msg and 'expected' in msg, msg
    n = len(infos(build('nih', root, on_error='skip')))
    assert n == len(list(csv.reader(open(path)))) - 2  # the row dropped


@pytest.mark.parametrize('column,value', [
    ('male', 'M'),
    ('male', 'true'),
    ('male', ''),
    ('boneage', 'nan'),
    ('boneage', '-5'),
    ('boneage', '0'),
    ('boneage', 'inf'),
    ('boneage', 'ten'),
])
def test_rsna_values_out_of_domain(copy_of, column, value):
    root = copy_of('rsna_boneage')
    path = f'{root}/boneage-training-dataset.csv'
    header = next(csv.reader(open(path)))
    col = header.index(column)
    rewrite_row(path, 3, lambda r: r[:col] + [value] + r[col + 1:])
    with pytest.raises(DatasetFormatError) as e:
        build('rsna_boneage', root)
    msg = str(e.value)
    assert f'{path}, line 3' in msg and f"'{column}'" in msg, msg
    assert repr(value) in msg and 'expected' in msg, msg


def test_mura_csv_with_wrong_column_count(copy_of):
    root = copy_of('mura')
    with open(f'{root}/valid_labeled_studies.csv', 'a') as f:
        f.write('MURA-v1.1/valid/XR_HAND/patient1/study1_negative/,0,extra\n')
    with pytest.raises(
            DatasetFormatError,
            match='valid_labeled_studies.csv, line .*: expected 2'):
        build('mura', root, split='train')


def test_mask_of_wrong_size(copy_of):
    root = copy_of('lung_masks')
    ds = build('lung_masks', root, split='train')
    info = ds.get_data_info(0)
    w, h = Image.open(info['img_path']).size
    Image.new('L', (w + 7, h)).save(info['seg_map_path'])
    with pytest.raises(DatasetFormatError) as e:
        build('lung_masks', root, split='train')
    msg = str(e.value)
    assert info['seg_map_path'] in msg and info['img_path'] in msg
    assert f'{w + 7}x{h}' in msg and f'{w}x{h}' in msg
    skipped = build('lung_masks', root, split='train', on_error='skip')
    assert len(skipped) == len(ds) - 1
    assert len(skipped.errors.skipped) == 1


def test_box_outside_image(copy_of):
    root = copy_of('tbx11k')
    path = f'{root}/annotations/json/TBX11K_train.json'
    coco = json.load(open(path))
    ann = coco['annotations'][0]
    im = next(i for i in coco['images'] if i['id'] == ann['image_id'])
    ann['bbox'] = [im['width'] - 5, 10, 20, 20]
    json.dump(coco, open(path, 'w'))
    with pytest.raises(DatasetFormatError) as e:
        build('tbx11k', root, split='train')
    msg = str(e.value)
    assert 'TBX11K_train.json' in msg and im['file_name'] in msg
    assert str(ann['bbox']) in msg
    ref = build('tbx11k', root, split='train', on_error='skip')
    assert len(ref.errors.skipped) == 1  # the box is dropped and counted
    n_boxes = sum(len(i['instances']) for i in infos(ref))
    ann_img = osp.join(root, 'imgs', im['file_name'])
    assert all(i['img_path'] != ann_img or len(i['instances']) == sum(
        a['image_id'] == im['id'] for a in coco['annotations']) - 1
               for i in infos(ref))
    assert n_boxes > 0


def test_tbx11k_size_must_match_png(copy_of):
    root = copy_of('tbx11k')
    ds = build('tbx11k', root, split='train')
    info = ds.get_data_info(0)
    rel = info['img_path'].split('/imgs/')[1]
    w, h = Image.open(info['img_path']).size
    for part in ('train', 'val'):
        path = f'{root}/annotations/json/TBX11K_{part}.json'
        coco = json.load(open(path))
        im = next((i for i in coco['images'] if i['file_name'] == rel), None)
        if im is not None:
            break
    im['width'] += 7
    json.dump(coco, open(path, 'w'))
    with pytest.raises(DatasetFormatError) as e:
        build('tbx11k', root, split='train')
    msg = str(e.value)
    assert path in msg and info['img_path'] in msg, msg
    assert f'{w + 7}x{h}' in msg and f'{w}x{h}' in msg, msg
    skipped = build('tbx11k', root, split='train', on_error='skip')
    assert len(skipped) == len(ds) - 1
    assert len(skipped.errors.skipped) == 1


def tbx11k_json(root, part='train'):
    path = f'{root}/annotations/json/TBX11K_{part}.json'
    return path, json.load(open(path))


def test_tbx11k_unknown_category_id(copy_of):
    root = copy_of('tbx11k')
    path, coco = tbx11k_json(root)
    ann = coco['annotations'][1]
    ann['category_id'] = 7
    im = next(i for i in coco['images'] if i['id'] == ann['image_id'])
    json.dump(coco, open(path, 'w'))
    with pytest.raises(DatasetFormatError) as e:
        build('tbx11k', root, split='train')
    msg = str(e.value)
    assert path in msg and im['file_name'] in msg, msg
    assert 'category_id 7' in msg and 'expected one of [1, 2, 3]' in msg
    ds = build('tbx11k', root, split='train', on_error='skip')
    assert len(ds.errors.skipped) == 1  # the box is dropped and counted


def test_make_splits_stops_on_a_bad_item_with_its_own_hint(
        copy_of, tmp_path, repo_root):
    """make_splits.py takes no on_error: a reader error raised while it runs
    names the file and says what to do with this tool."""
    root = copy_of('tbx11k')
    path, coco = tbx11k_json(root)
    coco['annotations'][1]['category_id'] = 7
    json.dump(coco, open(path, 'w'))
    spec = importlib.util.spec_from_file_location(
        'make_splits',
        osp.join(repo_root, 'tools/dataset_converters/make_splits.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    argv = ['make_splits.py', '--data-root', str(tmp_path), '--datasets',
            'tbx11k', '--force']
    with mock.patch.object(sys, 'argv', argv), pytest.raises(SystemExit) as e:
        tool.main()
    msg = str(e.value)
    assert msg.startswith('make_splits.py: tbx11k: '), msg
    assert path in msg and 'category_id 7' in msg, msg
    assert 'on_error' not in msg and 'correct the file' in msg, msg


@pytest.mark.parametrize('key', ['width', 'height', 'file_name', 'id'])
def test_tbx11k_image_without_key(copy_of, key):
    root = copy_of('tbx11k')
    path, coco = tbx11k_json(root, 'val')
    im = coco['images'][2]
    del im[key]
    json.dump(coco, open(path, 'w'))
    with pytest.raises(DatasetFormatError) as e:
        build('tbx11k', root, split='test')
    msg = str(e.value)
    assert path in msg and f"'{key}'" in msg, msg
    assert im.get('file_name', 'images[2]') in msg, msg


@pytest.mark.parametrize('key', ['bbox', 'category_id', 'image_id'])
def test_tbx11k_annotation_without_key(copy_of, key):
    root = copy_of('tbx11k')
    path, coco = tbx11k_json(root)
    ann = coco['annotations'][0]
    im = next(i for i in coco['images'] if i['id'] == ann['image_id'])
    del ann[key]
    json.dump(coco, open(path, 'w'))
    with pytest.raises(DatasetFormatError) as e:
        build('tbx11k', root, split='train')
    msg = str(e.value)
    assert path in msg and f"'{key}'" in msg, msg
    assert f'annotation id {ann["id"]}' in msg, msg
    if key != 'image_id':
        assert im['file_name'] in msg, msg


def test_tbx11k_truncated_or_missing_json(copy_of):
    root = copy_of('tbx11k')
    path = f'{root}/annotations/json/TBX11K_val.json'
    text = open(path).read()
    open(path, 'w').write(text[:len(text) // 2])
    with pytest.raises(
            DatasetFormatError, match=rf'{re.escape(path)} is not valid JSON'):
        build('tbx11k', root, split='train')
    os.remove(path)
    with pytest.raises(FileNotFoundError, match=re.escape(path)):
        build('tbx11k', root, split='train')


def test_empty_and_missing_split_files(copy_of):
    root = copy_of('pneumonia')
    open(f'{root}/muscle_splits/test.txt', 'w').close()
    with pytest.raises(DatasetFormatError, match='test.txt is empty'):
        build('pneumonia', root, split='test')
    os.remove(f'{root}/muscle_splits/val.txt')
    with pytest.raises(
            FileNotFoundError,
            match=r'make_splits.py --data-root .* '
            r'--datasets pneumonia'):
        build('pneumonia', root, split='val')


def test_split_files_must_be_disjoint(copy_of):
    root = copy_of('pneumonia')
    splits = f'{root}/muscle_splits'
    train = open(f'{splits}/train.txt').read().split()
    with open(f'{splits}/test.txt', 'a') as f:  # two images also in test
        f.write(f'{train[3]}\n./{train[5]}\n')
    for split in ('train', 'val', 'test'):
        if split == 'val':
            build('pneumonia', root, split='val')  # not involved: loads
            continue
        with pytest.raises(DatasetFormatError) as e:
            build('pneumonia', root, split=split, on_error='skip')
        msg = str(e.value)
        assert f'{splits}/train.txt' in msg and f'{splits}/test.txt' in msg
        assert 'share 2 image(s)' in msg and train[3] in msg, msg
        assert 'make_splits.py' in msg and '--force' in msg


def test_split_file_without_duplicates(copy_of):
    root = copy_of('mura')
    path = f'{root}/muscle_splits/val.txt'
    lines = open(path).read().split()
    with open(path, 'a') as f:
        f.write(f'{lines[0]}\n{lines[0]}\n{lines[2]}\n')
    with pytest.raises(DatasetFormatError) as e:
        build('mura', root, split='val', on_error='skip')
    msg = str(e.value)
    assert path in msg and '2 image(s) more than once' in msg, msg
    assert f'{lines[0]} (3 times)' in msg and lines[2] in msg, msg


def test_check_files_stats_only_when_asked(copy_of):
    root = copy_of('pneumonia')
    rel = open(f'{root}/muscle_splits/train.txt').readline().strip()
    os.remove(osp.join(root, rel))
    n = len(build('pneumonia', root, split='train'))  # no stat by default
    with pytest.raises(FileNotFoundError, match=re.escape(rel)):
        build('pneumonia', root, split='train', check_files=True)
    ds = build(
        'pneumonia', root, split='train', check_files=True, on_error='skip')
    assert len(ds) == n - 1


def test_everything_skipped_is_an_empty_split(copy_of):
    root = copy_of('shenzhen')
    for p in glob.glob(f'{root}/CXR_png/*.png'):
        os.rename(p, p.replace('CHNCXR_', 'other_'))
    with pytest.raises(DatasetFormatError, match='CHNCXR_0001_0.png'):
        build('shenzhen', root)
    with pytest.raises(DatasetFormatError, match="'train' split .* empty"):
        build('shenzhen', root, on_error='skip')


def test_bad_arguments(demo, tmp_path):
    root = osp.join(demo, 'chest_xray')
    with pytest.raises(ValueError, match='on_error'):
        build('pneumonia', root, on_error='ignore')
    with pytest.raises(ValueError, match='split must be one of'):
        build('pneumonia', root, split='valid')
    with pytest.raises(FileNotFoundError, match='not a folder'):
        build('pneumonia', str(tmp_path / 'nope'))
    with pytest.raises(FileNotFoundError, match='Data_Entry_2017.csv'):
        build('nih', str(tmp_path))
    with pytest.raises(ValueError, match='uncertain_tb must be one of'):
        build('tbx11k', osp.join(demo, 'TBX11K'), uncertain_tb='latent')
