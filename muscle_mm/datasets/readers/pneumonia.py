# Copyright (c) muscle_mm contributors. All rights reserved.
import os.path as osp
import re
from typing import Dict, List, Sequence, Tuple

from mmpretrain.datasets import BaseDataset

from muscle_mm.registry import DATASETS
from .base import XrayReaderMixin, find_dir, list_files, rel_to

CLASS_DIRS = ('NORMAL', 'PNEUMONIA')
# personN_bacteria_M / personN_virus_M; IM-XXXX-YYYY / NORMAL2-IM-XXXX-YYYY
_PATIENT = re.compile(r'^(person\d+)_|^((?:NORMAL2-)?IM-\d+)-')


def patient_of(name: str) -> str:
    """Patient key of a Kermany file name (the name itself if unknown)."""
    m = _PATIENT.match(osp.basename(name))
    return (m.group(1) or m.group(2)) if m else osp.basename(name)


@DATASETS.register_module()
class KermanyPneumoniaDataset(XrayReaderMixin, BaseDataset):
    """Paediatric pneumonia CXR (Kermany et al., Cell 2018), MUSCLE Sec. 3.

    Layout ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg``; the
    Kaggle archive adds one more ``chest_xray/`` level, accepted. The
    official val split has only 16 images, so the paper's 4,686/585/585 is
    a patient-aware seeded re-split of all 5,856 images, written once to
    ``muscle_splits/`` by ``tools/dataset_converters/make_splits.py``;
    ``protocol='official'`` reads the release's own split instead
    (:meth:`official_candidates`).
    """

    SOURCE = 'pneumonia'
    METAINFO = dict(classes=('normal', 'pneumonia'))

    @classmethod
    def split_candidates(cls,
                         root: str,
                         parts: Sequence[str] = ('train', 'val', 'test')
                         ) -> List[Tuple[str, str, str]]:
        """(relative path, patient, class) of every image of the release
        (of its folders ``parts``)."""
        base = find_dir(root, 'train', ('', 'chest_xray'))
        items = []
        for split in parts:
            for cls_dir in CLASS_DIRS:
                folder = osp.join(base, split, cls_dir)
                if not osp.isdir(folder):
                    continue
                for name in list_files(folder, ('.jpeg', '.jpg', '.png')):
                    items.append((rel_to(osp.join(folder, name),
                                         root), patient_of(name), cls_dir))
        return items

    @classmethod
    def official_candidates(cls, root: str) -> Dict[str, list]:
        """The release's own split: ``test/`` (624 images) is the test
        set; the official ``val/`` (16 images) joins ``train/``, from which
        ``make_splits.py --protocol official`` carves a patient-aware val."""
        return dict(
            train=cls.split_candidates(root, ('train', 'val')),
            test=cls.split_candidates(root, ('test', )))

    def load_data_list(self) -> List[dict]:
        data_list = []
        for rel in self._read_split():
            cls_dir = osp.basename(osp.dirname(rel))
            if cls_dir not in CLASS_DIRS:
                self.errors(f'split file line {rel!r}: expected the image '
                            f'inside one of {CLASS_DIRS}')
                continue
            data_list.append(
                self._item(
                    osp.join(self.root, rel),
                    gt_label=CLASS_DIRS.index(cls_dir)))
        return self._finish(data_list)
