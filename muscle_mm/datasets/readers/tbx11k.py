# Copyright (c) muscle_mm contributors. All rights reserved.
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

from mmdet.datasets import CocoDataset
from PIL import Image

from muscle_mm.registry import DATASETS
from .base import (DatasetFormatError, ErrorPolicy, XrayReaderMixin, find_dir,
                   list_files)

ACTIVE, LATENT, UNCERTAIN = ('ActiveTuberculosis',
                             'ObsoletePulmonaryTuberculosis',
                             'PulmonaryTuberculosis')
# what ``uncertain_tb`` makes of the uncertain boxes: active TB or ignored
UNCERTAIN_TB = ('active', 'ignore')


def check_uncertain_tb(value: str) -> str:
    if value not in UNCERTAIN_TB:
        raise ValueError(f'uncertain_tb must be one of {UNCERTAIN_TB}, '
                         f'got {value!r}')
    return value


IMAGE_KEYS = ('id', 'file_name', 'width', 'height')
ANN_KEYS = ('image_id', 'category_id', 'bbox')


def read_coco(path: str) -> Tuple[dict, Dict[int, str]]:
    """A TBX11K COCO json and its category id -> name; errors name the
    file and what is missing."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'expected the TBX11K annotation file {path} '
                                '(annotations/json/ of the release)')
    try:
        with open(path, encoding='utf-8') as f:
            coco = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetFormatError(
            f'{path} is not valid JSON ({e.msg}, line {e.lineno} column '
            f'{e.colno}); is it truncated? Extract it again from the TBX11K '
            'release') from None
    keys = set(coco) if isinstance(coco, dict) else set()
    missing = {'images', 'annotations', 'categories'} - keys
    if missing:
        raise DatasetFormatError(f'{path}: expected COCO keys images, '
                                 f'annotations, categories; missing '
                                 f'{sorted(missing)}')
    cats = {}
    for i, c in enumerate(coco['categories']):
        if not isinstance(c, dict) or not {'id', 'name'} <= set(c):
            raise DatasetFormatError(f'{path}: categories[{i}] is {c!r}; '
                                     "expected keys 'id' and 'name'")
        cats[c['id']] = c['name']
    unknown = set(cats.values()) - {ACTIVE, LATENT, UNCERTAIN}
    if unknown:
        raise DatasetFormatError(f'{path}: unknown categories {unknown}')
    return coco, cats


def _lacks(obj, keys: Sequence[str]) -> str:
    """The keys of ``keys`` a json object lacks, quoted, or ''."""
    if not isinstance(obj, dict):
        return 'all keys (not an object)'
    return ', '.join(repr(k) for k in keys if k not in obj)


def _images(path: str, coco: dict, errors: ErrorPolicy) -> Dict[int, dict]:
    """Image id -> image of one json, each with the keys and a positive
    integer size (or dropped through ``errors``)."""
    images = {}
    for i, im in enumerate(coco['images']):
        name = im.get('file_name', f'images[{i}]') \
            if isinstance(im, dict) else f'images[{i}]'
        lacks = _lacks(im, IMAGE_KEYS)
        if lacks:
            errors(f'{path}: image {name} has no {lacks}; expected the keys '
                   f'{IMAGE_KEYS}')
            continue
        w, h = im['width'], im['height']
        if not all(isinstance(v, int) and v > 0 for v in (w, h)):
            errors(f'{path}: image {name} has width {w!r} and height {h!r}; '
                   'expected positive integers (pixels)')
            continue
        if im['id'] in images:
            errors(f'{path}: image {name} has the id {im["id"]} of image '
                   f'{images[im["id"]]["file_name"]}; expected unique ids')
            continue
        images[im['id']] = im
    return images


def _boxes(path: str, coco: dict, images: Dict[int, dict], cats: dict,
           errors: ErrorPolicy) -> Dict[int, List[tuple]]:
    """Image id -> boxes ``(x, y, w, h, category name)`` inside the image;
    a bad annotation goes to ``errors``."""
    boxes: Dict[int, List[tuple]] = {}
    listed = {im.get('id') for im in coco['images'] if isinstance(im, dict)}
    for i, a in enumerate(coco['annotations']):
        ann = f'annotation id {a["id"]}' if isinstance(a, dict) \
            and 'id' in a else f'annotations[{i}]'
        if not isinstance(a, dict) or 'image_id' not in a:
            errors(f"{path}: {ann} has no 'image_id'; expected the keys "
                   f'{ANN_KEYS}')
            continue
        im = images.get(a['image_id'])
        if im is None:
            if a['image_id'] not in listed:
                errors(f'{path}: {ann} has image_id {a["image_id"]}, which '
                       'no image has; expected the id of an image')
            continue  # else its image was dropped already
        where = f'{path}: image {im["file_name"]}, {ann}'
        lacks = _lacks(a, ANN_KEYS)
        if lacks:
            errors(f'{where} has no {lacks}; expected the keys {ANN_KEYS}')
            continue
        if a['category_id'] not in cats:
            errors(f'{where} has category_id {a["category_id"]!r}; expected '
                   f'one of {sorted(cats)} ({cats})')
            continue
        bbox, w, h = a['bbox'], im['width'], im['height']
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(isinstance(v, (int, float)) for v in bbox)):
            errors(f'{where} has bbox {bbox!r}; expected [x, y, w, h]')
            continue
        x, y, bw, bh = bbox
        if x < 0 or y < 0 or bw <= 0 or bh <= 0 or x + bw > w or y + bh > h:
            errors(f'{path}: image {im["file_name"]} ({w}x{h}) has '
                   f'box [x, y, w, h]={bbox} outside the image;'
                   ' expected 0 <= x, x + w <= width, 0 <= y, '
                   'y + h <= height')
            continue
        boxes.setdefault(im['id'], []).append(
            (x, y, bw, bh, cats[a['category_id']]))
    return boxes


def load_tbx11k(root: str, errors: ErrorPolicy) -> List[dict]:
    """Images of ``TBX11K_{train,val}.json`` with unique ids 1..N (train
    first), relative path, size, boxes ``(x, y, w, h, category name)`` and
    ``positive`` (a TB image). A bad image entry or box goes to ``errors``
    (naming the file, the image and the key); a file that is not COCO json
    is a :class:`DatasetFormatError`.
    """
    base = find_dir(root, 'annotations', ('', 'TBX11K'))
    prefix = osp.relpath(base, root)
    by_name = {}  # some copies list bare names: find them under imgs/*/
    for sub in sorted(os.listdir(osp.join(base, 'imgs'))):
        if osp.isdir(osp.join(base, 'imgs', sub)):
            for f in list_files(osp.join(base, 'imgs', sub), ('.png', )):
                by_name.setdefault(f, f'{sub}/{f}')
    records = []
    for part in ('train', 'val'):
        path = osp.join(base, 'annotations', 'json', f'TBX11K_{part}.json')
        coco, cats = read_coco(path)
        images = _images(path, coco, errors)
        boxes = _boxes(path, coco, images, cats, errors)
        annotated = {
            a.get('image_id')
            for a in coco['annotations'] if isinstance(a, dict)
        }
        for im in images.values():
            name = im['file_name']
            name = name if '/' in name else by_name.get(name, name)
            records.append(
                dict(
                    id=len(records) + 1,
                    width=im['width'],
                    height=im['height'],
                    boxes=boxes.get(im['id'], []),
                    rel=osp.normpath(osp.join(prefix, 'imgs', name)),
                    ann_file=path,
                    positive=im['id'] in annotated or name.startswith('tb/')))
    return records


@DATASETS.register_module()
class TBX11KDataset(XrayReaderMixin, CocoDataset):
    """TBX11K (Liu et al., CVPR 2020) TB detection, MUSCLE Sec. 3.

    The paper's 640/80/80 are the 800 TB images of the public train+val
    (test labels are not public), re-split seeded by ``make_splits.py``;
    ``protocol='official'`` reads every image of the release's own train
    (less a carved val) and its val as the test set
    (:meth:`official_candidates`); image ids are unique over both jsons
    (train first). Classes: active and latent
    (``ObsoletePulmonaryTuberculosis``) TB. Boxes of the uncertain
    ``PulmonaryTuberculosis`` count as active (``uncertain_tb='active'``,
    as TBX11K's own active-TB evaluation) or are ignored (``'ignore'``);
    ``metainfo['uncertain_tb']`` carries the choice to the metric. Each
    image's json width/height must be its PNG's (read from the header).
    """

    SOURCE = 'tbx11k'
    METAINFO = dict(
        classes=(ACTIVE, LATENT), palette=[(220, 20, 60), (0, 0, 230)])

    def __init__(self, *args, uncertain_tb: str = 'active', **kwargs):
        self.uncertain_tb = check_uncertain_tb(uncertain_tb)
        # the metric reads it from dataset_meta to check an ann_file's boxes
        kwargs['metainfo'] = dict(
            kwargs.get('metainfo') or {}, uncertain_tb=uncertain_tb)
        super().__init__(*args, **kwargs)

    @classmethod
    def split_candidates(cls, root: str) -> List[Tuple[str, str, str]]:
        """(relative path, image, has latent TB) of the TB images."""
        return [(r['rel'], r['rel'], _stratum(r))
                for r in load_tbx11k(root, ErrorPolicy('raise', cls.__name__))
                if r['positive']]  # the paper's: TB images only

    @classmethod
    def official_candidates(cls, root: str) -> Dict[str, list]:
        """The release's own split, every image (healthy, sick, TB): its
        val (1,800 images) is the test set, as the test labels are hidden;
        a val is carved from its train by ``make_splits.py --protocol
        official``, stratified by healthy / sick / active / latent TB."""
        records = load_tbx11k(root, ErrorPolicy('raise', cls.__name__))
        out = dict(train=[], test=[])
        for r in records:
            part = 'train' if r['ann_file'].endswith('_train.json') \
                else 'test'
            out[part].append((r['rel'], r['rel'], _stratum(r)))
        return out

    def load_data_list(self) -> List[dict]:
        records = {r['rel']: r for r in load_tbx11k(self.root, self.errors)}
        self.cat_ids = [1, 2]
        data_list = []
        for rel in self._read_split():
            r = records.get(osp.normpath(rel))
            if r is None:
                self.errors(f'{rel} (split file) is in neither '
                            'TBX11K_train.json nor TBX11K_val.json')
                continue
            img_path = osp.join(self.root, rel)
            try:
                with Image.open(img_path) as im:  # reads the header only
                    size = im.size
            except OSError as e:
                self.errors(f'cannot read {img_path}: {e}', OSError)
                continue
            if size != (r['width'], r['height']):
                self.errors(f'{r["ann_file"]} gives image {rel} the size '
                            f'{r["width"]}x{r["height"]} but {img_path} is '
                            f'{size[0]}x{size[1]} (w x h); expected equal '
                            'sizes (boxes are checked against the json)')
                continue
            instances = [
                dict(
                    bbox=[x, y, x + w, y + h],
                    bbox_label=0 if name != LATENT else 1,
                    ignore_flag=int(name == UNCERTAIN
                                    and self.uncertain_tb == 'ignore'))
                for x, y, w, h, name in r['boxes']
            ]
            data_list.append(
                self._item(
                    img_path,
                    img_id=r['id'],
                    seg_map_path=None,
                    height=r['height'],
                    width=r['width'],
                    instances=instances))
        return self._finish(data_list)

    def filter_data(self) -> List[dict]:
        """Drop images without boxes if ``filter_cfg.filter_empty_gt``."""
        if self.test_mode or not (self.filter_cfg or {}).get(
                'filter_empty_gt', False):
            return self.data_list
        return [d for d in self.data_list if d['instances']]


def _stratum(record: dict) -> str:
    """Whether a TB image shows latent TB (``'True'``/``'False'``; latent
    TB is rare: kept in proportion), else the image folder (``health``,
    ``sick``)."""
    if record['positive']:
        return str(any(b[4] == LATENT for b in record['boxes']))
    parts = record['rel'].split('/')
    return parts[-2] if len(parts) > 1 else 'other'


def coco_subset(records: List[dict],
                rels: List[str],
                uncertain_tb: str = 'active') -> dict:
    """COCO json of one split with the reader's ids and the two paper
    classes (1 active, 2 latent), uncertain boxes as active or ``iscrowd``
    (``uncertain_tb``, recorded in ``info`` so that ``TBDetectionMetric``
    can refuse a file that disagrees with its dataset)."""
    check_uncertain_tb(uncertain_tb)
    wanted = {osp.normpath(r) for r in rels}
    images, anns = [], []
    for r in records:
        if r['rel'] not in wanted:
            continue
        images.append(
            dict(
                id=r['id'],
                file_name=r['rel'],
                width=r['width'],
                height=r['height']))
        for x, y, w, h, name in r['boxes']:
            ignore = int(name == UNCERTAIN and uncertain_tb == 'ignore')
            anns.append(
                dict(
                    id=len(anns) + 1,
                    image_id=r['id'],
                    category_id=2 if name == LATENT else 1,
                    bbox=[x, y, w, h],
                    area=w * h,
                    iscrowd=ignore))
    return dict(
        info=dict(
            description='MUSCLE split of TBX11K, written by '
            'tools/dataset_converters/make_splits.py',
            uncertain_tb=uncertain_tb),
        images=images,
        annotations=anns,
        categories=[dict(id=1, name=ACTIVE),
                    dict(id=2, name=LATENT)])
