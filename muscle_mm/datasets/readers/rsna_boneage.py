# Copyright (c) muscle_mm contributors. All rights reserved.
import math
import os.path as osp
from typing import Dict, List, Tuple

from mmengine.dataset import BaseDataset

from muscle_mm.registry import DATASETS
from .base import XrayReaderMixin, list_files, read_csv

CSV_NAME = 'boneage-training-dataset.csv'
IMG_DIR = 'boneage-training-dataset'
MALE = {'True': True, 'False': False}  # as the RSNA CSV writes it


def parse_boneage_row(row: Dict[str, str]) -> Tuple[float, bool]:
    """``(bone age in months, male)``; ValueError naming the column."""
    try:
        age = float(row['boneage'])
    except ValueError:
        age = math.nan
    if not (math.isfinite(age) and age > 0):
        raise ValueError(f"column 'boneage' is {row['boneage']!r}; expected "
                         'a positive number of months')
    if row['male'] not in MALE:
        raise ValueError(f"column 'male' is {row['male']!r}; expected True "
                         'or False, as the RSNA CSV writes it')
    return age, MALE[row['male']]


@DATASETS.register_module()
class RSNABoneAgeDataset(XrayReaderMixin, BaseDataset):
    """RSNA Pediatric Bone Age (Halabi et al., Radiology 2019), MD-MoCo only.

    Reads ``boneage-training-dataset.csv`` (``id, boneage, male``) and
    ``boneage-training-dataset/<id>.png`` (Kaggle nests the folder once
    more: ``boneage-training-dataset/boneage-training-dataset/``, accepted).
    Items carry ``boneage`` (months, positive) and ``male`` (the CSV's
    ``True``/``False``; anything else is an error). Table 1 counts 10,811;
    the Kaggle training CSV has 12,611 rows (``verify_datasets.py`` prints
    the difference).
    """

    SOURCE = 'rsna_boneage'
    HAS_SPLITS = False

    def load_data_list(self) -> List[dict]:
        csv_path = osp.join(self.root, CSV_NAME)
        rows = read_csv(csv_path, ('id', 'boneage', 'male'))
        folder = osp.join(self.root, IMG_DIR)
        if osp.isdir(osp.join(folder, IMG_DIR)):
            folder = osp.join(folder, IMG_DIR)
        present = set(list_files(folder, ('.png', ))) \
            if osp.isdir(folder) else set()
        data_list = []
        for i, row in rows:
            name = f'{row["id"]}.png'
            try:
                age, male = parse_boneage_row(row)
            except ValueError as e:
                self.errors(f'{csv_path}, line {i}: {e}')
                continue
            if name not in present:
                self.errors(
                    f'{csv_path}, line {i} lists id {row["id"]}; '
                    f'expected {osp.join(folder, name)}', FileNotFoundError)
                continue
            data_list.append(
                self._item(osp.join(folder, name), boneage=age, male=male))
        return self._finish(data_list)
