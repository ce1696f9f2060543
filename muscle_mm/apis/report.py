# Copyright (c) muscle_mm contributors. All rights reserved.
"""The study's report: Tables 2/3 with each task's trivial baseline, ROC
curves (Fig. 2), segmentation overlays (Fig. 3), the stage-2 forgetting
matrix and the kNN/linear probe of the pre-trained backbones, from the stage
folders that :class:`~muscle_mm.apis.MuscleStudy` wrote."""
import json
import math
import os
import os.path as osp
import shutil
from typing import Dict, List, Mapping, Optional, Tuple

import cv2
import numpy as np

from muscle_mm.evaluation.baselines import (BASELINE_NAMES, SEG_MARGIN,
                                            baseline_failures,
                                            test_split_baseline)
from muscle_mm.evaluation.tables import (build_table2, build_table3,
                                         to_markdown, write_tables)
from muscle_mm.metainfo import (CLS_TASKS, INIT_NAMES, TABLE3_TASKS,
                                TASK_DATASETS, TASK_TITLES)
from muscle_mm.visualization import plot_roc_curves, plot_seg_overlays

#: Printed under the demo's tables (issue 13).
DEMO_NOTE = (
    'Demo data are synthetic miniatures: these figures show that the '
    'pipeline learns (each model against the trivial baseline of its test '
    'split), not the paper\'s claim; the order of the initialisations is '
    'reported as this run gave it.')


LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def load_config(path: str, protocol: str = 'paper'):
    """A task config with ``protocol`` set on each of its dataloaders'
    datasets, as the study's runs had it (``--cfg-options``)."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    for loader in LOADERS:
        dataset = (cfg.get(loader) or {}).get('dataset')
        if isinstance(dataset, dict) and 'type' in dataset:
            dataset['protocol'] = protocol
    return cfg


def run_config(out: Mapping, protocol: str = 'paper'):
    """The config a study run used: the one mmengine dumped into its work
    dir (the checkpoint's folder, named as its source config), with the
    study's ``--cfg-options`` and protocol merged in; for a run without it
    (outputs written by hand), the source config with ``protocol``."""
    from mmengine.config import Config
    dumped = osp.join(
        osp.dirname(out['checkpoint']), osp.basename(out['config']))
    if osp.isfile(dumped) and osp.abspath(dumped) != osp.abspath(
            out['config']):
        return Config.fromfile(dumped)
    return load_config(out['config'], protocol)


def _first_run(by_bb: Mapping) -> Optional[Mapping]:
    """The outputs of one fine-tuned model of a task."""
    for by_init in by_bb.values():
        for stage in by_init.values():
            return stage
    return None


def _build(cfg, loader: str):
    from mmengine.registry import DefaultScope

    from muscle_mm.registry import DATASETS
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'muscle_mm')):
        return DATASETS.build(cfg[loader].dataset)


def task_baselines(results: Mapping,
                   protocol: str = 'paper') -> Dict[str, dict]:
    """``{task: trivial-baseline metrics}`` on each task's test split, read
    through the config of one of its fine-tuned models."""
    out = {}
    for task, by_bb in results.items():
        run = _first_run(by_bb)
        if run is not None:
            out[task] = test_split_baseline(
                task, _build(run_config(run, protocol), 'test_dataloader'))
    return out


def _one(values: Mapping):
    """The value of ``{name: value}`` when all agree, else the mapping."""
    if len({json.dumps(v, sort_keys=True) for v in values.values()}) == 1:
        return next(iter(values.values()))
    return dict(values)


def study_facts(results: Mapping, protocol: str = 'paper') -> dict:
    """What the tables compared, from the configs the runs used
    (:func:`run_config`): the protocol, the images of each task's
    train/val/test as its runs read them (after the train loader's
    filters, e.g. TBX11K's images without a box), the runs' seed and the
    AUC CI's bootstrap (the classification tasks' test metric). Seed and
    bootstrap are one value when every run agrees, else ``{task: value}``
    (a list of a task's seeds when its runs differ)."""
    facts = dict(protocol=protocol, splits={}, seed=None, bootstrap=None)
    seeds, bootstraps = {}, {}
    for task, by_bb in results.items():
        runs = [out for by_init in by_bb.values() for out in by_init.values()]
        if not runs:
            continue
        cfgs = [run_config(out, protocol) for out in runs]
        facts['splits'][task] = {
            loader.split('_')[0]: len(_build(cfgs[0], loader))
            for loader in LOADERS
        }
        task_seeds = sorted(
            {(cfg.get('randomness') or {}).get('seed')
             for cfg in cfgs}, key=str)
        seeds[task] = task_seeds[0] if len(task_seeds) == 1 else task_seeds
        ev = cfgs[0].get('test_evaluator') or {}
        if task in CLS_TASKS and isinstance(ev, dict):
            bootstraps[task] = dict(
                resamples=ev.get('num_bootstrap', 100),
                level=ev.get('ci', 0.95),
                seed=ev.get('seed', 0))
    if seeds:
        facts['seed'] = _one(seeds)
    if bootstraps:
        facts['bootstrap'] = _one(bootstraps)
    return facts


def _per_task(value, words, by_task: bool) -> str:
    """``words(value)``, or ``'Pneumonia <words>; MURA <words>'`` for a
    ``{task: value}`` of :func:`study_facts` (``by_task``)."""
    if by_task:
        return '; '.join(f'{TASK_TITLES.get(t, t)} {words(v)}'
                         for t, v in value.items())
    return words(value)


def facts_notes(facts: Mapping, bootstrap: bool = True) -> List[str]:
    """The lines of :func:`study_facts` printed under the tables (the AUC
    CI's bootstrap if ``bootstrap``: Table 2)."""
    splits = '; '.join(
        f'{TASK_TITLES.get(t, t)} {c["train"]}/{c["val"]}/{c["test"]}'
        for t, c in facts['splits'].items())
    seed = facts['seed']
    if isinstance(seed, dict):  # per task; a list where a task's runs differ
        seed = 'Seeds: ' + _per_task(
            seed, lambda s: ', '.join(map(str, s))
            if isinstance(s, list) else str(s), True)
    else:
        seed = f'Seed {seed}'
    lines = [
        f'Protocol: {facts["protocol"]} ('
        + ("the paper's re-splits" if facts['protocol'] == 'paper' else
           "each release's own train/test, val carved from train") +
        f'). Images train/val/test: {splits}. {seed}.'
    ]
    b = facts.get('bootstrap')
    if b and bootstrap:
        lines.append('AUC CI: ' + _per_task(
            b, lambda b: f'{100 * b["level"]:.0f}% percentile bootstrap '
            f'of the test set, {b["resamples"]} resamples, seed '
            f'{b["seed"]}', 'resamples' not in b) + '.')
    return lines


#: What "beats the baseline" asks of each task (``baseline_failures``).
MARGIN_WORDS = dict(
    pneumonia='by more than its 95% CI (AUC and accuracy)',
    mura='by more than its 95% CI (AUC and accuracy)',
    lung=f'by more than {SEG_MARGIN:.0f} points of Dice and mIoU (no CI is '
    'computed for them)',
    tbx='(mAP above 0)')


def _baseline_notes(results: Mapping, baselines: Mapping,
                    tasks) -> List[str]:
    """What each baseline is, and which models fail to beat it."""
    lines = []
    for task in tasks:
        if task not in baselines:
            continue
        failures = [
            f'{INIT_NAMES.get(init, init)} ({bb}): {why}'
            for bb, by_init in results[task].items()
            for init, out in by_init.items()
            for why in baseline_failures(task, out['metrics'],
                                         baselines[task])
        ]
        verdict = (f'every model beats it {MARGIN_WORDS[task]}.'
                   if not failures else 'NOT beaten: ' + '; '.join(failures))
        lines.append(f'Trivial baseline of {TASK_TITLES[task]}: '
                     f'{BASELINE_NAMES[task]} on its test split; {verdict}')
    return lines


def heldout_copies(audit: Mapping) -> str:
    """Per downstream val/test split, how many of its images have a copy in
    stage 1, out of how many (``Pneumonia val 0 of 18, test 2 of 20;
    ...``): the audit summary's ``leakage`` and, for the N, its image count
    per group (``groups``; without it the k alone)."""
    from muscle_mm.datasets.audit.overlap import is_held_out
    found = audit['leakage']['heldout_images_with_stage1_copy']
    sizes = audit.get('groups') or {}
    tasks = {folder: task for task, folder in TASK_DATASETS.items()}
    by_dataset: Dict[str, List[str]] = {}
    for group in [g for g in sizes if is_held_out(g)] or list(found):
        dataset, split = group.split('/')
        by_dataset.setdefault(dataset, []).append(
            f'{split} {found.get(group, 0)}' +
            (f' of {sizes[group]}' if group in sizes else ''))
    return '; '.join(
        f'{TASK_TITLES.get(tasks.get(d), d)} {", ".join(splits)}'
        for d, splits in by_dataset.items()) or 'none'


def leakage_note(leakage: Mapping) -> str:
    """One line: which stage-1 data the study used, with the leakage
    audit's counts when it ran (``MuscleStudy.leakage_info``; the audit's
    ``groups`` too for :func:`heldout_copies`' N)."""
    audit = leakage.get('audit')
    per_split = (f'; val/test images with a stage-1 copy: '
                 f'{heldout_copies(audit)}' if audit and
                 'heldout_images_with_stage1_copy' in audit['leakage'] else
                 '')
    if leakage.get('exclude_leaks'):
        n = (audit['leakage']['stage1_images_with_heldout_copy']
             if audit else '?')
        return (f'Stage 1 (MD-MoCo) left out the {n} stage-1 image(s) with '
                "a copy in a task's val/test split (--exclude-leaks, "
                'configs/muscle/mdmoco_*_noleak.py; leakage audit at '
                f'threshold {audit["threshold"] if audit else "?"})'
                f'{per_split}.')
    if audit:
        return ('Stage 1 (MD-MoCo) pre-trained on the whole union, as the '
                f'paper; the leakage audit (threshold {audit["threshold"]}) '
                'found '
                f'{audit["leakage"]["stage1_images_with_heldout_copy"]} of '
                "its images with a copy in a task's val/test split "
                f'(--exclude-leaks leaves them out){per_split}.')
    return ('Stage 1 (MD-MoCo) pre-trained on the whole union, as the paper; '
            'no leakage audit was run (tools/misc/audit_overlap.py, or '
            '--exclude-leaks).')


def probe_table(probe: Mapping) -> Tuple[str, dict]:
    """kNN/linear probes of the study's backbones against random init.

    Args:
        probe: ``config`` (stage-1 config: backbone, mean/std),
            ``backbones`` ({row: backbone file, None for the random
            init}), ``tasks`` ({task: dataset config}) and optionally
            ``protocol`` (which splits; default ``'paper'``).

    Returns:
        The Markdown table and the raw scores ({task: probe output}).
    """
    from mmengine.config import Config

    from muscle_mm.evaluation.probe import PROBE_KEYS, probe_backbones
    model = Config.fromfile(probe['config']).model
    raw, rows = {}, []
    for task, task_config in probe['tasks'].items():
        out = probe_backbones(
            model, load_config(task_config, probe.get('protocol', 'paper')),
            probe['backbones'])
        raw[task] = out
        for name, scores in out['scores'].items():
            rows.append(f'| {TASK_TITLES.get(task, task)} | {name} | ' +
                        ' | '.join(f'{100 * scores[k]:.1f}'
                                   for k in PROBE_KEYS) + ' |')
    folds = next(iter(raw.values()))['folds'] if raw else 5
    lines = [
        '**Probe of the frozen backbones (accuracy, %)**', '',
        '| Task | Backbone | ' + ' | '.join(PROBE_KEYS) + ' |',
        '|' + '|'.join(['---'] * (2 + len(PROBE_KEYS))) + '|', *rows, '',
        'kNN (k=5, cosine) and linear (logistic regression) probes on the '
        'pooled last-stage features, fitted on the train split and scored on '
        f'val+test; CV: stratified {folds}-fold over all images. The same '
        'architecture at its random (Kaiming) initialisation is the '
        'reference.'
    ]
    return '\n'.join(lines) + '\n', raw


def predict_segmentation(config: str,
                         checkpoint: str,
                         num_images: int,
                         protocol: str = 'paper') -> Tuple[List, List, List]:
    """Images, ground truths and predictions of the first test images."""
    import torch
    from mmengine.runner import Runner

    from muscle_mm.utils.checkpoint_checks import check_checkpoint_fits

    cfg = load_config(config, protocol)
    cfg.log_level = 'ERROR'  # a helper run: keep the report's output readable
    loader_cfg = cfg.test_dataloader
    loader_cfg.batch_size = 1
    loader_cfg.num_workers = 0
    loader_cfg.persistent_workers = False
    cfg.work_dir = osp.join(osp.dirname(checkpoint), 'overlays')
    runner = Runner.from_cfg(cfg)
    check_checkpoint_fits(runner.model, checkpoint)  # as tools/test.py
    runner.load_checkpoint(checkpoint, map_location='cpu')
    model = runner.model.eval()
    loader = Runner.build_dataloader(loader_cfg)
    images, gts, preds = [], [], []
    with torch.no_grad():
        for data in loader:
            sample = model.test_step(data)[0]
            pred = sample.pred_sem_seg.data[0].cpu().numpy()
            gt = sample.gt_sem_seg.data[0].cpu().numpy()
            img = cv2.imread(sample.img_path, cv2.IMREAD_GRAYSCALE)
            images.append(cv2.resize(img, gt.shape[::-1]))
            gts.append(gt)
            preds.append(cv2.resize(
                pred.astype(np.uint8), gt.shape[::-1],
                interpolation=cv2.INTER_NEAREST))
            if len(images) == num_images:
                break
    return images, gts, preds


def build_report(work_dir: str,
                 results: Mapping,
                 num_overlays: int = 4,
                 log=print,
                 probe: Optional[Mapping] = None,
                 demo: bool = False,
                 protocol: str = 'paper',
                 leakage: Optional[Mapping] = None) -> Dict[str, str]:
    """Write the paper's tables and figures under ``work_dir/report``.

    Args:
        work_dir: The study's work dir.
        results: ``{task: {backbone: {init: stage3 outputs}}}`` as returned
            by :meth:`MuscleStudy.run`.
        num_overlays: Test images shown in the segmentation figure.
        probe: What :func:`probe_table` probes (``probe.md``), or None.
        demo: Print :data:`DEMO_NOTE` under the tables.
        protocol: The splits the study used (``'paper'`` or
            ``'official'``); the tables and ``protocol.json`` state it with
            the split counts, seed and bootstrap (:func:`study_facts`).
        leakage: Which stage-1 data were used and the leakage audit's
            figures (``MuscleStudy.leakage_info``): a line under the
            tables and ``leakage.json``.

    Returns:
        dict: Name -> path of every file written.
    """
    report_dir = osp.join(work_dir, 'report')
    os.makedirs(report_dir, exist_ok=True)
    written: Dict[str, str] = {}

    metrics = {
        task: {
            bb: {init: out['metrics']
                 for init, out in by_init.items()}
            for bb, by_init in by_bb.items()
        }
        for task, by_bb in results.items()
    }
    baselines = task_baselines(results, protocol)
    facts = study_facts(results, protocol)
    _write_json(osp.join(report_dir, 'protocol.json'), facts)
    written['protocol.json'] = osp.join(report_dir, 'protocol.json')
    for task, by_bb in metrics.items():
        for by_init in by_bb.values():
            by_init['baseline'] = baselines[task]
    _write_json(osp.join(report_dir, 'baselines.json'), baselines)
    written['baselines.json'] = osp.join(report_dir, 'baselines.json')
    if leakage is not None:
        _write_json(osp.join(report_dir, 'leakage.json'), leakage)
        written['leakage.json'] = osp.join(report_dir, 'leakage.json')
    notes = {
        name: facts_notes(facts, name == 'table2') +
        _baseline_notes(results, baselines, tasks) +
        ([DEMO_NOTE] if demo else []) +
        ([leakage_note(leakage)] if leakage is not None else [])
        for name, tasks in (('table2', CLS_TASKS), ('table3', TABLE3_TASKS))
    }
    for name, paths in write_tables(metrics, report_dir, notes=notes,
                                    meta=facts).items():
        written.update({f'{name}.{ext}': p for ext, p in paths.items()})

    for task in CLS_TASKS:
        for bb, by_init in results.get(task, {}).items():
            curves = {
                INIT_NAMES[init]: osp.join(
                    osp.dirname(out['checkpoint']), 'roc.json')
                for init, out in by_init.items()
            }
            out_png = osp.join(report_dir, f'roc_{task}_{bb}.png')
            plot_roc_curves(
                curves, out_png, title=f'{TASK_TITLES[task]}, {bb.upper()}')
            written[f'roc_{task}_{bb}'] = out_png

    for bb, by_init in results.get('lung', {}).items():
        images, gts, preds = None, None, {}
        for init, out in by_init.items():
            images, gts, pred = predict_segmentation(
                out['config'], out['checkpoint'], num_overlays, protocol)
            preds[INIT_NAMES[init]] = pred
        if preds:
            out_png = osp.join(report_dir, f'lung_overlays_{bb}.png')
            plot_seg_overlays(images, gts, preds, out_png)
            written[f'lung_overlays_{bb}'] = out_png

    for stage in sorted(os.listdir(work_dir)):
        for ext in ('json', 'png'):
            src = osp.join(work_dir, stage, f'cl_accuracy_matrix.{ext}')
            if osp.isfile(src):
                dst = osp.join(report_dir, f'forgetting_{stage}.{ext}')
                shutil.copyfile(src, dst)
                written[f'forgetting_{stage}.{ext}'] = dst
    if probe:
        text, raw = probe_table(probe)
        for name, content in (('probe.md', text), ('probe.json', raw)):
            path = osp.join(report_dir, name)
            if name.endswith('.json'):
                _write_json(path, raw)
            else:
                with open(path, 'w') as f:
                    f.write(content)
            written[name] = path
    if any(t in metrics for t in CLS_TASKS):
        log('\n' + to_markdown(
            build_table2(metrics)._replace(notes=notes['table2'])))
    if any(t in metrics for t in TABLE3_TASKS):
        log('\n' + to_markdown(
            build_table3(metrics)._replace(notes=notes['table3'])))
    if probe:
        log('\n' + text)
    log(f'\nReport written to {report_dir}:')
    for name in sorted(written):
        log(f'  {written[name]}')
    return written


def _write_json(path: str, obj) -> None:
    """JSON with NaN written as null."""

    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, float) and math.isnan(x):
            return None
        return x

    with open(path, 'w') as f:
        json.dump(clean(obj), f, indent=2)
