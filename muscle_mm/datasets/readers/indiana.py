# Copyright (c) muscle_mm contributors. All rights reserved.
import os.path as osp
from typing import List

from mmengine.dataset import BaseDataset

from muscle_mm.registry import DATASETS
from .base import XrayReaderMixin, find_dir, list_files


@DATASETS.register_module()
class IndianaCXRDataset(XrayReaderMixin, BaseDataset):
    """Indiana University CXR / OpenI (Demner-Fushman et al., JAMIA 2016),
    MD-MoCo only: every PNG of ``NLMCXR_png/`` (7,470 in Table 1).

    The folder may also be the unpacked PNG tarball itself (PNGs directly
    in ``data_root``). The XML reports (``NLMCXR_reports``) are not needed
    for MD-MoCo and are not parsed.
    """

    SOURCE = 'indiana'
    HAS_SPLITS = False

    def load_data_list(self) -> List[dict]:
        try:
            folder = osp.join(find_dir(self.root, 'NLMCXR_png'), 'NLMCXR_png')
        except FileNotFoundError:
            folder = self.root
        names = list_files(folder, ('.png', ))
        if not names:
            raise FileNotFoundError(
                f'{type(self).__name__}: no PNG found in {folder}; expected '
                'NLMCXR_png/<id>.png under data_root')
        return self._finish([self._item(osp.join(folder, n)) for n in names])
