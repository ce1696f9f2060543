# Copyright (c) muscle_mm contributors. All rights reserved.
import os
import os.path as osp
import re
from typing import Dict, List, Optional

from mmengine.dataset import BaseDataset

from muscle_mm.registry import DATASETS
from .base import XrayReaderMixin, list_files, read_csv

NIH_CSV = 'Data_Entry_2017.csv'
NO_FINDING = 'No Finding'
NIH_FINDINGS = ('Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema',
                'Effusion', 'Emphysema', 'Fibrosis', 'Hernia', 'Infiltration',
                'Mass', 'Nodule', 'Pleural_Thickening', 'Pneumonia',
                'Pneumothorax')


def bad_nih_row(row: Dict[str, str]) -> Optional[str]:
    """Why a ``Data_Entry_2017.csv`` row is outside its domain, or None."""
    pid, labels = row['Patient ID'], row['Finding Labels']
    if not re.fullmatch(r'[0-9]+', pid):
        return f"column 'Patient ID' is {pid!r}; expected an integer"
    findings = labels.split('|')
    if findings != [NO_FINDING] and not set(findings) <= set(NIH_FINDINGS):
        return (f"column 'Finding Labels' is {labels!r}; expected "
                f"'{NO_FINDING}' or '|'-joined findings of {NIH_FINDINGS}")
    return None


def index_nih_images(root: str) -> Dict[str, str]:
    """Image name -> path over ``images*/`` and ``images*/images/`` (the
    official tarballs unpack to ``images/``, Kaggle to ``images_001/images``).
    """
    index = {}
    for name in sorted(os.listdir(root)):
        top = osp.join(root, name)
        if not (name.startswith('images') and osp.isdir(top)):
            continue
        for folder in (top, osp.join(top, 'images')):
            if osp.isdir(folder):
                for f in list_files(folder, ('.png', )):
                    index.setdefault(f, osp.join(folder, f))
    return index


@DATASETS.register_module()
class NIHChestXray14Dataset(XrayReaderMixin, BaseDataset):
    """NIH ChestX-ray14 (Wang et al., CVPR 2017), MD-MoCo only (Table 1).

    ``split='train'`` is every image of ``Data_Entry_2017.csv`` (112,120:
    ``train_val_list.txt`` + ``test_list.txt``), as in Table 1. Each item
    carries ``labels`` (finding names, empty for 'No Finding') and
    ``patient_id``. A CSV row without its image, with a non-integer
    patient id or an unknown finding is an error (or skipped).
    """

    SOURCE = 'nih'
    HAS_SPLITS = False

    def load_data_list(self) -> List[dict]:
        csv_path = osp.join(self.root, NIH_CSV)
        rows = read_csv(csv_path,
                        ('Image Index', 'Finding Labels', 'Patient ID'))
        index = index_nih_images(self.root)
        data_list = []
        for line, row in rows:
            bad = bad_nih_row(row)
            if bad:
                self.errors(f'{csv_path}, line {line}: {bad}')
                continue
            name = row['Image Index']
            path = index.get(name)
            if path is None:
                self.errors(
                    f'{csv_path} lists {name}, not found in '
                    f'{self.root}/images*/[images/]', FileNotFoundError)
                continue
            findings = row['Finding Labels'].split('|')
            labels = [f for f in findings if f != NO_FINDING]
            data_list.append(
                self._item(path, labels=labels, patient_id=row['Patient ID']))
        return self._finish(data_list)
