# Copyright (c) muscle_mm contributors. All rights reserved.
"""Install muscle_mm. The pinned OpenMMLab stack (and mmcv built with ops) is
installed by ``bash tools/setup_env.sh``; see README.md."""
import os
import os.path as osp
import platform
import re
import shutil
import sys
import warnings

from setuptools import find_packages, setup


def get_version() -> str:
    with open(osp.join('muscle_mm', 'version.py')) as f:
        return re.search(r"__version__ = '(.+)'", f.read()).group(1)


def parse_requirements(fname: str) -> list:
    """Read a requirements file, following ``-r`` includes."""
    reqs = []
    with open(fname) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                reqs += parse_requirements(
                    osp.join(osp.dirname(fname), line.split()[1]))
            else:
                reqs.append(line)
    return reqs


def add_mim_extension() -> None:
    """Put ``configs/`` and ``tools/`` into ``muscle_mm/.mim``, as mmpretrain
    does, so an installed package finds them (``muscle_mm.apis.paths``).

    Symlinks for an editable install (``pip install -e .``), copies when a
    wheel or sdist is built (``pip install .``).
    """
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'copy' if platform.system() == 'Windows' else 'symlink'
    elif 'sdist' in sys.argv or 'bdist_wheel' in sys.argv:
        mode = 'copy'
    else:
        return
    repo_path = osp.dirname(osp.abspath(__file__))
    mim_path = osp.join(repo_path, 'muscle_mm', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    # model-index.yml: mmengine reads it first for `muscle_mm::` configs
    for name in ('configs', 'tools', 'model-index.yml'):
        src_path = osp.join(repo_path, name)
        tar_path = osp.join(mim_path, name)
        if osp.isfile(tar_path) or osp.islink(tar_path):
            os.remove(tar_path)
        elif osp.isdir(tar_path):
            shutil.rmtree(tar_path)
        if mode == 'symlink':
            try:
                os.symlink(osp.relpath(src_path, mim_path), tar_path)
                continue
            except OSError:
                warnings.warn(f'Cannot link {tar_path}; copying {src_path}')
        if osp.isfile(src_path):
            shutil.copyfile(src_path, tar_path)
        else:
            shutil.copytree(
                src_path,
                tar_path,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


add_mim_extension()
setup(
    name='muscle_mm',
    version=get_version(),
    description='MUSCLE: multi-task self-supervised continual learning to '
    'pre-train deep models for X-ray images, on OpenMMLab',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    include_package_data=True,  # muscle_mm/.mim (MANIFEST.in)
    python_requires='>=3.8',
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={
        'all': parse_requirements('requirements/mminstall.txt') +
        parse_requirements('requirements/optional.txt'),
        'tests': parse_requirements('requirements/tests.txt'),
        'mim': parse_requirements('requirements/mminstall.txt'),
    },
    zip_safe=False)
