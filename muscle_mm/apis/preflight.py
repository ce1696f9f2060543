# Copyright (c) muscle_mm contributors. All rights reserved.
"""Check a study in minutes before it runs for days.

``python tools/run_muscle.py ... --preflight`` trains nothing: it walks the
study's plan (:meth:`MuscleStudy.plan`) and checks the data, every config,
every initialisation file, each run's schedule on the requested number of
processes, the disk space its checkpoints need and the peak memory of one
training step per stage. One table; any ``FAIL`` line makes it fail.
"""
import copy
import json
import math
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

from muscle_mm.metainfo import STAGE_CONFIGS, TABLE1, TASK_DATASETS
from .paths import IMPORT_ROOT, resource_roots
from .study import MuscleStudy, PlannedRun

GiB = 1024**3


@dataclass
class Check:
    """One line of the preflight's table."""
    section: str
    subject: str
    status: str  # 'ok', 'FAIL', 'skip', 'made by stage N' or 'made by the audit'
    detail: str = ''

    @property
    def failed(self) -> bool:
        return self.status == 'FAIL'


def _shown(config: str) -> str:
    """``configs/...`` for the package's configs, else the path."""
    for root in resource_roots():
        if osp.abspath(config).startswith(osp.join(root, 'configs', '')):
            return osp.relpath(config, root)
    return config


def _error(e: BaseException) -> str:
    text = f'{type(e).__name__}: {e}'.strip().replace('\n', ' | ')
    return text if len(text) < 600 else text[:600] + ' ...'


def iters_per_epoch(num_samples: int, batch_size: int, world_size: int,
                    drop_last: bool) -> int:
    """Iterations of one epoch on each of ``world_size`` processes, for a
    sampler that splits an epoch of ``num_samples`` evenly, rounding up
    (mmengine's ``DefaultSampler``, ``MultiSourceWeightedSampler``)."""
    per_rank = math.ceil(num_samples / world_size)
    return per_rank // batch_size if drop_last else math.ceil(per_rank /
                                                             batch_size)


