# Copyright (c) muscle_mm contributors. All rights reserved.
"""Table 2 and Table 3 of the MUSCLE paper from evaluation results.

``results`` is ``{task: {backbone: {pretrain: metrics}}}`` where ``metrics``
is what the metrics of :mod:`muscle_mm.evaluation.metrics` return, with or
without their prefix (``'binary/auc'`` or ``'auc'``), in percent. Task keys
are ``pneumonia``, ``mura`` (Table 2), ``lung`` and ``tbx`` (Table 3), in any
case; backbones such as ``r18`` / ``resnet50`` print as ``ResNet-18``; the
pre-training keys of :data:`muscle_mm.metainfo.INITS` (also ``muscle--`` and
``md-moco``) print and sort as in the paper; ``baseline`` (the trivial
predictor of :mod:`muscle_mm.evaluation.baselines`) prints first, as
``Trivial baseline``. A missing figure prints as ``-``.
"""
import csv
import json
import math
import os
import os.path as osp
import re
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence

from muscle_mm.metainfo import CLS_TASKS, INIT_NAMES, INITS, TASK_TITLES

# display name of each known pre-training key (``muscle_mm.metainfo.INITS``,
# ``_`` read as ``-``) and of the spellings the paper's text uses
PRETRAIN_NAMES = {
    'baseline': 'Trivial baseline',
    **{key.replace('_', '-'): name
       for key, name in INIT_NAMES.items()},
    'md-moco': INIT_NAMES['mdmoco'],
    'muscle--': INIT_NAMES['muscle_minus'],
}
PRETRAIN_ORDER = ['Trivial baseline'] + [INIT_NAMES[key] for key in INITS]
TABLE2_TASKS = {task: TASK_TITLES[task] for task in CLS_TASKS}


class Table(NamedTuple):
    """A table: ``rows`` of printed cells, ``records`` of raw numbers.

    ``group_columns`` leading columns are blanked in Markdown when they repeat
    the row above, as the paper prints them; ``notes`` are printed below it.
    """
    title: str
    columns: List[str]
    rows: List[List[str]]
    records: List[dict]
    group_columns: int
    notes: Sequence[str] = ()


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_value(value: Optional[float], digits: int = 2) -> str:
    """``91.11``; ``-`` for a missing or NaN figure."""
    return '-' if _is_missing(value) else f'{value:.{digits}f}'


def format_auc_ci(auc: Optional[float],
                  low: Optional[float],
                  high: Optional[float],
                  digits: int = 2) -> str:
    """``96.58 (95.09-97.81)`` as the paper's AUC (95%CI) column."""
    if _is_missing(auc):
        return '-'
    if _is_missing(low) or _is_missing(high):
        return format_value(auc, digits)
    return (f'{auc:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})')


def _lookup(metrics: Mapping, name: str) -> Optional[float]:
    """``metrics[name]`` or ``metrics['<prefix>/name']``."""
    if name in metrics:
        return metrics[name]
    for key, value in metrics.items():
        if key.rsplit('/', 1)[-1] == name:
            return value
    return None


def backbone_name(key: str) -> str:
    """``r18`` / ``resnet18`` / ``ResNet-18`` → ``ResNet-18``."""
    match = re.fullmatch(r'(?:r|resnet)-?(\d+)', key.strip().lower())
    return f'ResNet-{match.group(1)}' if match else key


def pretrain_name(key: str) -> str:
    """``mdmoco`` → ``MD-MoCo``; unknown keys are kept as given."""
    return PRETRAIN_NAMES.get(key.strip().lower().replace('_', '-'), key)


def _sorted_pretrains(keys: Sequence[str]) -> List[str]:
    rank = {name: i for i, name in enumerate(PRETRAIN_ORDER)}
    return sorted(keys, key=lambda k: rank.get(pretrain_name(k), len(rank)))


def _task(results: Mapping, name: str) -> Mapping:
    for key, value in results.items():
        if key.lower() == name:
            return value
    return {}


def _json_number(value) -> Optional[float]:
    return None if _is_missing(value) else float(value)


def build_table2(results: Mapping, digits: int = 2) -> Table:
    """Table 2: Pneumonia and MURA, Acc./Sen./Spe./AUC (95%CI)."""
    columns = [
        'Datasets', 'Backbones', 'Pre-train', 'Acc.', 'Sen.', 'Spe.',
        'AUC (95%CI)'
    ]
    rows, records = [], []
    for task_key, task_name in TABLE2_TASKS.items():
        by_backbone = _task(results, task_key)
        for backbone in by_backbone:
            by_pretrain = by_backbone[backbone]
            for pretrain in _sorted_pretrains(list(by_pretrain)):
                m = by_pretrain[pretrain]
                acc, sen, spe, auc, low, high = (
                    _lookup(m, k)
                    for k in ('accuracy', 'sensitivity', 'specificity', 'auc',
                              'auc_ci_low', 'auc_ci_high'))
                rows.append([
                    task_name,
                    backbone_name(backbone),
                    pretrain_name(pretrain),
                    format_value(acc, digits),
                    format_value(sen, digits),
                    format_value(spe, digits),
                    format_auc_ci(auc, low, high, digits)
                ])
                records.append(
                    dict(
                        dataset=task_name,
                        backbone=backbone_name(backbone),
                        pretrain=pretrain_name(pretrain),
                        accuracy=_json_number(acc),
                        sensitivity=_json_number(sen),
                        specificity=_json_number(spe),
                        auc=_json_number(auc),
                        auc_ci_low=_json_number(low),
                        auc_ci_high=_json_number(high)))
    return Table('Table 2. Pneumonia and MURA classification', columns, rows,
                 records, 2)


