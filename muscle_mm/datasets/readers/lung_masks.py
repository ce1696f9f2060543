# Copyright (c) muscle_mm contributors. All rights reserved.
import os.path as osp
from typing import Dict, List, Tuple

from mmseg.datasets import BaseSegDataset
from PIL import Image

from muscle_mm.registry import DATASETS
from .base import XrayReaderMixin, find_dir, list_files, rel_to, stem

NESTS = ('', 'Lung Segmentation')


def mask_index(root: str) -> Tuple[str, Dict[str, str]]:
    """Image folder and image stem -> mask path. Shenzhen masks are named
    ``CHNCXR_0001_0_mask.png``, Montgomery masks ``MCUCXR_0001_0.png``."""
    base = find_dir(root, 'masks', NESTS)
    mask_dir = osp.join(base, 'masks')
    index = {}
    for name in list_files(mask_dir, ('.png', )):
        s = stem(name)
        index[s[:-5] if s.endswith('_mask') else s] = osp.join(mask_dir, name)
    return osp.join(base, 'CXR_png'), index


@DATASETS.register_module()
class ChestXrayMasksDataset(XrayReaderMixin, BaseSegDataset):
    """Kaggle "Chest X-ray Masks and Labels" lung segmentation, Sec. 3.

    Layout ``CXR_png/*.png`` + ``masks/*.png`` (0/255 lung masks); only
    images with a mask are used (704 of the 800 public images, so the
    paper's 718/89/89 cannot be met: ``make_splits.py`` prints the
    difference). 255 maps to class 1 through ``label_map`` so the stock
    ``mmseg.LoadAnnotations`` yields a 0/1 map. Each mask must have its
    image's size (read from the PNG headers when the list is built).
    """

    SOURCE = 'lung_masks'
    METAINFO = dict(
        classes=('background', 'lung'), palette=[[0, 0, 0], [255, 255, 255]])

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault('reduce_zero_label', False)
        kwargs.setdefault('img_suffix', '.png')
        super().__init__(*args, **kwargs)

    @classmethod
    def split_candidates(cls, root: str) -> List[Tuple[str, str, str]]:
        """(relative image path, image, source set) of images with a mask."""
        img_dir, masks = mask_index(root)
        images = set(list_files(img_dir, ('.png', )))
        return [(rel_to(osp.join(img_dir, s + '.png'),
                        root), s, s.split('_')[0]) for s in sorted(masks)
                if s + '.png' in images]

    def load_data_list(self) -> List[dict]:
        _, masks = mask_index(self.root)
        data_list = []
        for rel in self._read_split():
            img_path = osp.join(self.root, rel)
            mask = masks.get(stem(rel))
            if mask is None:
                self.errors(
                    f'{img_path} has no mask in masks/ (expected '
                    f'{stem(rel)}.png or {stem(rel)}_mask.png)',
                    FileNotFoundError)
                continue
            try:
                with Image.open(img_path) as im, Image.open(mask) as m:
                    img_size, mask_size = im.size, m.size
            except OSError as e:
                self.errors(f'cannot read {img_path} or {mask}: {e}', OSError)
                continue
            if img_size != mask_size:
                self.errors(f'mask {mask} is {mask_size[0]}x{mask_size[1]} '
                            f'but its image {img_path} is {img_size[0]}x'
                            f'{img_size[1]} (w x h); expected equal sizes')
                continue
            data_list.append(
                self._item(
                    img_path,
                    seg_map_path=mask,
                    label_map={255: 1},
                    reduce_zero_label=False,
                    seg_fields=[]))
        return self._finish(data_list)