class Preflight:
    """The checks of ``--preflight`` for a study.

    Args:
        study: The study to check, with the settings of the real run.
        amp: Whether the run trains with ``--amp`` (memory is measured so).
        memory: Measure the peak memory of one training step per stage
            (a subprocess each; minutes at paper scale on a CPU).
        log: Where progress goes.
    """

    def __init__(self,
                 study: MuscleStudy,
                 amp: bool = False,
                 memory: bool = True,
                 log=print) -> None:
        self.study = study
        self.world_size = study.s.gpus
        self.amp = amp
        self.memory = memory
        self.log = log
        self._loaders: Dict[str, object] = {}

    # ------------------------------------------------------------ driver
    def run(self) -> List[Check]:
        from mmengine.registry import DefaultScope

        from muscle_mm.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        checks = self.check_data()
        plan = self.study.plan()
        sizes: Dict[str, tuple] = {}  # run -> (checkpoint, backbone) bytes
        with DefaultScope.overwrite_default_scope('muscle_mm'):
            for run in plan:
                self.log(f'[preflight] {run.name}')
                checks += self.check_run(run, plan, sizes)
        checks += self.check_disk(plan, sizes)
        if self.memory:
            checks += self.check_memory(plan)
        return checks

    @staticmethod
    def table(checks: Sequence[Check]) -> str:
        widths = [
            max(len(getattr(c, k)) for c in checks)
            for k in ('section', 'subject', 'status')
        ]
        lines = []
        for c in checks:
            lines.append(f'{c.section:<{widths[0]}}  {c.subject:<{widths[1]}}'
                         f'  {c.status:<{widths[2]}}  {c.detail}')
        failed = sum(c.failed for c in checks)
        lines.append(f'{len(checks)} checks, {failed} failed')
        return '\n'.join(lines)

    # -------------------------------------------------------------- data
    def check_data(self) -> List[Check]:
        """Each dataset the plan reads: folder, split files, counts."""
        from muscle_mm.datasets.readers.verify import verify_split
        plan = self.study.plan()
        keys = list(TABLE1) if any(r.stage < 3 for r in plan) else [
            TASK_DATASETS[t] for t in self.study.s.tasks
        ]
        checks = []
        for key in keys:
            root = osp.join(self.study.data_root, TABLE1[key]['folder'])
            if not osp.isdir(root):
                checks.append(
                    Check('data', key, 'FAIL',
                          f'{root} not found; docs/datasets.md says where to '
                          'get it and the layout it must have'))
                continue
            for split, expected in TABLE1[key]['counts'].items():
                found, problems = verify_split(key, root, split)
                diff = found - expected
                note = f'{found} images, Table 1: {expected}' + (
                    '' if diff == 0 else f' ({diff:+d})')
                if problems:
                    checks.append(
                        Check('data', f'{key}/{split}', 'FAIL',
                              f'{note}; {len(problems)} problem(s): '
                              f'{problems[0]}'))
                else:
                    checks.append(Check('data', f'{key}/{split}', 'ok', note))
        return checks

    # ------------------------------------------------------------- a run
    def check_run(self, run: PlannedRun, plan: Sequence[PlannedRun],
                  sizes: Dict[str, tuple]) -> List[Check]:
        from mmengine.config import Config
        audit = self._audit_check(run)
        try:
            cfg = Config.fromfile(run.config)
            if run.init_file:
                cfg.merge_from_dict(
                    {'model.backbone.init_cfg.checkpoint': run.init_file})
            if audit is not None:
                cfg.merge_from_dict(
                    {'train_dataloader.dataset.exclude_file': audit[1]})
            model = self._build_model(cfg)
            loaders = self._build_loaders(cfg)
            self._build_evaluators(cfg)
        except Exception as e:  # noqa: B902 - the report names it
            return [Check('config', run.name, 'FAIL', _error(e))]
        sizes[run.name] = (self._checkpoint_bytes(model, cfg),
                           self._bytes(model.backbone.state_dict()))
        params = sum(p.numel() for p in model.parameters())
        return [
            Check('config', run.name, 'ok',
                  f'{_shown(run.config)}: model '
                  f'{params / 1e6:.1f}M parameters, '
                  f'{len(loaders)} dataloader(s), evaluator(s) built'),
            self.check_init(run, plan, model),
            self.check_schedule(run, cfg, loaders),
            self.check_bn(run, cfg, model),
        ] + self.check_resume(run) + ([audit[0]]
                                     if audit is not None else [])

    def _audit_check(self, run: PlannedRun) -> Optional[tuple]:
        """With ``exclude_leaks``, stage 1 reads the audit's exclusion list
        (``MuscleStudy.audit``): ``(check, exclude_file)``, the file being
        None (the whole union is checked) until the audit has run; the audit
        hashes every image, too long for a preflight. None otherwise."""
        if run.stage != 1 or not self.study.s.exclude_leaks:
            return None
        path = osp.join(self.study.work_dir, 'audit', 'stage1_exclude.txt')
        if osp.isfile(path):
            with open(path, encoding='utf-8') as f:
                n = sum(1 for line in f if line.strip())
            return Check('init', f'{run.name} exclusions', 'ok',
                         f'{n} image(s) left out, listed in {path}'), path
        return Check('init', f'{run.name} exclusions', 'made by the audit',
                     f'{path}: the leakage audit runs before stage 1 and '
                     'lists the images it leaves out; checked here with the '
                     'whole union'), None

    def _build_model(self, cfg):
        from muscle_mm.registry import MODELS
        return MODELS.build(copy.deepcopy(cfg.model))

    def _task_cfgs(self, cfg, key: str) -> Dict[str, dict]:
        """The ``key`` config of each task (CL) or of the run ('')."""
        from muscle_mm.engine.loops.utils import cl_tasks, task_entry
        loop = cfg.get('train_cfg') or {}
        if loop.get('type') != 'MultiTaskCLLoop':
            value = cfg.get(key)
            return {} if value is None else {'': value}
        entries = cfg.get(key) or {}
        out = {}
        for task in cl_tasks(cfg):
            if task in entries:
                value = copy.deepcopy(task_entry(entries[task], key, task))
                if key == 'train_dataloader':
                    value.update(loop.get('loader_overrides') or {})
                out[task] = value
        return out

    def _build_loaders(self, cfg) -> Dict[str, object]:
        """Every dataloader of the run (built once per distinct config)."""
        from mmengine.runner import Runner
        loaders = {}
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            for task, loader_cfg in self._task_cfgs(cfg, key).items():
                loader_cfg = copy.deepcopy(loader_cfg)
                loader_cfg.update(num_workers=0, persistent_workers=False)
                ident = json.dumps(loader_cfg, sort_keys=True, default=str)
                if ident not in self._loaders:
                    self._loaders[ident] = Runner.build_dataloader(
                        loader_cfg, seed=0)
                loaders[f'{key}:{task}'] = self._loaders[ident]
        return loaders

    def _build_evaluators(self, cfg) -> None:
        from mmengine.evaluator import Evaluator
        for key in ('val_evaluator', 'test_evaluator'):
            for metrics in self._task_cfgs(cfg, key).values():
                Evaluator(copy.deepcopy(metrics))

    @staticmethod
    def _bytes(tensors) -> int:
        return sum(t.numel() * t.element_size() for t in tensors.values())

    def _checkpoint_bytes(self, model, cfg) -> int:
        """Weights + buffers, plus one momentum buffer per trainable
        parameter when the optimizer keeps one (SGD with momentum)."""
        state = self._bytes(model.state_dict())
        optimizer = cfg.optim_wrapper.get('optimizer', {})
        if optimizer.get('momentum', 0) or optimizer.get('type') in (
                'Adam', 'AdamW'):
            state += sum(p.numel() * p.element_size()
                         for p in model.parameters() if p.requires_grad)
        return state

    # ------------------------------------------------------- init files
    def check_init(self, run: PlannedRun, plan: Sequence[PlannedRun],
                   model) -> Check:
        subject = f'{run.name} <- {run.init or "scratch"}'
        if run.init is None:
            return Check('init', subject, 'ok', 'Kaiming / random, no file')
        if run.init_file is None:
            return Check(
                'init', subject, 'skip',
                f'no local weights given (--imagenet {run.backbone}=PATH); '
                'this column is left out of the tables')
        if not osp.isfile(run.init_file):
            maker = next((r for r in plan if r.output == run.init_file), None)
            if maker is not None:
                return Check('init', subject, f'made by stage {maker.stage}',
                             f'{run.init_file} (by {maker.name})')
        try:
            model.backbone.init_weights()
        except Exception as e:  # noqa: B902
            return Check('init', subject, 'FAIL', _error(e))
        bad = [
            k for k, v in model.backbone.state_dict().items()
            if v.is_floating_point() and not v.isfinite().all()
        ]
        if bad:
            return Check(
                'init', subject, 'FAIL',
                f'{run.init_file} holds NaN or Inf in {len(bad)} backbone '
                f'tensor(s), e.g. {bad[:3]}; the run that wrote it diverged '
                '(train it again, or resume it from an earlier checkpoint)')
        return Check('init', subject, 'ok',
                     f'{run.init_file} loads strictly into its backbone, '
                     'all values finite')

    # ---------------------------------------------------------- schedule
    def check_schedule(self, run: PlannedRun, cfg, loaders) -> Check:
        from muscle_mm.engine.loops.utils import cl_tasks
        from muscle_mm.engine.runner.lr_scaling import describe, lr_scaling
        from muscle_mm.engine.schedulers.cyclic_cosine_lr import check_period
        w = self.world_size
        per_task = {}
        for name, loader in loaders.items():
            key, task = name.split(':')
            if key == 'train_dataloader':
                per_task[task] = iters_per_epoch(
                    len(loader.sampler), loader.batch_size, w,
                    loader.drop_last)
        empty = [t or run.name for t, n in per_task.items() if n == 0]
        try:
            if empty:
                raise ValueError(f'no training iteration for {empty} on '
                                 f'{w} process(es)')
            lr, ratio = lr_scaling(cfg, w)
            loop = cfg.train_cfg
            if loop.get('type') == 'MultiTaskCLLoop':
                per_round = loop.get('epochs_per_task', 1) * sum(
                    per_task.values())
                parts = ' + '.join(f'{t} {n}' for t, n in per_task.items())
                text = (f'{per_round} it/round per process ({parts} at world '
                        f'size {w}) x {loop.get("rounds", 10)} rounds')
                for sched in self._cyclic(cfg):
                    period = sched.get('period')
                    per = check_period(period, sched.get('by_epoch', True),
                                       per_round, len(cl_tasks(cfg)),
                                       f'{parts} at world size {w}')
                    if period == 'task_iterate':
                        text += '; Eq. 1 T = each task-iterate'
                    else:
                        text += (f'; Eq. 1 T = '
                                 f'{per if period == "round" else period}')
            else:
                from muscle_mm.engine.schedulers.run_fit import \
                    schedule_problems
                n = per_task['']
                text = (f'{n} it/epoch per process x '
                        f'{loop.get("max_epochs")} epochs')
                problems = schedule_problems(
                    cfg.get('param_scheduler'), n, loop.get('max_epochs'), w)
                if problems:
                    raise ValueError('; '.join(problems))
        except Exception as e:  # noqa: B902
            return Check('schedule', run.name, 'FAIL', _error(e))
        return Check('schedule', run.name, 'ok',
                     f'{text}; LR {describe(lr, ratio)}')

    def check_bn(self, run: PlannedRun, cfg, model) -> Check:
        """How BatchNorm statistics are kept equal over the processes."""
        from torch.nn.modules.batchnorm import _BatchNorm
        sync = [m for m in model.modules() if 'SyncBatchNorm' in type(
            m).__name__]
        plain = [m for m in model.modules()
                 if isinstance(m, _BatchNorm) and m not in sync]
        hooks = {h.get('type') for h in (cfg.get('default_hooks') or
                                         {}).values() if h}
        hooks |= {h.get('type') for h in cfg.get('custom_hooks') or []}
        synced = 'BufferSyncHook' in hooks
        mode = (f'{len(plain)} BN layer(s) normalise each process\'s batch'
                + (f', {len(sync)} SyncBN' if sync else ''))
        if self.world_size == 1:
            return Check('bn', run.name, 'ok', f'{mode}; one process')
        if plain and not synced:
            return Check(
                'bn', run.name, 'FAIL',
                f'{mode} and no BufferSyncHook: on {self.world_size} '
                'processes each rank would keep its own running statistics, '
                'and --test-last would score each shard with other ones than '
                'the checkpoint\'s; add '
                "default_hooks.sync_buffers=dict(type='BufferSyncHook')")
        extra = ''
        if 'BackboneBNHook' in hooks:
            extra = '; the last checkpoint\'s backbone statistics pooled ' \
                'over the tasks (BackboneBNHook)'
        return Check(
            'bn', run.name, 'ok',
            f'{mode}; running statistics averaged over the '
            f'{self.world_size} processes before every validation, test and '
            f'checkpoint (BufferSyncHook){extra}')

    def check_resume(self, run: PlannedRun) -> List[Check]:
        """A checkpoint the run would resume from, written on another
        number of processes, would stop it: say so now."""
        import torch

        from muscle_mm.engine.hooks.run_geometry_hook import (
            META_KEY, describe_geometry)
        from muscle_mm.utils.resume import find_resumable_checkpoint
        work_dir = osp.join(self.study.work_dir, run.name)
        if not osp.isdir(work_dir) or osp.isfile(
                osp.join(work_dir, 'stage_done.json')):
            return []
        found = find_resumable_checkpoint(work_dir)
        if found is None:
            return []
        try:
            # mmap: only the meta is read, not gigabytes of weights
            meta = torch.load(found, map_location='cpu', weights_only=True,
                              mmap=True).get('meta') or {}
        except Exception as e:  # noqa: B902
            return [Check('resume', run.name, 'FAIL', _error(e))]
        geometry = meta.get(META_KEY)
        if geometry is None:
            return [Check('resume', run.name, 'ok',
                          f'resumes {found}, which records no world size; '
                          'keep the number of processes it was trained on')]
        was = geometry['world_size']
        if was != self.world_size:
            return [Check(
                'resume', run.name, 'FAIL',
                f'{found} was trained at {describe_geometry(geometry)}; '
                f'--gpus {self.world_size} would stop on resume. Use --gpus '
                f'{was}, or another --work-dir to start again')]
        return [Check('resume', run.name, 'ok',
                      f'resumes {found} at world size {was}')]

    @staticmethod
    def _cyclic(cfg) -> Iterable[dict]:
        scheds = cfg.get('param_scheduler') or []
        if isinstance(scheds, dict):
            scheds = [scheds]
        return [s for s in scheds if 'CyclicCosine' in str(s.get('type'))]

    # -------------------------------------------------------------- disk
    def check_disk(self, plan: Sequence[PlannedRun],
                   sizes: Dict[str, tuple]) -> List[Check]:
        from mmengine.config import Config

        from muscle_mm.engine.loops.utils import cl_tasks
        need = 0
        for run in plan:
            if run.name not in sizes or osp.isfile(
                    osp.join(self.study.work_dir, run.name,
                             'stage_done.json')):
                continue
            cfg = Config.fromfile(run.config)
            hook = cfg.default_hooks.get('checkpoint') or {}
            loop = cfg.train_cfg
            epochs = loop.get('max_epochs') or loop.get('rounds', 10) * len(
                cl_tasks(cfg))
            saved = epochs // max(1, hook.get('interval', 1))
            keep = hook.get('max_keep_ckpts', -1)
            count = saved if keep is None or keep < 0 else min(saved, keep)
            checkpoint, backbone = sizes[run.name]
            need += count * checkpoint + (backbone if run.output else 0)
        folder = self.study.work_dir
        while not osp.isdir(folder):
            folder = osp.dirname(folder)
        free = shutil.disk_usage(folder).free
        detail = (f'checkpoints need ~{need / GiB:.2f} GiB, '
                  f'{free / GiB:.2f} GiB free in {folder}')
        return [
            Check('disk', self.study.work_dir, 'FAIL' if need > free else 'ok',
                  detail if need <= free else detail +
                  '; free space or choose another --work-dir')
        ]

    # ------------------------------------------------------------ memory
    def check_memory(self, plan: Sequence[PlannedRun]) -> List[Check]:
        """Peak memory of one training step of each distinct model: stage 1,
        stage 2 (every task, all heads held) and each stage-3 task."""
        checks, seen = [], set()
        for run in plan:
            key = (run.stage, run.backbone, run.task)
            if key in seen:
                continue
            seen.add(key)
            name = run.name if run.stage < 3 else \
                f'finetune/{run.task}_{run.backbone}'
            self.log(f'[preflight] one training step of {name}')
            config = run.config
            if run.stage == 1 and self.study.s.exclude_leaks:
                # the paper's config: the same model and batch, and no
                # exclusion list needed (the audit has not run yet)
                config = self.study.stage_config(
                    f'{STAGE_CONFIGS["mdmoco"]}_{run.backbone}')
            try:
                result = measure_in_subprocess(config, self.amp)
            except Exception as e:  # noqa: B902
                checks.append(Check('memory', name, 'FAIL', _error(e)))
                continue
            detail = f'peak {result["peak"] / GiB:.2f} GiB on ' \
                     f'{result["device"]} (batch {result["batch"]})'
            if len(result['tasks']) > 1 and result['device'] != 'CPU':
                # per task on a GPU only: a process's peak RSS never drops
                detail += '; ' + ', '.join(
                    f'{t} {v / GiB:.2f}' for t, v in result['tasks'].items())
            checks.append(Check('memory', name, 'ok', detail))
        return checks


