# Copyright (c) muscle_mm contributors. All rights reserved.
"""The study finds configs and tools through the package (the checkout, or
``muscle_mm/.mim`` once installed), whatever the working directory."""
import os
import os.path as osp
import subprocess
import sys
import zipfile

import pytest

from muscle_mm.apis import MuscleStudy, StudySettings, paths

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_found_from_a_directory_outside_the_checkout(tmp_path):
    code = ('from muscle_mm.apis import get_config_path, get_tool_path\n'
            "print(get_config_path('muscle/cl_r18.py'))\n"
            "print(get_tool_path('dataset_converters/make_splits.py'))\n")
    env = dict(os.environ, PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, '-c', code],
                         cwd=str(tmp_path),
                         env=env,
                         check=True,
                         capture_output=True,
                         text=True).stdout.split()
    assert out == [
        osp.join(REPO, 'configs/muscle/cl_r18.py'),
        osp.join(REPO, 'tools/dataset_converters/make_splits.py')
    ]


def test_study_plan_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = MuscleStudy(StudySettings(work_dir='w', tasks=['lung']))
    configs = [run.config for run in study.plan()]
    assert configs and all(osp.isfile(c) for c in configs)
    assert all(c.startswith(osp.join(REPO, 'configs', '')) for c in configs)
    assert study.tool('train.py') == osp.join(REPO, 'tools/train.py')


def test_installed_package_reads_its_mim_folder(tmp_path, monkeypatch):
    """No checkout around the package: ``.mim`` (what setup.py installs)."""
    package = tmp_path / 'site-packages' / 'muscle_mm'
    config = package / '.mim' / 'configs' / 'muscle' / 'cl_r18.py'
    config.parent.mkdir(parents=True)
    config.write_text('x = 1\n')
    monkeypatch.setattr(paths, 'PACKAGE_DIR', str(package))
    monkeypatch.setattr(paths, 'IMPORT_ROOT', str(package.parent))
    assert paths.get_config_path('muscle/cl_r18.py') == str(config)
    with pytest.raises(FileNotFoundError) as e:
        paths.get_tool_path('train.py')
    assert str(package / '.mim' / 'tools' / 'train.py') in str(e.value)
    assert 'pip install -e .' in str(e.value)


@pytest.mark.slow
def test_wheel_carries_configs_and_tools(tmp_path):
    """``pip wheel`` (what ``pip install .`` builds) copies configs/ and
    tools/ into ``muscle_mm/.mim``; built from a copy of the checkout, so
    this one is left as it is."""
    src = tmp_path / 'src'
    files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'],
                           cwd=REPO,
                           check=True,
                           capture_output=True,
                           text=True).stdout.splitlines()
    for rel in files:
        if osp.isfile(osp.join(REPO, rel)):
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes(open(osp.join(REPO, rel), 'rb').read())
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '--no-build-isolation',
        '--no-deps', '-q', '-w',
        str(tmp_path / 'dist'),
        str(src)
    ],
                   check=True,
                   capture_output=True)
    wheel, = (tmp_path / 'dist').glob('muscle_mm-*.whl')
    names = set(zipfile.ZipFile(wheel).namelist())
    assert 'muscle_mm/.mim/configs/muscle/cl_r18.py' in names
    assert 'muscle_mm/.mim/tools/train.py' in names
    assert 'muscle_mm/.mim/tools/dist_train.sh' in names
