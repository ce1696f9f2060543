"""The study runner: stage bookkeeping (skip when done, redo when
interrupted), settings validation, and the report from stage outputs."""
import json
import os
import os.path as osp
import subprocess
import sys
import time
from pathlib import Path

import pytest

from muscle_mm.apis import MuscleStudy, StudySettings

REPO = str(Path(__file__).resolve().parents[2])


def test_settings_reject_unknown_names(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown task\(s\) \['brain'\]"):
        StudySettings(work_dir=str(tmp_path), tasks=['pneumonia', 'brain'])
    with pytest.raises(ValueError, match='scale'):
        StudySettings(work_dir=str(tmp_path), scale='huge')


def test_imagenet_without_weights_is_skipped_not_downloaded(tmp_path):
    logs = []
    study = MuscleStudy(
        StudySettings(work_dir=str(tmp_path)), log=logs.append)
    assert study.stage3('pneumonia', 'r18', 'imagenet', None) is None
    assert any('no local ImageNet weights given' in m for m in logs)


def test_progress_names_the_run_its_log_elapsed_and_eta(tmp_path):
    """Each run says where it stands among the study's runs, how long the
    study has run, when it should end (the mean run so far times the runs
    left, this one included) and where its log is."""
    logs = []
    study = MuscleStudy(
        StudySettings(work_dir=str(tmp_path)), log=logs.append)
    study._started = time.time() - 65
    study._progress = (2, 4)
    study._run_seconds = [30.]
    study._stage('finetune/x', lambda stage_dir: {})
    assert logs[0] == ('[run ] finetune/x (run 2 of 4, 1:05 elapsed, ETA '
                       f'1:30); log: {tmp_path}/finetune/x/stage.log')
    assert len(study._run_seconds) == 2
    study._started -= 3600
    study._progress = (4, 4)
    study._run_seconds = [4000., 1000.]
    study._stage('y', lambda stage_dir: {})
    assert ' (run 4 of 4, 1:01:05 elapsed, ETA 41:40); ' in logs[-2]


def run_muscle(cwd, *args, **popen):
    cmd = [sys.executable, osp.join(REPO, 'tools', 'run_muscle.py'), *args]
    return subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, **popen)


def test_a_missing_imagenet_file_stops_the_study(tmp_path):
    """``--imagenet r18=/missing.pth`` stops before anything trains, naming
    the file (it used to skip the row and exit 0)."""
    missing = tmp_path / 'nowhere' / 'resnet18.pth'
    proc = run_muscle(tmp_path, '--demo', '--work-dir', str(tmp_path / 'w'),
                      '--tasks', 'pneumonia', '--inits', 'scratch',
                      'imagenet', '--imagenet', f'r18={missing}')
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, out + err
    assert f'ImageNet weights for r18 not found at {missing}' in err
    assert 'Traceback' not in err
    assert not (tmp_path / 'w' / 'finetune').exists()
    assert not (tmp_path / 'data').exists()  # not even the demo data


