# Copyright (c) muscle_mm contributors. All rights reserved.
"""The whole MUSCLE study as resumable stages (``tools/run_muscle.py``).

Stage 1 (MD-MoCo) -> stage 2 (MUSCLE and MUSCLE--) -> stage 3 (fine-tune every
task from every initialisation, then test) -> report (Tables 2/3, ROC curves,
segmentation overlays, forgetting matrix). Each stage runs the ordinary
``tools/train.py`` / ``tools/test.py`` in a subprocess, in its own folder
under one work dir, and is marked done by ``stage_done.json`` (written
atomically, last). A finished stage is skipped; an interrupted one is started
again with ``--resume`` and continues from its last checkpoint.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from muscle_mm.metainfo import (CLS_TASKS, INIT_NAMES, INITS, PROTOCOL_ENV,
                                PROTOCOLS, STAGE_BACKBONES, STAGE_CONFIGS,
                                TASKS)
from muscle_mm.utils.fileio import atomic_write
from muscle_mm.utils.process import (FolderLock, end_process_group,
                                     run_logged)
from .paths import IMPORT_ROOT, get_config_path, get_tool_path

# mmengine resolves ``mmdet::``-style bases with ``is_installed``, which
# reloads ``pkg_resources``: two jobs reading configs at once then fail
# ("'DistInfoDistribution' object is not iterable"), so they take turns.
_CONFIG_LOCK = threading.Lock()


def load_config(path: str):
    """``Config.fromfile`` of ``path``, one thread at a time."""
    from mmengine.config import Config
    with _CONFIG_LOCK:
        return Config.fromfile(path)


LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


@dataclass
class PlannedRun:
    """One training run of the study, as :meth:`MuscleStudy.plan` lists it.

    Args:
        name: Its folder under the work dir, e.g. ``finetune/lung_r18_muscle``.
        stage: 1 (MD-MoCo), 2 (MUSCLE / MUSCLE--) or 3 (fine-tune + test).
        config: Its config file.
        backbone: ``'r18'`` or ``'r50'``.
        init: The initialisation it loads (``'mdmoco'``, ``'imagenet'``...),
            None for stage 1 and Scratch.
        init_file: The file it loads, None when none (or none was given).
        task: The fine-tuned task (stage 3).
        output: The backbone file it writes (stages 1 and 2).
    """
    name: str
    stage: int
    config: str
    backbone: str
    init: Optional[str] = None
    init_file: Optional[str] = None
    task: Optional[str] = None
    output: Optional[str] = None


def default_work_dir(scale: str, protocol: str = 'paper') -> str:
    """The study's work dir unless ``--work-dir`` is given; the configs'
    default backbone files lie below it (relative to the working dir). The
    official protocol gets its own (``muscle_<scale>_official``), so that
    its results never mix with the paper's."""
    suffix = '' if protocol == 'paper' else f'_{protocol}'
    return osp.join('work_dirs', f'muscle_{scale}{suffix}')


