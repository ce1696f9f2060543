# Copyright (c) muscle_mm contributors. All rights reserved.
"""``projects/example_task``: a third party's fifth task (bone age), its
config inheriting ``muscle_mm::``, trained by the CL loop through
``tools/train.py`` from a folder that is not the checkout."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from muscle_mm.apis import get_tool_path
from muscle_mm.testing import generate_demo_data

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / 'projects' / 'example_task'
CONFIG = 'configs/cl_r18_boneage_demo.py'


def scalars(work_dir: Path) -> list:
    path, = work_dir.glob('*/vis_data/scalars.json')
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_fifth_task_trains_with_the_cl_loop_outside_the_checkout(tmp_path):
    # the project where a third party has it: not in the checkout
    project = tmp_path / 'example_task'
    shutil.copytree(
        PROJECT, project, ignore=shutil.ignore_patterns('__pycache__'))
    run = tmp_path / 'run'
    demo = run / 'data' / 'demo'
    generate_demo_data(str(demo), datasets=['rsna_boneage'])
    generate_demo_data(str(demo), datasets=['pneumonia'], scale=0.2)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [str(project), str(REPO),
             os.environ.get('PYTHONPATH', '')]))
    subprocess.run([
        sys.executable,
        get_tool_path('dataset_converters/make_splits.py'), '--data-root',
        'data/demo', '--datasets', 'pneumonia', '--proportions', '40', '30',
        '30'
    ],
                   cwd=run,
                   env=env,
                   check=True,
                   capture_output=True)
    # the new task and one of muscle_mm's, 2 rounds, logged every iteration
    proc = subprocess.run([
        sys.executable,
        get_tool_path('train.py'),
        str(project / CONFIG), '--work-dir', 'work', '--cfg-options',
        'model.backbone.init_cfg=None', 'train_cfg.tasks=[pneumonia,boneage]',
        'val_cfg.tasks=[pneumonia,boneage]',
        'train_cfg.loader_overrides.num_workers=0',
        'train_cfg.loader_overrides.persistent_workers=False',
        'default_hooks.logger.interval=1'
    ],
                          cwd=run,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    work = run / 'work'
    # the new task's loss, logged under its name in both of its iterates
    # (2 rounds of a few steps from random weights: too few to learn ages,
    # so no claim that it falls)
    losses = [s['boneage.loss_age'] for s in scalars(work)
              if 'boneage.loss_age' in s]
    assert len(losses) >= 4 and all(0 < v < 10 for v in losses), losses
    matrix = json.loads((work / 'cl_accuracy_matrix.json').read_text())
    assert matrix['tasks'] == ['pneumonia', 'boneage']
    assert matrix['lower_is_better'] == ['boneage']
    boneage = matrix['matrix'][matrix['tasks'].index('boneage')]
    assert boneage and all(v is not None and v > 0 for v in boneage)
    maes = [s['boneage/mae'] for s in scalars(work) if 'boneage/mae' in s]
    assert maes == pytest.approx(boneage)