def _children_of(pid):
    kids = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    fields = f.read().rsplit(') ', 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid and fields[0] != 'Z':
                kids.append(int(entry))
    return kids


def _alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(') ', 1)[1][0] != 'Z'
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='/proc')
def test_second_study_stops_children_die_and_a_rerun_resumes(
        tmp_path, demo_data_root):
    """Two studies on one work dir: the second stops at once, naming the
    first; killing the first (SIGKILL: no clean-up code runs) also ends its
    ``tools/train.py`` child, which would go on writing into the stage. Run
    again, the interrupted stage is redone; a third run skips every stage."""
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'demo').symlink_to(demo_data_root)
    args = ('--demo', '--work-dir', str(tmp_path / 'w'), '--tasks',
            'pneumonia', '--inits', 'scratch')
    first = run_muscle(tmp_path, *args)
    stage_log = tmp_path / 'w' / 'finetune' / 'pneumonia_r18_scratch' / \
        'stage.log'
    end = time.time() + 600
    while not (stage_log.exists() and _children_of(first.pid)):
        assert first.poll() is None, first.communicate()
        assert time.time() < end, 'the first study never started training'
        time.sleep(0.2)
    child = _children_of(first.pid)[0]

    second = run_muscle(tmp_path, *args)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 1, out + err
    assert f'{tmp_path / "w"} is in use by another run' in err
    assert f'"pid": {first.pid}' in err

    first.kill()
    first.communicate(timeout=60)
    end = time.time() + 30
    while _alive(child) and time.time() < end:
        time.sleep(0.2)
    assert not _alive(child), 'tools/train.py outlived the study runner'
    stage = stage_log.parent
    assert not (stage / 'stage_done.json').exists()

    # run again: the interrupted stage is redone and marked done ...
    again = run_muscle(tmp_path, *args)
    out, err = again.communicate(timeout=900)
    assert again.returncode == 0, out[-3000:] + err[-3000:]
    assert '[run ] finetune/pneumonia_r18_scratch (run 1 of 1, ' in out
    assert f'log: {stage_log}' in out
    done = json.loads((stage / 'stage_done.json').read_text())
    assert osp.isfile(done['outputs']['checkpoint'])
    # ... and a finished study skips every stage, training nothing
    third = run_muscle(tmp_path, *args)
    out, err = third.communicate(timeout=900)
    assert third.returncode == 0, out[-3000:] + err[-3000:]
    assert '[skip] finetune/pneumonia_r18_scratch: done' in out
    assert '[run ]' not in out
    assert json.loads((stage / 'stage_done.json').read_text()) == done


@pytest.mark.slow
def test_demo_study_beats_trivial_baselines(tmp_path):
    """Data, fine-tune + test of every task from Scratch, and the report:
    each model beats its test split's trivial baseline by more than its CI
    (issue 13), TB detection finds lesions (mAP > 0), and the report prints
    the baselines beside the tables."""
    from muscle_mm.evaluation.baselines import baseline_failures
    from muscle_mm.apis import build_report
    from muscle_mm.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    study = MuscleStudy(
        StudySettings(work_dir=str(tmp_path), inits=['scratch']),
        log=lambda m: 0)
    results = study.run()
    metrics = {t: results[t]['r18']['scratch']['metrics']
               for t in ('pneumonia', 'mura', 'lung', 'tbx')}
    for task in ('pneumonia', 'mura'):
        m = metrics[task]
        for key in ('accuracy', 'sensitivity', 'specificity', 'auc'):
            assert 0 <= m[f'binary/{key}'] <= 100
        # both classes in the test split, and an AUC CI under 20 points
        assert m['binary/auc_ci_high'] - m['binary/auc_ci_low'] < 20, m
        # neither at ceiling nor at floor after the demo's budget
        assert 60 < m['binary/auc'] < 100, (task, m)
    assert metrics['tbx']['tbx/mAP'] > 0, metrics['tbx']
    roc = json.loads((tmp_path / 'finetune' / 'pneumonia_r18_scratch' /
                      'roc.json').read_text())
    assert roc['fpr'][0] == 0 and roc['tpr'][-1] == 1

    written = build_report(str(tmp_path), results, log=lambda m: 0,
                           demo=True)
    baselines = json.loads(
        (tmp_path / 'report' / 'baselines.json').read_text())
    for task, m in metrics.items():
        assert baseline_failures(task, m, baselines[task]) == [], task
    n = baselines['pneumonia']
    assert n['num_positive'] > 0 and n['num_negative'] > 0
    table2 = (tmp_path / 'report' / 'table2.md').read_text()
    table3 = (tmp_path / 'report' / 'table3.md').read_text()
    assert '| Pneumonia | ResNet-18 | Trivial baseline |' in table2
    assert '|  |  | Scratch |' in table2
    assert '| ResNet-18 | Trivial baseline | 0.00 |' in table3
    for table in (table2, table3):
        assert 'NOT beaten' not in table
        assert 'every model beats it' in table
        assert 'not the paper\'s claim' in table
    assert osp.isfile(written['roc_pneumonia_r18'])