@dataclass
class StudySettings:
    """What to run and where.

    Args:
        work_dir: Everything is written under this folder.
        scale: ``'demo'`` (data/demo, minutes on a CPU) or ``'paper'``.
        backbones: ``'r18'`` and/or ``'r50'``.
        tasks: Subset of :data:`muscle_mm.metainfo.TASKS`.
        inits: Subset of :data:`muscle_mm.metainfo.INITS`.
        imagenet: ``{backbone: path}`` of local ImageNet weights; an init
            without weights is reported as skipped, never downloaded.
        gpus: Processes per run (``tools/dist_train.sh`` when > 1); each
            run's LR is scaled from its config's ``auto_scale_lr``.
        amp: Train with ``--amp`` (mixed precision).
        jobs: Runs at a time (default: 2 on a CPU with 2+ cores at demo
            scale, else 1). A run starts once the backbone it loads is
            written; each job gets its own ``gpus`` GPUs (``jobs * gpus``
            must be visible) or an equal share of the CPU threads.
        tensorboard: Train with ``--tensorboard`` (TensorBoard event files
            beside each run's log).
        cfg_options: ``KEY=VALUE`` overrides given to every run's config
            (``tools/train.py --cfg-options``), e.g. a shorter schedule for
            a smoke test; stages already done are not redone.
        protocol: ``'paper'`` (the paper's re-splits, Tables 2/3) or
            ``'official'`` (each release's own train/test, val carved from
            train: ``make_splits.py --protocol official``). Every run of
            every stage reads that protocol's splits (stages 1 and 2 train
            on the tasks' train splits too); stage 3 has it in its
            ``--cfg-options``. A work dir holds one protocol only.
        exclude_leaks: Pre-train on the union less the stage-1 images
            that the leakage audit finds in a task's val/test split
            (``mdmoco_*_noleak`` configs). Off: the paper's union. The
            audit (``tools/misc/audit_overlap.py``, of this protocol's
            splits, into ``<work_dir>/audit``) runs either way, after the
            data stage, so the report states the leakage of every study.
            Its hashes are cached beside the work dir
            (:attr:`MuscleStudy.audit_cache_dir`), shared by the studies
            there: each variant hashes only images no other one did.

    The configs read the datasets from ``data/`` (paper scale) and
    ``data/demo/`` (demo) below the current directory, as OpenMMLab configs do;
    link the releases there if they live elsewhere.
    """
    work_dir: str
    scale: str = 'demo'
    backbones: Sequence[str] = ('r18', )
    tasks: Sequence[str] = TASKS
    inits: Sequence[str] = INITS
    imagenet: Dict[str, str] = field(default_factory=dict)
    gpus: int = 1
    amp: bool = False
    jobs: Optional[int] = None
    tensorboard: bool = False
    cfg_options: Sequence[str] = ()
    protocol: str = 'paper'
    exclude_leaks: bool = False

    def __post_init__(self):
        if self.jobs is None:
            self.jobs = min(2, os.cpu_count() or 1) \
                if self.scale == 'demo' else 1
        if self.jobs < 1:
            raise ValueError(f'jobs must be at least 1, got {self.jobs}')
        if self.protocol not in PROTOCOLS:
            raise ValueError(f'protocol must be one of {PROTOCOLS}, got '
                             f'{self.protocol!r}')
        if self.scale not in ('demo', 'paper'):
            raise ValueError(f"scale must be 'demo' or 'paper', got "
                             f"'{self.scale}'")
        for name, given, allowed in (('task', self.tasks, TASKS),
                                     ('init', self.inits, INITS),
                                     ('backbone', self.backbones,
                                      ('r18', 'r50'))):
            unknown = sorted(set(given) - set(allowed))
            if unknown:
                raise ValueError(f'Unknown {name}(s) {unknown}; expected '
                                 f'some of {list(allowed)}')