# --------------------------------------------- one step, in a subprocess
def measure_in_subprocess(config: str, amp: bool) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = IMPORT_ROOT + os.pathsep + env.get('PYTHONPATH', '')
    cmd = [sys.executable, '-m', 'muscle_mm.apis.preflight', config]
    if amp:
        cmd.append('--amp')
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode == -9:
        total = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
        raise MemoryError(
            'the step was killed (SIGKILL), most likely for want of memory: '
            f'it needs more than this machine\'s {total / GiB:.0f} GiB')
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr
                           else f'exit status {proc.returncode}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rss() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def step_runner(config: str, amp: bool = False, random_init: bool = False):
    """The runner of ``config`` ready for single training steps: train
    loop, optimizer wrapper and L2-SP anchor built, no validation, loaders
    in the main process. Returns ``(runner, work_dir)``; remove the
    temporary ``work_dir`` when done."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from muscle_mm.registry import RUNNERS
    from muscle_mm.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(config)
    cfg.log_level = 'ERROR'
    cfg.work_dir = tempfile.mkdtemp(prefix='preflight_')
    if random_init:
        cfg.model.backbone.init_cfg = None
    loop_cfg = cfg.train_cfg
    if loop_cfg.get('type') == 'MultiTaskCLLoop':
        loop_cfg.setdefault('loader_overrides', {}).update(
            num_workers=0, persistent_workers=False)
    else:
        cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if amp:
        from muscle_mm.engine.optimizers import enable_amp
        enable_amp(cfg)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else \
        Runner.from_cfg(cfg)
    runner.train_loop  # built here: its dataloaders
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    for hook in runner.hooks:  # L2-SP keeps a copy of the backbone (w0)
        if type(hook).__name__ == 'L2SPHook':
            hook.before_train(runner)
            hook.before_train_epoch(runner)
    runner.model.train()
    return runner, cfg.work_dir


def step_batches(runner, model=None):
    """``(task, batch size, first batch)`` of each task ('' for a one-task
    run), with the task made the model's active one."""
    loop = runner.train_loop
    model = model if model is not None else runner.model
    loaders = getattr(loop, 'dataloaders', None) or {'': loop.dataloader}
    for task, loader in loaders.items():
        if task:
            getattr(model, 'module', model).active_task = task
        yield task, loader.batch_size, next(iter(loader))