def build_table3(results: Mapping, digits: int = 2) -> Table:
    """Table 3: Lung Dice/mIoU and TBX mAP/AP_Active/AP_Latent."""
    columns = [
        'Backbones', 'Pre-train', 'Lung Dice', 'Lung mIoU', 'TBX mAP',
        'TBX AP_Active', 'TBX AP_Latent'
    ]
    lung, tbx = _task(results, 'lung'), _task(results, 'tbx')
    backbones = list(dict.fromkeys([*lung, *tbx]))
    rows, records = [], []
    for backbone in backbones:
        pretrains = list(
            dict.fromkeys([*lung.get(backbone, {}), *tbx.get(backbone, {})]))
        for pretrain in _sorted_pretrains(pretrains):
            seg = lung.get(backbone, {}).get(pretrain, {})
            det = tbx.get(backbone, {}).get(pretrain, {})
            values = [
                _lookup(seg, 'Dice'),
                _lookup(seg, 'mIoU'),
                _lookup(det, 'mAP'),
                _lookup(det, 'AP_active'),
                _lookup(det, 'AP_latent')
            ]
            rows.append([backbone_name(backbone),
                         pretrain_name(pretrain)] +
                        [format_value(v, digits) for v in values])
            records.append(
                dict(
                    backbone=backbone_name(backbone),
                    pretrain=pretrain_name(pretrain),
                    **{
                        k: _json_number(v)
                        for k, v in zip(('lung_dice', 'lung_miou', 'tbx_map',
                                         'tbx_ap_active',
                                         'tbx_ap_latent'), values)
                    }))
    return Table('Table 3. Lung segmentation and TB detection', columns, rows,
                 records, 1)


def to_markdown(table: Table) -> str:
    """GitHub Markdown in the paper's layout (repeated groups blanked)."""
    lines = [
        f'**{table.title}**', '', '| ' + ' | '.join(table.columns) + ' |',
        '|' + '|'.join(['---'] * len(table.columns)) + '|'
    ]
    previous: List[str] = []
    for row in table.rows:
        shown = list(row)
        for i in range(table.group_columns):
            if previous[:i + 1] == row[:i + 1]:
                shown[i] = ''
        previous = row
        lines.append('| ' + ' | '.join(shown) + ' |')
    if table.notes:
        lines += [''] + list(table.notes)
    return '\n'.join(lines) + '\n'


def write_table(table: Table,
                out_prefix: str,
                meta: Optional[Mapping] = None) -> Dict[str, str]:
    """Write ``<out_prefix>.md``, ``.csv`` (every cell filled) and ``.json``
    (raw numbers, ``null`` when missing; ``meta``, e.g. the study's
    protocol and split counts, under its key ``meta``); return the paths
    by format."""
    out_dir = osp.dirname(out_prefix)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    paths = {ext: f'{out_prefix}.{ext}' for ext in ('md', 'csv', 'json')}
    with open(paths['md'], 'w') as f:
        f.write(to_markdown(table))
    with open(paths['csv'], 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(table.columns)
        writer.writerows(table.rows)
    with open(paths['json'], 'w') as f:
        json.dump(
            dict(
                title=table.title,
                columns=table.columns,
                rows=table.records,
                notes=list(table.notes),
                **({'meta': dict(meta)} if meta else {})),
            f,
            indent=2)
    return paths


def write_tables(results: Mapping,
                 out_dir: str,
                 digits: int = 2,
                 notes: Optional[Mapping[str, Sequence[str]]] = None,
                 meta: Optional[Mapping] = None
                 ) -> Dict[str, Dict[str, str]]:
    """Write Table 2 and Table 3 under ``out_dir`` as ``table2.*`` and
    ``table3.*``; return ``{'table2': {'md': path, ...}, 'table3': ...}``.

    ``notes`` (``{'table2': [lines], 'table3': [lines]}``) are printed
    below each table; ``meta`` goes into each table's json."""
    notes = notes or {}
    tables = dict(
        table2=build_table2(results, digits),
        table3=build_table3(results, digits))
    return {
        name: write_table(
            table._replace(notes=tuple(notes.get(name, ()))),
            osp.join(out_dir, name), meta)
        for name, table in tables.items()
    }
