# Copyright (c) muscle_mm contributors. All rights reserved.
"""Install muscle_mm. The pinned OpenMMLab stack (and mmcv built with ops) is
installed by ``bash tools/setup_env.sh``; see README.md."""
import os.path as osp
import re

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


setup(
    name='muscle_mm',
    version=get_version(),
    description='MUSCLE: multi-task self-supervised continual learning to '
    'pre-train deep models for X-ray images, on OpenMMLab',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    python_requires='>=3.8',
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={
        'all': parse_requirements('requirements/mminstall.txt') +
        parse_requirements('requirements/optional.txt'),
        'tests': parse_requirements('requirements/tests.txt'),
        'mim': parse_requirements('requirements/mminstall.txt'),
    },
    zip_safe=False)
