# Copyright (c) muscle_mm contributors. All rights reserved.
import os.path as osp
from typing import List

from muscle_mm.datasets.readers import RSNABoneAgeDataset
from muscle_mm.registry import DATASETS


@DATASETS.register_module()
class BoneAgeDataset(RSNABoneAgeDataset):
    """RSNA Bone Age as a regression task with train / val / test splits.

    muscle_mm reads RSNA Bone Age for MD-MoCo only (its training release,
    no split). This task splits it by image id, deterministically: ``id % 5``
    0 is val, 1 is test, the rest train. Items carry ``gt_age`` (months).
    Args are :class:`RSNABoneAgeDataset`'s, ``split`` any of the three.
    """

    HAS_SPLITS = True
    SPLIT_OF_REMAINDER = {0: 'val', 1: 'test'}

    def load_data_list(self) -> List[dict]:
        data_list = []
        for item in super().load_data_list():
            img_id = int(osp.splitext(osp.basename(item['img_path']))[0])
            if self.SPLIT_OF_REMAINDER.get(img_id % 5, 'train') == self.split:
                data_list.append(dict(item, gt_age=item['boneage']))
        if not data_list:
            raise ValueError(f'BoneAgeDataset: no image of {self.root} falls '
                             f'in the {self.split!r} split (id % 5); expected '
                             'a few dozen images at least')
        return data_list
