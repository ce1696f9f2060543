"""The study runner: stage bookkeeping (skip when done, redo when
interrupted), settings validation, and the report from stage outputs."""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import threading
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
    left, this one included, ``jobs`` at a time) and where its log is."""
    logs = []
    study = MuscleStudy(
        StudySettings(work_dir=str(tmp_path), jobs=1), log=logs.append)
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
    study.s.jobs = 2
    study._run_seconds = [4000., 1000.]
    study._stage('z', lambda stage_dir: {})
    assert ' (run 4 of 4, 1:01:05 elapsed, ETA 20:50); ' in logs[-2]


class TimedStudy(MuscleStudy):
    """The study's scheduling with stages that record when they run (and
    in which job) instead of training."""

    def __init__(self, settings, fail=None):
        super().__init__(settings, log=lambda m: 0)
        self.events, self.fail = [], fail
        self.lock = threading.Lock()

    def _record(self, name):
        with self.lock:
            self.events.append(('start', name, self._local.slot))
        time.sleep(0.05 if name == self.fail else 0.3)
        with self.lock:
            if name == self.fail:
                self.events.append(('fail', name, self._local.slot))
                raise RuntimeError(f'{name} failed')
            self.events.append(('end', name, self._local.slot))

    def audit(self):  # paper scale here: no data to hash
        return {}

    def stage1(self, backbone):
        self._record(f'mdmoco_{backbone}')
        return self.backbone_file(backbone, 'mdmoco')

    def stage2(self, init, backbone, mdmoco):
        assert mdmoco == self.backbone_file(backbone, 'mdmoco')
        self._record(f'{init}_{backbone}')
        return self.backbone_file(backbone, init)

    def stage3(self, task, backbone, init, pretrained):
        self._record(f'finetune/{task}_{backbone}_{init}')
        return dict(metrics={})


def _settings(tmp_path, **kw):
    # paper scale: no demo data to generate before the (recorded) runs
    return StudySettings(
        work_dir=str(tmp_path),
        scale='paper',
        tasks=['pneumonia', 'mura'],
        inits=['scratch', 'mdmoco', 'muscle'],
        **kw)


def _order(events, kind, name):
    return next(i for i, e in enumerate(events) if e[:2] == (kind, name))


def test_jobs_run_at_once_each_after_the_backbone_it_loads(tmp_path):
    study = TimedStudy(_settings(tmp_path, jobs=2))
    results = study._run_all()
    ev = study.events
    assert {i for t in results.values() for i in t['r18']} == {
        'scratch', 'mdmoco', 'muscle'}
    running, most = set(), 0
    for kind, name, slot in ev:
        running = running | {name} if kind == 'start' else running - {name}
        most = max(most, len(running))
    assert most == 2
    assert {slot for _, _, slot in ev} == {0, 1}
    # Scratch needs no backbone: it trains beside MD-MoCo
    assert _order(ev, 'start', 'finetune/pneumonia_r18_scratch') < _order(
        ev, 'end', 'mdmoco_r18')
    for after, before in (('muscle_r18', 'mdmoco_r18'),
                          ('finetune/pneumonia_r18_mdmoco', 'mdmoco_r18'),
                          ('finetune/mura_r18_muscle', 'muscle_r18')):
        assert _order(ev, 'start', after) > _order(ev, 'end', before), after


def test_one_job_runs_the_plan_in_order(tmp_path):
    study = TimedStudy(_settings(tmp_path, jobs=1))
    study._run_all()
    names = [r.name for r in study.plan()]
    assert study.events[0::2] == [('start', n, 0) for n in names]
    assert study.events[1::2] == [('end', n, 0) for n in names]


def test_a_failed_run_lets_the_others_finish_then_stops(tmp_path):
    study = TimedStudy(
        _settings(tmp_path, jobs=2), fail='finetune/pneumonia_r18_scratch')
    with pytest.raises(RuntimeError, match='pneumonia_r18_scratch failed'):
        study._run_all()
    ev = study.events
    failed = _order(ev, 'fail', 'finetune/pneumonia_r18_scratch')
    assert ('end', 'mdmoco_r18', 0) in ev[failed:]  # ran on, not killed
    assert not [e for e in ev[failed:] if e[0] == 'start']


def test_each_job_gets_its_gpus_or_its_share_of_the_cpu(
        tmp_path, monkeypatch):
    import muscle_mm.apis.study as study_module
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.delenv('PORT', raising=False)
    monkeypatch.setattr(study_module, '_visible_gpus', lambda: [])
    study = MuscleStudy(_settings(tmp_path, jobs=2))
    assert study.job_env(1) == dict(
        PORT='29501', OMP_NUM_THREADS=str(max(1, os.cpu_count() // 2)))
    assert MuscleStudy(_settings(tmp_path, jobs=1)).job_env(0) == {}
    monkeypatch.setattr(study_module, '_visible_gpus',
                        lambda: ['0', '1', '2', '3'])
    study = MuscleStudy(_settings(tmp_path, jobs=2, gpus=2))
    assert study.job_env(1) == dict(PORT='29501', CUDA_VISIBLE_DEVICES='2,3')
    with pytest.raises(ValueError, match='3 jobs of 2 GPU.s. need 6 GPUs; '
                       '4 are visible'):
        MuscleStudy(_settings(tmp_path, jobs=3, gpus=2)).job_env(0)


def test_demo_runs_two_jobs_on_two_cores_paper_one(tmp_path):
    demo = StudySettings(work_dir=str(tmp_path))
    assert demo.jobs == min(2, os.cpu_count())
    assert StudySettings(work_dir=str(tmp_path), scale='paper').jobs == 1
    with pytest.raises(ValueError, match='jobs must be at least 1'):
        StudySettings(work_dir=str(tmp_path), jobs=0)


def test_jobs_read_configs_one_at_a_time(tmp_path, monkeypatch):
    """Reading a config can reload ``pkg_resources`` (mmengine's
    ``is_installed``, for ``mmdet::`` bases): two jobs doing it at once
    failed the demo, so the study's jobs enter ``Config.fromfile`` one at
    a time."""
    from mmengine.config import Config
    real, lock, inside, most = Config.fromfile, threading.Lock(), [], [0]

    def fromfile(*args, **kwargs):  # may nest (bases) within one thread
        with lock:
            inside.append(threading.get_ident())
            most[0] = max(most[0], len(set(inside)))
        time.sleep(0.3)  # long enough for the other job to arrive
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                inside.remove(threading.get_ident())

    monkeypatch.setattr(Config, 'fromfile', fromfile)
    study = MuscleStudy(
        StudySettings(work_dir=str(tmp_path), jobs=2,
                      cfg_options=['train_cfg.max_epochs=1']),
        log=lambda m: 0)
    config = study.finetune_config('tbx', 'r18', 'scratch')
    cmds = []
    jobs = [
        threading.Thread(
            target=lambda i=i: cmds.append(
                study.train_command(config, str(tmp_path / str(i)),
                                    ['a=1']))) for i in range(2)
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert most[0] == 1 and len(cmds) == 2
    # the study's own --cfg-options come after each run's
    assert cmds[0][-3:] == ['--cfg-options', 'a=1', 'train_cfg.max_epochs=1']


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
    again, the interrupted stage is redone; a third run skips every stage.

    The child is frozen (SIGSTOP) once it runs, so the kill always lands
    mid-stage; the runs train one epoch (the study's ``--cfg-options``)."""
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'demo').symlink_to(demo_data_root)
    args = ('--demo', '--work-dir', str(tmp_path / 'w'), '--tasks',
            'pneumonia', '--inits', 'scratch', '--cfg-options',
            'train_cfg.max_epochs=1')
    first = run_muscle(tmp_path, *args)
    stage_log = tmp_path / 'w' / 'finetune' / 'pneumonia_r18_scratch' / \
        'stage.log'
    end = time.time() + 600
    while not (stage_log.exists() and _children_of(first.pid)):
        assert first.poll() is None, first.communicate()
        assert time.time() < end, 'the first study never started training'
        time.sleep(0.2)
    child = _children_of(first.pid)[0]
    os.kill(child, signal.SIGSTOP)

    second = run_muscle(tmp_path, *args)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 1, out + err
    assert f'{tmp_path / "w"} is in use by another run' in err
    assert f'"pid": {first.pid}' in err

    first.kill()
    first.communicate(timeout=60)
    # a frozen process keeps the SIGTERM its parent's death sent pending
    # until it is continued; unkilled, it would train on and write a
    # checkpoint
    os.kill(child, signal.SIGCONT)
    end = time.time() + 30
    while _alive(child) and time.time() < end:
        time.sleep(0.2)
    assert not _alive(child), 'tools/train.py outlived the study runner'
    stage = stage_log.parent
    assert not (stage / 'epoch_1.pth').exists()
    assert not (stage / 'stage_done.json').exists()

    # run again: the interrupted stage is redone and marked done ...
    again = run_muscle(tmp_path, *args)
    out, err = again.communicate(timeout=900)
    assert again.returncode == 0, out[-3000:] + err[-3000:]
    assert '[run ] finetune/pneumonia_r18_scratch (run 1 of 1, ' in out
    assert f'log: {stage_log}' in out
    assert '--cfg-options' in out and 'train_cfg.max_epochs=1' in out
    done = json.loads((stage / 'stage_done.json').read_text())
    assert osp.basename(done['outputs']['checkpoint']) == 'epoch_1.pth'
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
    the baselines and the leakage audit's finding beside the tables."""
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
                           demo=True, leakage=study.leakage_info())
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
        # the audit ran with the study: the tables say what it found
        assert 'the leakage audit (threshold ' in table
    assert osp.isfile(written['roc_pneumonia_r18'])


def test_tensorboard_and_amp_reach_every_run(tmp_path, monkeypatch):
    """``run_muscle.py --tensorboard --amp`` sets the study's settings, and
    each run's ``tools/train.py`` command carries both switches."""
    import runpy
    tool = runpy.run_path(osp.join(REPO, 'tools', 'run_muscle.py'))
    monkeypatch.setattr(sys, 'argv', [
        'run_muscle.py', '--tensorboard', '--amp', '--demo', '--work-dir',
        str(tmp_path)
    ])
    study = MuscleStudy(tool['study_settings'](tool['parse_args']()),
                        log=lambda m: 0)
    cmd = study.train_command(
        study.finetune_config('lung', 'r18', 'scratch'), str(tmp_path / 'x'))
    assert cmd[1].endswith('train.py')
    assert '--tensorboard' in cmd and '--amp' in cmd
    plain = MuscleStudy(StudySettings(work_dir=str(tmp_path)), log=lambda m: 0)
    cmd = plain.train_command(
        plain.finetune_config('lung', 'r18', 'scratch'), str(tmp_path / 'x'))
    assert '--tensorboard' not in cmd and '--amp' not in cmd
