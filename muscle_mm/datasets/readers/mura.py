# Copyright (c) muscle_mm contributors. All rights reserved.
import os.path as osp
from typing import Dict, List, Sequence, Tuple

from mmpretrain.datasets import BaseDataset

from muscle_mm.registry import DATASETS
from .base import (DatasetFormatError, XrayReaderMixin, find_dir, read_rows,
                   rel_to)

PARTS = ('valid', 'train')


def _strip(path: str) -> str:
    """``MURA-v1.1/train/XR_X/...`` -> ``train/XR_X/...`` (the CSVs are
    relative to the folder above the release)."""
    parts = path.strip('/').split('/')
    for i, p in enumerate(parts):
        if p in PARTS:
            return '/'.join(parts[i:])
    raise DatasetFormatError(f'MURA path {path!r}: expected it to contain '
                             'a train/ or valid/ folder')


@DATASETS.register_module()
class MURADataset(XrayReaderMixin, BaseDataset):
    """MURA v1.1 (Rajpurkar et al., 2017), skeletal abnormality, Sec. 3.

    One sample per image, ``gt_label`` from its study
    (``*_labeled_studies.csv``: 0 negative, 1 abnormal). The paper's
    32,013/3,997/3,995 is a patient-aware seeded re-split of the official
    train+valid (36,808 + 3,197 = 40,005 images), stratified by body part;
    ``protocol='official'`` reads the release's own train / valid instead
    (:meth:`official_candidates`). An image's folder is its study:
    ``BinaryClassificationMetric(study_level=True)`` scores studies from
    the ``img_path`` of each sample, as the MURA paper.
    """

    SOURCE = 'mura'
    METAINFO = dict(classes=('negative', 'abnormal'))
    NESTS = ('', 'MURA-v1.1')

    @classmethod
    def _base(cls, root: str) -> str:
        return find_dir(root, 'train_image_paths.csv', cls.NESTS)

    @classmethod
    def study_labels(cls, root: str) -> Dict[str, int]:
        base, labels = cls._base(root), {}
        for part in PARTS:
            path = osp.join(base, f'{part}_labeled_studies.csv')
            for study, label in read_rows(path, 2):
                if label not in ('0', '1'):
                    raise DatasetFormatError(
                        f'{path}: study {study} has label {label!r}; '
                        'expected 0 (negative) or 1 (abnormal)')
                labels[_strip(study)] = int(label)
        return labels

    @classmethod
    def split_candidates(cls, root: str,
                         parts: Sequence[str] = PARTS
                         ) -> List[Tuple[str, str, str]]:
        """(relative path, patient, body part) of every listed image (of
        the official ``parts``)."""
        base, items = cls._base(root), []
        for part in parts:
            for (path, ) in read_rows(
                    osp.join(base, f'{part}_image_paths.csv'), 1):
                rel = _strip(path)
                parts = rel.split('/')
                if len(parts) != 5:
                    raise DatasetFormatError(
                        f'{base}/{part}_image_paths.csv: {path!r} is not '
                        f'{part}/XR_<PART>/patientN/studyK_<label>/imageJ')
                # patient ids are unique across parts and official splits
                body, patient = parts[1], parts[2]
                items.append((rel_to(osp.join(base, rel),
                                     root), patient, body))
        return items

    @classmethod
    def official_candidates(cls, root: str) -> Dict[str, list]:
        """The release's own split: ``valid`` (3,197 images, the test set
        of the MURA paper and leaderboard) is the test set; a patient-aware
        val is carved from ``train`` by ``make_splits.py --protocol
        official``."""
        return dict(
            train=cls.split_candidates(root, ('train', )),
            test=cls.split_candidates(root, ('valid', )))

    def load_data_list(self) -> List[dict]:
        labels = self.study_labels(self.root)
        data_list = []
        for rel in self._read_split():
            study = _strip(osp.dirname(rel))
            if study not in labels:
                self.errors(f'{rel}: its study {study}/ is in neither '
                            'train_ nor valid_labeled_studies.csv')
                continue
            data_list.append(
                self._item(osp.join(self.root, rel), gt_label=labels[study]))
        return self._finish(data_list)
