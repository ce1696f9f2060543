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


def copy_of_checkout(dst):
    """The checkout's tracked and new files (what a clone would have)."""
    files = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'],
                           cwd=REPO,
                           check=True,
                           capture_output=True,
                           text=True).stdout.splitlines()
    for rel in files:
        if osp.isfile(osp.join(REPO, rel)):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / rel).write_bytes(open(osp.join(REPO, rel), 'rb').read())
    return dst


def fresh_venv(path):
    """A venv on top of the system site-packages (the OpenMMLab stack and
    pip, which installs into the venv); its python."""
    subprocess.run([
        sys.executable, '-m', 'venv', '--system-site-packages',
        '--without-pip',
        str(path)
    ],
                   check=True)
    return str(path / 'bin' / 'python')


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """``pip wheel`` (what ``pip install .`` builds) of a copy of the
    checkout, so the checkout's own ``muscle_mm/.mim`` links are left as
    they are (a build in place would replace them by copies)."""
    tmp_path = tmp_path_factory.mktemp('wheel')
    src = copy_of_checkout(tmp_path / 'src')
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '--no-build-isolation',
        '--no-deps', '-q', '-w',
        str(tmp_path / 'dist'),
        str(src)
    ],
                   check=True,
                   capture_output=True)
    wheel, = (tmp_path / 'dist').glob('muscle_mm-*.whl')
    return wheel


@pytest.mark.slow
def test_wheel_carries_configs_and_tools(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert 'muscle_mm/.mim/configs/muscle/cl_r18.py' in names
    assert 'muscle_mm/.mim/tools/train.py' in names
    assert 'muscle_mm/.mim/tools/dist_train.sh' in names
    assert 'muscle_mm/.mim/model-index.yml' in names  # read for muscle_mm::


MY_CONFIG = """\
# a third party's config: muscle_mm's runtime, its own toy model
_base_ = ['muscle_mm::_base_/default_runtime.py']
custom_imports = dict(imports=['toy_modules'], allow_failed_imports=False)
model = dict(type='ToyRegressor', dim=8)
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ToyRegressionDataset', num_samples=32, dim=8))
train_cfg = dict(by_epoch=True, max_epochs=1)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05))
custom_hooks = [dict(type='DumpWeightsHook')]
"""


@pytest.mark.slow
def test_non_editable_install_works_outside_the_checkout(wheel, tmp_path):
    """``pip install .`` into a fresh venv, used from a folder that is not
    the checkout: the package is the venv's copy (not the editable one of
    the system site-packages), the study plans with the venv's configs and
    tools, and the installed ``tools/train.py`` trains a config that
    inherits ``muscle_mm::``."""
    venv = tmp_path / 'venv'
    python = fresh_venv(venv)
    subprocess.run([
        python, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation',
        '-q',
        str(wheel)
    ],
                   check=True,
                   capture_output=True)
    work = tmp_path / 'elsewhere'
    work.mkdir()
    (work / 'toy_modules.py').write_text(
        open(osp.join(REPO, 'tests/data/toy_modules.py')).read())
    (work / 'my_config.py').write_text(MY_CONFIG)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env['PYTHONPATH'] = str(work)  # the toy modules only, no checkout

    def run(*args):
        proc = subprocess.run([python, *args],
                              cwd=str(work),
                              env=env,
                              capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        return proc.stdout.splitlines()

    site = run('-c', 'import muscle_mm, sysconfig; '
               'print(muscle_mm.__file__); '
               "print(sysconfig.get_paths()['purelib'])")
    assert site[0].startswith(site[1]) and site[1].startswith(str(venv))
    package = osp.dirname(site[0])
    plan = run(
        '-c', 'from muscle_mm.apis import MuscleStudy, StudySettings\n'
        "s = MuscleStudy(StudySettings(work_dir='w', tasks=['lung']))\n"
        'print(*[r.config for r in s.plan()], sep="\\n")\n'
        "print(s.tool('train.py'))")
    assert plan and all(
        p.startswith(osp.join(package, '.mim', '')) and osp.isfile(p)
        for p in plan)
    train = plan[-1]
    run(train, 'my_config.py', '--work-dir', 'work_dirs/mine')
    assert (work / 'work_dirs' / 'mine' / 'weights_rank0.pth').is_file()
    assert (work / 'work_dirs' / 'mine' / 'epoch_1.pth').is_file()
    # every installed tool starts (imports, finds what it reads, parses)
    sweep = run('-c', TOOL_SWEEP, osp.dirname(train))
    assert sweep[-1] == 'failed: []', sweep[-5:]
    assert int(sweep[-2].split()[0]) >= 14, sweep[-2]


TOOL_SWEEP = '''
import glob, io, os, runpy, sys, contextlib
tools = sorted(glob.glob(os.path.join(sys.argv[1], '**', '*.py'),
                         recursive=True))
failed = []
for tool in tools:
    sys.argv = [tool, '--help']
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(tool, run_name='__main__')
    except SystemExit as e:
        if e.code not in (0, None):
            failed.append((tool, e.code))
    except Exception as e:
        failed.append((tool, repr(e)))
print(len(tools), 'tools')
print('failed:', failed)
'''


@pytest.mark.slow
def test_editable_install_resolves_muscle_mm_configs(tmp_path):
    """``pip install -e .`` (PEP 660: the distribution's location is the
    venv, not the checkout) still reads ``muscle_mm::`` from the checkout's
    ``.mim`` links, which setup.py makes."""
    src = copy_of_checkout(tmp_path / 'src')
    python = fresh_venv(tmp_path / 'venv')
    subprocess.run([
        python, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation',
        '-q', '-e',
        str(src)
    ],
                   check=True,
                   capture_output=True)
    assert (src / 'muscle_mm' / '.mim' / 'model-index.yml').is_symlink()
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'my_cl.py').write_text("_base_ = ['muscle_mm::muscle/cl_r18.py']\n")
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    out = subprocess.run([
        python, '-c', 'import muscle_mm.utils\n'
        'from mmengine.config import Config\n'
        'print(muscle_mm.__file__)\n'
        "print(Config.fromfile('my_cl.py').model.tasks.lung)"
    ],
                         cwd=str(run),
                         env=env,
                         check=True,
                         capture_output=True,
                         text=True).stdout.split()
    assert out[0] == str(src / 'muscle_mm' / '__init__.py')
    assert out[1] == str(src / 'muscle_mm' / '.mim' / 'configs' / '_base_' /
                         'models' / 'tasks' / 'lung_deeplabv3_r18.py')
