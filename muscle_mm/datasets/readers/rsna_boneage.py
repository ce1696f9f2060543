# Copyright (c) muscle_mm contributors. All rights reserved.
import os.path as osp
from typing import List

from mmengine.dataset import BaseDataset

from muscle_mm.registry import DATASETS
from .base import XrayReaderMixin, list_files, read_csv

CSV_NAME = 'boneage-training-dataset.csv'
IMG_DIR = 'boneage-training-dataset'


@DATASETS.register_module()
class RSNABoneAgeDataset(XrayReaderMixin, BaseDataset):
    """RSNA Pediatric Bone Age (Halabi et al., Radiology 2019), MD-MoCo only.

    Reads ``boneage-training-dataset.csv`` (``id, boneage, male``) and
    ``boneage-training-dataset/<id>.png`` (Kaggle nests the folder once
    more: ``boneage-training-dataset/boneage-training-dataset/``, accepted).
    Items carry ``boneage`` (months) and ``male``. Table 1 counts 10,811;
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
        for i, row in enumerate(rows, 2):
            name = f'{row["id"]}.png'
            try:
                age = float(row['boneage'])
            except ValueError:
                self.errors(f'{csv_path}, line {i}: boneage {row["boneage"]!r}'
                            ' is not a number of months')
                continue
            if name not in present:
                self.errors(
                    f'{csv_path}, line {i} lists id {row["id"]}; '
                    f'expected {osp.join(folder, name)}', FileNotFoundError)
                continue
            data_list.append(
                self._item(
                    osp.join(folder, name),
                    boneage=age,
                    male=row['male'].lower() in ('true', '1')))
        return self._finish(data_list)
