# Copyright (c) muscle_mm contributors. All rights reserved.
"""A config in another folder inherits muscle_mm's as ``muscle_mm::<path
under configs/>``, the way OpenMMLab configs inherit ``mmdet::``."""
import os.path as osp
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mmengine.config import Config

import muscle_mm.utils  # noqa: F401 (makes muscle_mm:: resolvable)
from muscle_mm.apis import get_config_path
from muscle_mm.utils import mim

REPO = str(Path(__file__).resolve().parents[2])
THIRD_PARTY = """\
_base_ = ['muscle_mm::muscle/cl_r18.py']
train_cfg = dict(rounds=3)
"""
TASK_MODEL = """\
_base_ = ['muscle_mm::_base_/models/tasks/fc_cls_r18.py']
model = dict(head=dict(num_classes=5))
"""


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_config_elsewhere_inherits_muscle_mm(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(write(tmp_path, 'my_cl.py', THIRD_PARTY))
    ours = Config.fromfile(get_config_path('muscle/cl_r18.py'))
    assert cfg.train_cfg.rounds == 3
    assert cfg.model.backbone == ours.model.backbone
    assert set(cfg.model.tasks) == {'pneumonia', 'mura', 'lung', 'tbx'}
    # the task entries are paths in the package's .mim folder, which exist
    for task, path in cfg.model.tasks.items():
        assert osp.isfile(path), (task, path)
        assert osp.join('muscle_mm', '.mim', 'configs') in path
    # mmengine marks what came from another package with its scope
    assert cfg.model._scope_ == 'muscle_mm'

    model = Config.fromfile(write(tmp_path, 'my_task.py', TASK_MODEL)).model
    assert model.type == 'mmpretrain.ImageClassifier'
    assert model.head.num_classes == 5 and model.head.in_channels == 512
    assert model.data_preprocessor.mean == [122.786] * 3  # Sec. 2.1


def test_mmengine_hub_reads_muscle_mm_configs():
    from mmengine.hub import get_config
    cfg = get_config('muscle_mm::muscle/cl_r18.py')
    assert cfg.train_cfg.rounds == 10  # the paper's


def test_a_config_inheriting_muscle_mm_builds_its_task_model(tmp_path):
    """The ``_scope_`` mmengine gives a ``muscle_mm::`` model must not stop
    the task model from building in its own library's scope."""
    from muscle_mm.models.multitask.multitask_model import build_task_model
    from muscle_mm.utils import register_all_modules
    register_all_modules()
    model = build_task_model(write(tmp_path, 'my_task.py', TASK_MODEL))
    assert type(model).__name__ == 'ImageClassifier'
    assert model.head.fc.out_features == 5


def test_unknown_muscle_mm_config_names_the_path(tmp_path):
    path = write(tmp_path, 'bad.py', "_base_ = ['muscle_mm::muscle/nope.py']")
    with pytest.raises(FileNotFoundError, match='muscle/nope.py'):
        Config.fromfile(path)


def test_missing_mim_folder_says_how_to_get_it(tmp_path, monkeypatch):
    """An installed package without ``.mim`` (a broken install) is named,
    with the command that makes it."""
    package = tmp_path / 'site-packages' / 'muscle_mm'
    package.mkdir(parents=True)
    monkeypatch.setattr(mim, 'PACKAGE_DIR', str(package))
    monkeypatch.setattr(mim, 'MIM_DIR', str(package / '.mim'))
    with pytest.raises(FileNotFoundError) as e:
        Config.fromfile(write(tmp_path, 'my_cl.py', THIRD_PARTY))
    assert str(package / '.mim') in str(e.value)
    assert 'pip install' in str(e.value)


def test_a_checkout_without_mim_links_gets_them(tmp_path, monkeypatch):
    """A checkout on PYTHONPATH alone gets the links pip install -e would
    make (here a copy of the checkout's layout in tmp)."""
    checkout = tmp_path / 'checkout'
    (checkout / 'muscle_mm').mkdir(parents=True)
    (checkout / 'configs').mkdir()
    (checkout / 'setup.py').write_text('')
    (checkout / 'model-index.yml').write_text('Import: []\n')
    monkeypatch.setattr(mim, 'PACKAGE_DIR', str(checkout / 'muscle_mm'))
    monkeypatch.setattr(mim, 'MIM_DIR', str(checkout / 'muscle_mm' / '.mim'))
    assert mim.mim_package_dir() == str(checkout / 'muscle_mm')
    link = checkout / 'muscle_mm' / '.mim' / 'configs'
    assert link.is_symlink() and link.resolve() == (checkout / 'configs')


def test_from_another_directory_in_a_fresh_process(tmp_path):
    """What a third party runs: its own config, its own cwd, only
    ``import muscle_mm.utils`` (as the tools do) before ``Config``."""
    write(tmp_path, 'my_cl.py', THIRD_PARTY)
    code = ('import muscle_mm.utils\n'
            'from mmengine.config import Config\n'
            "cfg = Config.fromfile('my_cl.py')\n"
            'print(cfg.train_cfg.rounds, cfg.model.type)\n')
    out = subprocess.run([sys.executable, '-c', code],
                         cwd=str(tmp_path),
                         env=dict(__import__('os').environ, PYTHONPATH=REPO),
                         check=True,
                         capture_output=True,
                         text=True).stdout.split()
    assert out == ['3', 'MultiTaskModel']
