# Copyright (c) muscle_mm contributors. All rights reserved.
"""Count a dataset split as its reader sees it, and list what is wrong
(``tools/misc/verify_datasets.py`` and the study's preflight)."""
from typing import List, Tuple

from PIL import Image

from muscle_mm.datasets.transforms.loading import LoadXrayImage
from muscle_mm.registry import DATASETS
from .base import TABLE1, DatasetFormatError


def unreadable(paths: List[str], decode: bool) -> List[str]:
    """Images that cannot be read: decoded by ``LoadXrayImage``, the
    transform training uses, if ``decode``; else headers opened by PIL."""
    load = LoadXrayImage(to_channels=1)
    bad = []
    for path in paths:
        if not decode and path.lower().endswith('.dcm'):
            continue  # DICOM: PIL cannot open it; --decode reads it
        try:
            if decode:
                load.transform(dict(img_path=path))
            else:
                with Image.open(path) as im:
                    im.size
        except Exception as e:  # noqa: B902 - any failure is the report
            msg = f'{type(e).__name__}: {e}'
            bad.append(msg if path in msg else f'{path}: {msg}')
    return bad


def verify_split(key: str,
                 root: str,
                 split: str,
                 decode: bool = False) -> Tuple[int, List[str]]:
    """(images found, problems) of ``split`` of dataset ``key`` (a key of
    :data:`TABLE1`) under ``root``; a missing split file is a problem."""
    try:
        ds = DATASETS.build(
            dict(
                type=TABLE1[key]['type'],
                data_root=root,
                split=split,
                on_error='skip',
                check_files=True,
                lazy_init=False))
    except DatasetFormatError as e:  # says what is wrong, e.g. split files
        return 0, [str(e)]
    except Exception as e:  # noqa: B902
        return 0, [f'cannot build the reader: {type(e).__name__}: {e}']
    paths = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    return len(ds), ds.errors.skipped + unreadable(paths, decode)