def measure_step(config: str, amp: bool = False) -> dict:
    """Peak memory of one training step of ``config`` at its batch size.

    On a GPU: ``torch.cuda.max_memory_allocated`` over the step (weights,
    gradients, optimizer state, activations). On a CPU: the rise of the
    process's peak resident memory from before the model was built, i.e.
    the same things, as far as the allocator returns memory.
    """
    import resource

    import torch
    base = _rss()
    cuda = torch.cuda.is_available()
    runner, work_dir = step_runner(config, amp)
    model = runner.model
    peaks, batch = {}, {}
    for task, batch[task], data in step_batches(runner):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        model.train_step(data, optim_wrapper=runner.optim_wrapper)
        peaks[task] = torch.cuda.max_memory_allocated() if cuda else \
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    shutil.rmtree(work_dir, ignore_errors=True)
    return dict(
        peak=max(peaks.values()),
        tasks=peaks,
        batch=batch[''] if '' in batch else batch,
        device=torch.cuda.get_device_name() if cuda else 'CPU')


if __name__ == '__main__':
    import argparse
    parser = argparse.ArgumentParser(description='one training step')
    parser.add_argument('config')
    parser.add_argument('--amp', action='store_true')
    args = parser.parse_args()
    print(json.dumps(measure_step(args.config, args.amp)))
