# Copyright (c) muscle_mm contributors. All rights reserved.
"""The study's names live in ``muscle_mm.metainfo`` and nowhere else."""
import subprocess
import sys

from muscle_mm import metainfo


def test_the_papers_names():
    """Sec. 3 and Tables 1-3 of the paper, in their order."""
    assert metainfo.TASKS == ('pneumonia', 'mura', 'lung', 'tbx')
    assert [metainfo.INIT_NAMES[k] for k in metainfo.INITS] == [
        'Scratch', 'ImageNet', 'MD-MoCo', 'MUSCLE--', 'MUSCLE'
    ]
    assert set(metainfo.STAGE_BACKBONES) < set(metainfo.INITS)
    assert set(metainfo.STAGE_CONFIGS) == set(metainfo.STAGE_BACKBONES)
    assert set(metainfo.CLS_TASKS) | set(metainfo.TABLE3_TASKS) == set(
        metainfo.TASKS)
    assert set(metainfo.TASK_DATASETS.values()) < set(metainfo.TABLE1)
    assert len(metainfo.TABLE1) == 9
    assert metainfo.TABLE1['mura']['counts'] == dict(
        train=32013, val=3997, test=3995)


def test_every_module_uses_these_names():
    from muscle_mm.apis import study
    from muscle_mm.datasets import readers
    from muscle_mm.evaluation import tables
    from muscle_mm.testing import DEMO_DATASETS

    assert study.TASKS is metainfo.TASKS and study.INITS is metainfo.INITS
    assert readers.TABLE1 is metainfo.TABLE1
    assert DEMO_DATASETS == metainfo.DATASET_FOLDERS
    # the trivial baseline's row first, then the initialisations
    assert tables.PRETRAIN_ORDER == ['Trivial baseline'] + list(
        metainfo.INIT_NAMES.values())
    for key, name in metainfo.INIT_NAMES.items():
        assert tables.pretrain_name(key) == name


def test_metainfo_needs_only_the_standard_library():
    code = ('import sys, muscle_mm.metainfo; '
            "print(sorted(m for m in ('torch', 'mmengine', 'numpy', 'cv2') "
            'if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code],
                         check=True,
                         capture_output=True,
                         text=True).stdout
    assert out.strip() == '[]'
