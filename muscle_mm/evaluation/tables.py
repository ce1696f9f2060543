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

Figures beyond the paper's get a small table of their own below the main
one (:attr:`Table.parts`) when some run has them, their columns naming the
set they are computed on: MURA per study with Cohen's kappa, TBX11K on all
the test images (Table 3's TBX columns are then its TB images only, the
paper's figure), lung Dice/mIoU per source. Without them the tables are
the paper's.
"""
import csv
import json
import math
import os
import os.path as osp
import re
from typing import (Callable, Dict, List, Mapping, NamedTuple, Optional,
                    Sequence, Tuple)

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
    the row above, as the paper prints them; ``parts`` are smaller tables of
    the same models printed below it (figures the paper does not report),
    ``notes`` below all; ``name`` names a part's files.
    """
    title: str
    columns: List[str]
    rows: List[List[str]]
    records: List[dict]
    group_columns: int
    notes: Sequence[str] = ()
    parts: Sequence['Table'] = ()
    name: str = ''


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


def format_kappa(value: Optional[float]) -> str:
    """Cohen's kappa as published, a fraction: ``0.705``."""
    return format_value(value, 3)


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


#: A column of a part: header, record key, the figure from a run's metrics,
#: and how the run's metrics print in it (None: the figure, ``digits``).
Figure = Tuple[str, str, Callable[[Mapping], Optional[float]],
               Optional[Callable[[Mapping], str]]]


def _get(name: str) -> Callable[[Mapping], Optional[float]]:
    return lambda m: _lookup(m, name)


def _part(name: str,
          title: str,
          models: Sequence[Tuple[str, str, Mapping]],
          figures: Sequence[Figure],
          digits: int,
          more: Sequence[str] = ()) -> Optional[Table]:
    """A part of the models (``(backbone, pretrain, metrics)``) that have
    one of ``figures`` at least (None when none has); its records also
    hold the figures ``more``."""
    rows, records = [], []
    for backbone, pretrain, m in models:
        values = [get(m) for _, _, get, _ in figures]
        if all(v is None for v in values):
            continue
        rows.append([backbone_name(backbone), pretrain_name(pretrain)] + [
            show(m) if show else format_value(v, digits)
            for v, (_, _, _, show) in zip(values, figures)
        ])
        records.append(
            dict(
                backbone=backbone_name(backbone),
                pretrain=pretrain_name(pretrain),
                **{f[1]: _json_number(v)
                   for f, v in zip(figures, values)},
                **{k: _json_number(_lookup(m, k))
                   for k in more}))
    if not rows:
        return None
    columns = ['Backbones', 'Pre-train'] + [f[0] for f in figures]
    return Table(title, columns, rows, records, 1, name=name)


def _kappa(key: str) -> Callable[[Mapping], str]:
    return lambda m: format_kappa(_lookup(m, key))


def _mura_studies(models, digits: int) -> Optional[Table]:
    """MURA per study (``study_level=True`` of the metric) and kappa."""
    figures: List[Figure] = [
        ('κ (images)', 'kappa', _get('kappa'), _kappa('kappa')),
        ('Acc. (studies)', 'study_accuracy', _get('study_accuracy'), None),
        ('Sen. (studies)', 'study_sensitivity', _get('study_sensitivity'),
         None),
        ('Spe. (studies)', 'study_specificity', _get('study_specificity'),
         None),
        ('AUC (95%CI) (studies)', 'study_auc', _get('study_auc'),
         lambda m: format_auc_ci(
             *(_lookup(m, k) for k in ('study_auc', 'study_auc_ci_low',
                                       'study_auc_ci_high')), digits)),
        ('κ (studies)', 'study_kappa', _get('study_kappa'),
         _kappa('study_kappa')),
    ]
    return _part(
        'mura_studies', 'MURA per study (abnormal when the mean probability '
        "of its images is >= 0.5, as the MURA paper; Cohen's κ as a "
        "fraction, the leaderboard's figure)", models, figures, digits,
        more=('study_auc_ci_low', 'study_auc_ci_high', 'study_count'))


def _tb_only(name: str) -> Callable[[Mapping], Optional[float]]:
    """TBX11K's figure on its TB images: ``<name>_tb`` when the metric saw
    other images too, else ``<name>`` (every image seen was a TB image)."""

    def get(m: Mapping) -> Optional[float]:
        value = _lookup(m, f'{name}_tb')
        return _lookup(m, name) if value is None else value

    return get


def _lung_sources(models) -> List[str]:
    """Sources with both ``Dice_<source>`` and ``mIoU_<source>`` in some
    run's metrics (``LungSegMetric``), sorted."""
    found = set()
    for _, _, m in models:
        for key in m:
            leaf = key.rsplit('/', 1)[-1]
            source = leaf[len('Dice_'):]
            if (leaf.startswith('Dice_') and source != 'pooled'
                    and _lookup(m, f'mIoU_{source}') is not None):
                found.add(source)
    return sorted(found)


def build_table2(results: Mapping, digits: int = 2) -> Table:
    """Table 2: Pneumonia and MURA, Acc./Sen./Spe./AUC (95%CI)."""
    columns = [
        'Datasets', 'Backbones', 'Pre-train', 'Acc.', 'Sen.', 'Spe.',
        'AUC (95%CI)'
    ]
    rows, records, mura = [], [], []
    for task_key, task_name in TABLE2_TASKS.items():
        by_backbone = _task(results, task_key)
        for backbone in by_backbone:
            by_pretrain = by_backbone[backbone]
            for pretrain in _sorted_pretrains(list(by_pretrain)):
                m = by_pretrain[pretrain]
                if task_key == 'mura':
                    mura.append((backbone, pretrain, m))
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
    part = _mura_studies(mura, digits)
    return Table(
        'Table 2. Pneumonia and MURA classification',
        columns,
        rows,
        records,
        2,
        parts=(part, ) if part else ())


def build_table3(results: Mapping, digits: int = 2) -> Table:
    """Table 3: Lung Dice/mIoU and TBX mAP/AP_Active/AP_Latent.

    The TBX columns are the TB images' figures (the paper's); when the
    runs also scored TBX11K's other images (``tbx/mAP_tb`` beside
    ``tbx/mAP``), their headers say so and a part gives the all-images
    figures. Lung Dice/mIoU per source get a part of their own."""
    lung, tbx = _task(results, 'lung'), _task(results, 'tbx')
    backbones = list(dict.fromkeys([*lung, *tbx]))
    rows, records, segs, dets = [], [], [], []
    for backbone in backbones:
        pretrains = list(
            dict.fromkeys([*lung.get(backbone, {}), *tbx.get(backbone, {})]))
        for pretrain in _sorted_pretrains(pretrains):
            seg = lung.get(backbone, {}).get(pretrain)
            det = tbx.get(backbone, {}).get(pretrain)
            segs += [(backbone, pretrain, seg)] if seg is not None else []
            dets += [(backbone, pretrain, det)] if det is not None else []
            seg, det = seg or {}, det or {}
            values = [
                _lookup(seg, 'Dice'),
                _lookup(seg, 'mIoU'),
                _tb_only('mAP')(det),
                _tb_only('AP_active')(det),
                _tb_only('AP_latent')(det)
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
    columns = ['Backbones', 'Pre-train', 'Lung Dice', 'Lung mIoU']
    tbx_columns = ['TBX mAP', 'TBX AP_Active', 'TBX AP_Latent']
    all_images = any(_lookup(m, 'mAP_tb') is not None for _, _, m in dets)
    if all_images:
        tbx_columns = [f'{c} (TB images)' for c in tbx_columns]
    parts = [
        _part(
            'lung_sources', 'Lung segmentation per source (the test '
            'images of each)', segs,
            [(f'{name} ({source})', f'lung_{name.lower()}_{source.lower()}',
              _get(f'{name}_{source}'), None)
             for source in _lung_sources(segs) for name in ('Dice', 'mIoU')],
            digits),
        _part(
            'tbx_all_images', 'TB detection on all the test images (boxes '
            'on healthy and sick non-TB images are false positives; the TBX '
            'columns above: TB images only)', dets,
            [(f'{header} (all images)', f'tbx_{name.lower()}_all',
              _get(name), None)
             for name, header in (('mAP', 'mAP'), ('AP_active', 'AP_Active'),
                                  ('AP_latent', 'AP_Latent'))],
            digits) if all_images else None
    ]
    return Table(
        'Table 3. Lung segmentation and TB detection',
        columns + tbx_columns,
        rows,
        records,
        1,
        parts=tuple(p for p in parts if p))


def to_markdown(table: Table) -> str:
    """GitHub Markdown in the paper's layout (repeated groups blanked),
    its parts below it, then its notes."""
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
    for part in table.parts:
        lines += [''] + to_markdown(part._replace(notes=())).splitlines()
    if table.notes:
        lines += [''] + list(table.notes)
    return '\n'.join(lines) + '\n'


def _write_csv(table: Table, path: str) -> None:
    with open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(table.columns)
        writer.writerows(table.rows)


def write_table(table: Table,
                out_prefix: str,
                meta: Optional[Mapping] = None) -> Dict[str, str]:
    """Write ``<out_prefix>.md`` (parts included), ``.csv`` (every cell
    filled; each part as ``<out_prefix>_<part name>.csv``, key
    ``'<part name>.csv'``) and ``.json`` (raw numbers, ``null`` when
    missing; the parts' under ``parts``; ``meta``, e.g. the study's
    protocol and split counts, under its key ``meta``); return the paths
    by format."""
    out_dir = osp.dirname(out_prefix)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    paths = {ext: f'{out_prefix}.{ext}' for ext in ('md', 'csv', 'json')}
    with open(paths['md'], 'w', encoding='utf-8') as f:
        f.write(to_markdown(table))
    _write_csv(table, paths['csv'])
    for part in table.parts:
        paths[f'{part.name}.csv'] = f'{out_prefix}_{part.name}.csv'
        _write_csv(part, paths[f'{part.name}.csv'])
    parts = [
        dict(name=p.name, title=p.title, columns=p.columns, rows=p.records)
        for p in table.parts
    ]
    with open(paths['json'], 'w', encoding='utf-8') as f:
        json.dump(
            dict(
                title=table.title,
                columns=table.columns,
                rows=table.records,
                notes=list(table.notes),
                **({'parts': parts} if parts else {}),
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
