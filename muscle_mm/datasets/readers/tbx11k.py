# Copyright (c) muscle_mm contributors. All rights reserved.
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

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


def load_tbx11k(root: str, errors: ErrorPolicy) -> List[dict]:
    """Images of ``TBX11K_{train,val}.json`` with unique ids 1..N (train
    first), relative path, size, boxes ``(x, y, w, h, category name)`` and
    ``positive`` (a TB image). A box outside its image goes to ``errors``.
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
        with open(path) as f:
            coco = json.load(f)
        missing = {'images', 'annotations', 'categories'} - set(coco)
        if missing:
            raise DatasetFormatError(f'{path}: expected COCO keys images, '
                                     f'annotations, categories; missing '
                                     f'{sorted(missing)}')
        cats = {c['id']: c['name'] for c in coco['categories']}
        unknown = set(cats.values()) - {ACTIVE, LATENT, UNCERTAIN}
        if unknown:
            raise DatasetFormatError(f'{path}: unknown categories {unknown}')
        anns: Dict[int, list] = {}
        for a in coco['annotations']:
            anns.setdefault(a['image_id'], []).append(a)
        for im in coco['images']:
            name, w, h = im['file_name'], im['width'], im['height']
            name = name if '/' in name else by_name.get(name, name)
            boxes = []
            for a in anns.get(im['id'], []):
                x, y, bw, bh = a['bbox']
                if x < 0 or y < 0 or bw <= 0 or bh <= 0 or x + bw > w \
                        or y + bh > h:
                    errors(f'{path}: image {im["file_name"]} ({w}x{h}) has '
                           f'box [x, y, w, h]={a["bbox"]} outside the image;'
                           ' expected 0 <= x, x + w <= width, 0 <= y, '
                           'y + h <= height')
                    continue
                boxes.append((x, y, bw, bh, cats[a['category_id']]))
            records.append(
                dict(
                    id=len(records) + 1,
                    width=w,
                    height=h,
                    boxes=boxes,
                    rel=osp.normpath(osp.join(prefix, 'imgs', name)),
                    ann_file=path,
                    positive=bool(anns.get(im['id']))
                    or name.startswith('tb/')))
    return records


@DATASETS.register_module()
class TBX11KDataset(XrayReaderMixin, CocoDataset):
    """TBX11K (Liu et al., CVPR 2020) TB detection, MUSCLE Sec. 3.

    The paper's 640/80/80 are the 800 TB images of the public train+val
    (test labels are not public), re-split seeded by ``make_splits.py``;
    image ids are unique over both jsons (train first). Classes: active and
    latent (``ObsoletePulmonaryTuberculosis``) TB. Boxes of the uncertain
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
        return [(r['rel'], r['rel'],
                 str(any(b[4] == LATENT for b in r['boxes'])))
                for r in load_tbx11k(root, ErrorPolicy('raise', cls.__name__))
                if r['positive']]

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