def _clock(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss``) of a duration."""
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return (f'{hours}:{minutes:02d}:{sec:02d}'
            if hours else f'{minutes}:{sec:02d}')


class MuscleStudy:
    """Run the three stages of MUSCLE and write the paper's report."""

    def __init__(self, settings: StudySettings, log=print) -> None:
        self.s = settings
        self.log = log
        self.work_dir = osp.abspath(settings.work_dir)
        self._started = time.time()
        self._run_seconds: List[float] = []  # of the runs done this time
        # per job thread: `progress` (this run, runs in all), `slot`
        self._local = threading.local()
        self._children: Dict[int, subprocess.Popen] = {}

    # ------------------------------------------------------------ configs
    @property
    def data_root(self) -> str:
        """Where the configs of this scale read the datasets (``data/`` or
        ``data/demo/`` of the current directory)."""
        return osp.abspath('data/demo' if self.s.scale == 'demo' else 'data')

    def backbone_file(self, backbone: str, init: str) -> str:
        """Where the study keeps the backbone of a stage: the default
        ``init_cfg.checkpoint`` of the configs (for the default work dir)."""
        return osp.join(self.work_dir, 'backbones', f'{backbone}_{init}.pth')

    def stage_config(self, name: str) -> str:
        """Config of stage 1 (``mdmoco_r18``) or 2 (``cl_r18``, ...)."""
        if self.s.scale == 'demo':
            return get_config_path(f'muscle/demo/{name}_demo.py')
        return get_config_path(f'muscle/{name}.py')

    def finetune_config(self, task: str, backbone: str, init: str) -> str:
        name = f'{task}_{backbone}_{init}'
        if self.s.scale == 'demo':
            name = f'demo/{name}_demo'
        return get_config_path(f'muscle/finetune/{name}.py')

    @staticmethod
    def init_options(checkpoint: Optional[str]) -> List[str]:
        """``--cfg-options`` that point a config's backbone at a file."""
        if checkpoint is None:
            return []
        return [f'model.backbone.init_cfg.checkpoint={checkpoint}']

    def train_command(self, config: str, work_dir: str,
                      cfg_options: Sequence[str] = (),
                      test_out: Optional[str] = None) -> List[str]:
        """The ``tools/train.py`` (or ``dist_train.sh``) command of a run,
        with ``--auto-scale-lr`` when ``gpus`` is not the config's base and,
        given ``test_out``, a test of the final model into that json file."""
        from muscle_mm.engine.runner.lr_scaling import describe, lr_scaling
        lr, ratio = lr_scaling(load_config(config), self.s.gpus)
        self.log(f'  LR {describe(lr, ratio)} on {self.s.gpus} process(es)')
        if self.s.gpus > 1:
            cmd = ['bash', self.tool('dist_train.sh'), config,
                   str(self.s.gpus)]
        else:
            cmd = [sys.executable, self.tool('train.py'), config]
        cmd += ['--work-dir', work_dir, '--resume']
        if self.s.amp:
            cmd.append('--amp')
        if self.s.tensorboard:
            cmd.append('--tensorboard')
        if ratio != 1:
            cmd.append('--auto-scale-lr')
        if test_out is not None:
            cmd += ['--test-last', '--test-out', test_out]
        cfg_options = [*cfg_options, *self.s.cfg_options]
        if cfg_options:
            cmd += ['--cfg-options', *cfg_options]
        return cmd

    # ------------------------------------------------------------ running
    @staticmethod
    def tool(name: str) -> str:
        """Path of a script under ``tools/`` (checkout or package)."""
        return get_tool_path(name)

    def _run(self, cmd: List[str], log_file: str) -> None:
        """Run ``cmd`` in the current directory (the configs' relative
        ``data/`` and ``work_dirs/`` paths are read from it), importing
        this very ``muscle_mm``."""
        env = dict(os.environ,
                   **self.job_env(getattr(self._local, 'slot', 0)))
        # every reader of every stage reads this protocol's splits (stage
        # 2 loads its task configs by path, out of --cfg-options' reach)
        env[PROTOCOL_ENV] = self.s.protocol
        env['PYTHONPATH'] = IMPORT_ROOT + os.pathsep + env.get(
            'PYTHONPATH', '')
        self.log('  $ ' + ' '.join(cmd))
        returncode = run_logged(  # dies with the study
            cmd, log_file, env, on_start=self._track_child)
        if returncode != 0:
            with open(log_file) as f:
                tail = ''.join(f.readlines()[-40:])
            raise RuntimeError(f'Command failed ({returncode}): '
                               f'{" ".join(cmd)}\nlog: {log_file}\n{tail}')

    def job_env(self, slot: int) -> Dict[str, str]:
        """Environment of the runs of job ``slot`` when ``jobs > 1``: its
        own GPUs (``CUDA_VISIBLE_DEVICES``) and ``dist_train.sh`` port where
        GPUs are visible, else its share of the CPU threads."""
        jobs, gpus = self.s.jobs, self.s.gpus
        if jobs == 1:
            return {}
        env = dict(PORT=str(int(os.environ.get('PORT', 29500)) + slot))
        visible = _visible_gpus()
        if visible:
            if jobs * gpus > len(visible):
                raise ValueError(
                    f'{jobs} jobs of {gpus} GPU(s) need {jobs * gpus} GPUs; '
                    f'{len(visible)} are visible ({",".join(visible)}). '
                    'Lower --jobs or --gpus.')
            env['CUDA_VISIBLE_DEVICES'] = ','.join(
                visible[slot * gpus:(slot + 1) * gpus])
        elif 'OMP_NUM_THREADS' not in os.environ:
            env['OMP_NUM_THREADS'] = str(max(1, (os.cpu_count() or 1) // jobs))
        return env

    def _track_child(self, proc: subprocess.Popen) -> None:
        self._children[proc.pid] = proc

    def _train(self,
               config: str,
               work_dir: str,
               cfg_options: Sequence[str] = (),
               test_out: Optional[str] = None) -> str:
        """Train (resuming if interrupted), test the final model when
        ``test_out`` is given, and return the last checkpoint."""
        self._run(
            self.train_command(config, work_dir, cfg_options, test_out),
            osp.join(work_dir, 'stage.log'))
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            return f.read().strip()

    def _export(self, checkpoint: str, backbone: str, init: str) -> str:
        from muscle_mm.utils.checkpoint import export_backbone
        out = self.backbone_file(backbone, init)
        os.makedirs(osp.dirname(out), exist_ok=True)
        export_backbone(checkpoint, out)
        return out

    def _stage(self, name: str, body) -> dict:
        """Run ``body(stage_dir) -> outputs`` once; skip it when done (with
        this protocol: a stage done with another one is an error)."""
        stage_dir = osp.join(self.work_dir, name)
        marker = osp.join(stage_dir, 'stage_done.json')
        if osp.isfile(marker):
            with open(marker) as f:
                done = json.load(f)
            found = done.get('protocol', 'paper')
            if found != self.s.protocol:
                raise ValueError(
                    f'{stage_dir} was run with the {found} protocol, not '
                    f'{self.s.protocol}; results of the two must not mix. '
                    'Use another --work-dir (the default is one per '
                    'protocol).')
            self.log(f'[skip] {name}: done ({marker})')
            return done['outputs']
        os.makedirs(stage_dir, exist_ok=True)
        self.log(f'[run ] {name}{self._progress_note()}; log: '
                 f'{osp.join(stage_dir, "stage.log")}')
        start = time.time()
        outputs = body(stage_dir)
        seconds = time.time() - start
        self._run_seconds.append(seconds)
        atomic_write(
            json.dumps(
                dict(
                    outputs=outputs,
                    seconds=round(seconds, 1),
                    protocol=self.s.protocol),
                indent=2),
            marker)
        self.log(f'[done] {name} in {seconds:.0f} s')
        return outputs

    @property
    def _progress(self) -> Optional[tuple]:
        """(this run, runs in all) of the calling job, None outside
        :meth:`run`."""
        return getattr(self._local, 'progress', None)

    @_progress.setter
    def _progress(self, value: Optional[tuple]) -> None:
        self._local.progress = value

    def _progress_note(self) -> str:
        """`` (run k of N, 12:03 elapsed, ETA 40:10)``: the ETA assumes the
        runs left take as long as the mean run done so far, ``jobs`` at a
        time."""
        if self._progress is None:
            return ''
        k, n = self._progress
        note = f' (run {k} of {n}, {_clock(time.time() - self._started)} ' \
            'elapsed'
        if self._run_seconds:
            mean = sum(self._run_seconds) / len(self._run_seconds)
            note += f', ETA {_clock(mean * (n - k + 1) / self.s.jobs)}'
        return note + ')'

    # ------------------------------------------------------------- stages
    def prepare_data(self) -> None:
        """Demo scale: write the demo datasets and their split files."""
        if self.s.scale != 'demo':
            return

        def body(stage_dir):
            from muscle_mm.testing import (DEMO_SPLIT_PROPORTIONS,
                                           generate_demo_data)
            root = self.data_root
            counts = generate_demo_data(root)
            self._run([
                sys.executable,
                self.tool('dataset_converters/make_splits.py'), '--data-root',
                root, '--proportions',
                *(str(DEMO_SPLIT_PROPORTIONS[s])
                  for s in ('train', 'val', 'test')), '--protocol',
                self.s.protocol
            ], osp.join(stage_dir, 'stage.log'))
            return dict(
                data_root=root, images=counts, protocol=self.s.protocol)

        # the demo data folder is shared by every work dir of this checkout
        with FolderLock(self.data_root), FolderLock(self.work_dir):
            self._stage('data', body)

    def stage1_config(self, backbone: str) -> str:
        """The MD-MoCo config: the paper's, or its ``_noleak`` variant."""
        name = f'{STAGE_CONFIGS["mdmoco"]}_{backbone}'
        return self.stage_config(name +
                                 ('_noleak' if self.s.exclude_leaks else ''))

    @property
    def audit_cache_dir(self) -> str:
        """The audit's hash cache: ``.audit_cache`` beside the work dir, so
        the studies there (paper and official protocol, with and without
        ``--exclude-leaks``) decode each image once. Entries are keyed by
        absolute path, size and mtime, not by split or protocol."""
        return osp.join(osp.dirname(self.work_dir), '.audit_cache')

    def audit(self) -> dict:
        """The leakage audit of this protocol's splits
        (``tools/misc/audit_overlap.py``) into ``<work_dir>/audit``: its
        summary and exclusion list."""

        def body(stage_dir):
            self._run([
                sys.executable,
                self.tool('misc/audit_overlap.py'), '--data-root',
                self.data_root, '--work-dir', stage_dir, '--cache-dir',
                self.audit_cache_dir, '--protocol', self.s.protocol
            ], osp.join(stage_dir, 'stage.log'))
            return dict(
                summary=osp.join(stage_dir, 'audit_summary.json'),
                exclude_file=osp.join(stage_dir, 'stage1_exclude.txt'))

        outputs = self._stage('audit', body)
        self.audit_summary()  # of another protocol: stop before stage 1
        return outputs

    def audit_summary(self) -> Optional[dict]:
        """``<work_dir>/audit/audit_summary.json``, None if the audit has
        not run; an audit of the other protocol (its val/test splits, hence
        its leaks, differ) is an error naming the file."""
        path = osp.join(self.work_dir, 'audit', 'audit_summary.json')
        if not osp.isfile(path):
            return None
        with open(path) as f:
            summary = json.load(f)
        found = summary.get('protocol', 'paper')  # as _stage reads markers
        if found != self.s.protocol:
            raise ValueError(
                f'{path} audits the {found} protocol\'s splits, not '
                f'{self.s.protocol}: its leaks are not this study\'s. '
                f'Delete {osp.dirname(path)} to audit again (the hashes '
                f'stay cached in {self.audit_cache_dir}).')
        return summary

    def leakage_info(self) -> dict:
        """What the report says of leakage: whether stage 1 left the
        audit's images out, and the audit's figures if it ran (of this
        study's protocol, :meth:`audit_summary`)."""
        info = dict(exclude_leaks=self.s.exclude_leaks, audit=None)
        summary = self.audit_summary()
        if summary is not None:
            info['audit'] = dict(
                protocol=self.s.protocol,
                **{
                    k: summary[k]
                    for k in ('threshold', 'images', 'pairs', 'leakage')
                },
                groups=summary.get('groups', {}))  # images per split
        return info

    def stage1(self, backbone: str) -> str:
        """MD-MoCo; returns the exported backbone checkpoint."""
        marker = osp.join(self.work_dir, f'mdmoco_{backbone}',
                          'stage_done.json')
        if osp.isfile(marker):
            with open(marker) as f:
                done = json.load(f)['outputs'].get('exclude_leaks', False)
            if done != self.s.exclude_leaks:
                raise ValueError(
                    f'{marker}: stage 1 was run '
                    f'{"with" if done else "without"} --exclude-leaks; use '
                    'another --work-dir to run it the other way')

        def body(stage_dir):
            options = []
            if self.s.exclude_leaks:
                options.append('train_dataloader.dataset.exclude_file=' +
                               self.audit()['exclude_file'])
            ckpt = self._train(self.stage1_config(backbone), stage_dir,
                               options)
            return dict(
                checkpoint=ckpt,
                backbone=self._export(ckpt, backbone, 'mdmoco'),
                exclude_leaks=self.s.exclude_leaks)

        return self._stage(f'mdmoco_{backbone}', body)['backbone']

    def stage2(self, init: str, backbone: str, mdmoco: str) -> str:
        """MUSCLE (``init='muscle'``) or MUSCLE-- (``'muscle_minus'``) from
        the MD-MoCo backbone; returns the exported backbone checkpoint."""

        def body(stage_dir):
            ckpt = self._train(
                self.stage_config(f'{STAGE_CONFIGS[init]}_{backbone}'),
                stage_dir, self.init_options(mdmoco))
            return dict(
                checkpoint=ckpt, backbone=self._export(ckpt, backbone, init))

        return self._stage(f'{init}_{backbone}', body)['backbone']

    def stage3(self, task: str, backbone: str, init: str,
               pretrained: Optional[str]) -> Optional[dict]:
        """Fine-tune ``task`` from ``init`` and test it; returns metrics."""
        if init == 'imagenet' and pretrained is None:
            self.log(f'[skip] finetune {task} {backbone} imagenet: no local '
                     'ImageNet weights given (--imagenet; see '
                     'docs/finetune.md); left out of the tables.')
            return None
        if init == 'imagenet':
            self.check_imagenet_files()

        def body(stage_dir):
            config = self.finetune_config(task, backbone, init)
            options = self.init_options(pretrained) + [
                f'{loader}.dataset.protocol={self.s.protocol}'
                for loader in LOADERS
            ]
            if task in CLS_TASKS:
                options = options + [
                    f'test_evaluator.out_dir={stage_dir}',
                    'test_evaluator.roc_file=roc.json'
                ]
            # one process trains and tests: a second (tools/test.py) would
            # cost its start-up again, ~10 s a run on 2 CPU cores
            metrics_file = osp.join(stage_dir, 'metrics.json')
            ckpt = self._train(config, stage_dir, options, metrics_file)
            with open(metrics_file) as f:
                metrics = json.load(f)
            return dict(checkpoint=ckpt, config=config, metrics=metrics)

        return self._stage(f'finetune/{task}_{backbone}_{init}', body)

    # ---------------------------------------------------------------- all
    def plan(self) -> List[PlannedRun]:
        """Every training run of the settings, in the order they run."""
        runs = []
        stage2 = [i for i in STAGE_CONFIGS if i != 'mdmoco']
        need_stage2 = set(stage2) & set(self.s.inits)
        for bb in self.s.backbones:
            mdmoco = self.backbone_file(bb, 'mdmoco')
            if need_stage2 or 'mdmoco' in self.s.inits:
                runs.append(
                    PlannedRun(
                        f'mdmoco_{bb}', 1, self.stage1_config(bb), bb,
                        output=mdmoco))
            for init in stage2:
                if init in self.s.inits:
                    runs.append(
                        PlannedRun(
                            f'{init}_{bb}', 2,
                            self.stage_config(f'{STAGE_CONFIGS[init]}_{bb}'),
                            bb, 'mdmoco', mdmoco,
                            output=self.backbone_file(bb, init)))
            files = dict(
                scratch=None,
                imagenet=self.s.imagenet.get(bb),
                **{i: self.backbone_file(bb, i)
                   for i in STAGE_BACKBONES})
            for task in self.s.tasks:
                for init in self.s.inits:
                    runs.append(
                        PlannedRun(f'finetune/{task}_{bb}_{init}', 3,
                                   self.finetune_config(task, bb, init), bb,
                                   None if init == 'scratch' else init,
                                   files[init], task))
        return runs

    def probe_inputs(self, backbone: str = 'r18') -> Optional[dict]:
        """What the report's backbone probe compares (demo scale only; at
        paper scale run ``tools/analysis_tools/knn_probe.py`` by hand): the
        random init and every stage backbone this study wrote, on the
        classification tasks of the demo data. None when there is none."""
        if self.s.scale != 'demo':
            return None
        from muscle_mm.evaluation.probe import RANDOM_INIT
        names = {
            init: f'{INIT_NAMES[init]} (stage {1 if init == "mdmoco" else 2})'
            for init in STAGE_BACKBONES
        }
        files = {
            name: self.backbone_file(backbone, init)
            for init, name in names.items()
            if osp.isfile(self.backbone_file(backbone, init))
        }
        if not files:
            return None
        return dict(
            config=self.stage_config(f'mdmoco_{backbone}'),
            protocol=self.s.protocol,
            backbones={RANDOM_INIT: None, **files},
            tasks={
                t: get_config_path(f'_base_/datasets/demo/{t}.py')
                for t in CLS_TASKS
            })

    def check_imagenet_files(self) -> None:
        """Stop, naming the file, when a given ImageNet weight file is
        missing: a typo must not cost a row of the tables."""
        for backbone, path in self.s.imagenet.items():
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'ImageNet weights for {backbone} not found at {path} '
                    f'(--imagenet {backbone}={path}). Convert them as '
                    'docs/finetune.md shows, or leave --imagenet out to '
                    'skip the ImageNet rows.')

    def run(self) -> dict:
        """Run every stage; returns ``{task: {backbone: {init: metrics}}}``.

        The work dir is locked for the whole run: a second study on it stops
        at once, naming this one.
        """
        with FolderLock(self.work_dir):
            return self._run_all()

    def _run_all(self) -> dict:
        if 'imagenet' in self.s.inits:
            self.check_imagenet_files()  # before days of stages 1 and 2
        self.job_env(0)  # jobs x gpus more than visible: stop now
        self.prepare_data()
        self.audit()  # once, before the stage-1 runs start; for the report
        results: Dict[str, Dict[str, Dict[str, dict]]] = {
            t: {} for t in self.s.tasks
        }
        runs = self.plan()
        # runs that will train (ImageNet ones without weights are skipped)
        n = sum(r.init != 'imagenet' or r.init_file is not None for r in runs)
        numbers, k = [], 0
        for r in runs:
            k += r.init != 'imagenet' or r.init_file is not None
            numbers.append((k, n))
        for run, out in self._schedule(runs, numbers):
            if run.stage == 3 and out is not None:
                results[run.task].setdefault(run.backbone,
                                             {})[run.init or 'scratch'] = out
        return results

    def _schedule(self, runs: List[PlannedRun], numbers: List[tuple]):
        """Run ``runs`` ``jobs`` at a time, in plan order, each once the
        backbone it loads is written; yield ``(run, output)`` as they end.

        A failed run stops new ones from starting; those running finish,
        then its error is raised. An interrupt ends every running child.
        """
        writes = {r.output for r in runs if r.output}
        written = set()
        pending = list(zip(runs, numbers))
        running: Dict[Future, tuple] = {}
        slots = list(range(self.s.jobs))
        error = None
        with ThreadPoolExecutor(self.s.jobs) as pool:
            try:
                while running or (pending and error is None):
                    for item in list(pending):
                        run = item[0]
                        if error is not None or not slots:
                            break
                        if run.init_file in writes - written:
                            continue  # its stage 1/2 backbone is not done
                        pending.remove(item)
                        slot = slots.pop(0)
                        running[pool.submit(self._execute, run, item[1],
                                            slot)] = (run, slot)
                    done, _ = wait_futures(
                        running, return_when=FIRST_COMPLETED)
                    for future in done:
                        run, slot = running.pop(future)
                        slots.append(slot)
                        slots.sort()
                        if future.exception() is not None:
                            error = error or future.exception()
                            continue
                        written.add(run.output)
                        yield run, future.result()
            except BaseException:
                for proc in list(self._children.values()):
                    if proc.poll() is None:
                        end_process_group(proc)
                raise
        if error is not None:
            raise error

    def _execute(self, run: PlannedRun, number: tuple, slot: int):
        """One run of :meth:`plan` in job ``slot``; its stage's output."""
        self._local.slot, self._progress = slot, number
        if run.stage == 1:
            return self.stage1(run.backbone)
        if run.stage == 2:
            init = run.name[:-len(run.backbone) - 1]  # muscle_minus_r18
            return self.stage2(init, run.backbone, run.init_file)
        return self.stage3(run.task, run.backbone, run.init or 'scratch',
                           run.init_file)


def _visible_gpus() -> List[str]:
    """Ids of the GPUs a child would see (none on a CPU-only machine)."""
    import torch
    if not torch.cuda.is_available():
        return []
    given = os.environ.get('CUDA_VISIBLE_DEVICES')
    if given:
        return [d for d in given.split(',') if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]
