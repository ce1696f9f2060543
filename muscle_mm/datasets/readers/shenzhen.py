# Copyright (c) muscle_mm contributors. All rights reserved.
import os.path as osp
from typing import List

from mmengine.dataset import BaseDataset

from muscle_mm.registry import DATASETS
from .base import XrayReaderMixin, find_dir, list_files, stem


@DATASETS.register_module()
class ShenzhenCXRDataset(XrayReaderMixin, BaseDataset):
    """Shenzhen (China Set) CXR (Jaeger et al., QIMS 2014), MD-MoCo only.

    Reads ``CXR_png/CHNCXR_0001_0.png`` (also inside one extra
    ``ChinaSet_AllFiles/`` folder, as some mirrors ship it). The last digit
    of the name is the TB label (``tb_label``: 0 normal, 1 TB). Table 1
    counts 661 training images; the NLM release holds 662.
    """

    SOURCE = 'shenzhen'
    HAS_SPLITS = False
    PREFIX = 'CHNCXR_'
    NESTS = ('', 'ChinaSet_AllFiles')

    def load_data_list(self) -> List[dict]:
        folder = osp.join(
            find_dir(self.root, 'CXR_png', self.NESTS), 'CXR_png')
        data_list = []
        for name in list_files(folder, ('.png', )):
            s = stem(name)
            if not s.startswith(self.PREFIX) or s[-2:] not in ('_0', '_1'):
                self.errors(f'{osp.join(folder, name)}: expected a name '
                            f'like {self.PREFIX}0001_0.png (last digit 0 '
                            'normal, 1 TB)')
                continue
            data_list.append(
                self._item(osp.join(folder, name), tb_label=int(s[-1])))
        return self._finish(data_list)
