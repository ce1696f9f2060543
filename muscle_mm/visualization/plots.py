# Copyright (c) muscle_mm contributors. All rights reserved.
"""Figures of the MUSCLE paper: ROC curves (Fig. 2), lung overlays (Fig. 3)
and the forgetting / accuracy matrix of stage 2.

Figures are drawn on ``matplotlib.figure.Figure`` objects, which render with
the Agg canvas without touching pyplot's global backend or state, so they
are safe in headless runs and inside training processes.
"""
import json
import math
import os
import os.path as osp
from typing import Mapping, Optional, Sequence, Union

import numpy as np
from matplotlib.figure import Figure

from muscle_mm.evaluation.tables import format_auc_ci

RocCurve = Union[str, Mapping]


def _save(fig: Figure, out_png: str) -> str:
    out_dir = osp.dirname(out_png)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    fig.savefig(out_png, dpi=150, bbox_inches='tight')
    return out_png


def _load_roc(name: str, curve: RocCurve) -> Mapping:
    if isinstance(curve, str):
        if not osp.isfile(curve):
            raise FileNotFoundError(
                f'ROC file of {name!r} not found: {curve} (written by '
                'BinaryClassificationMetric(out_dir=..., roc_file=...))')
        with open(curve) as f:
            curve = json.load(f)
    for key in ('fpr', 'tpr', 'auc'):
        if key not in curve:
            raise KeyError(f'ROC curve of {name!r} has no {key!r}; expected '
                           'the JSON of BinaryClassificationMetric (fpr, '
                           'tpr, thresholds, auc, ci)')
    if len(curve['fpr']) != len(curve['tpr']):
        raise ValueError(f'ROC curve of {name!r}: fpr and tpr differ in '
                         f"length ({len(curve['fpr'])} vs "
                         f"{len(curve['tpr'])})")
    return curve


def _percent(value) -> float:
    return float('nan') if value is None else 100. * value


def roc_legend_label(name: str, curve: Mapping) -> str:
    """``MUSCLE: AUC (95% CI) 99.61 (99.32-99.83)``, from a ROC JSON whose
    AUC and CI are fractions."""
    low, high = curve.get('ci') or (None, None)
    text = format_auc_ci(_percent(curve['auc']), _percent(low), _percent(high))
    return f'{name}: AUC (95% CI) {"undefined" if text == "-" else text}'


def plot_roc_curves(curves: Mapping[str, RocCurve],
                    out_png: str,
                    title: Optional[str] = None) -> str:
    """ROC curves of several models on one task, like the paper's Fig. 2.

    Args:
        curves: ``{name: roc}`` where ``roc`` is the dict or the path of the
            JSON written by ``BinaryClassificationMetric``.
        out_png: Output image path.
        title: Axes title, e.g. ``'Pneumonia, ResNet-18'``.

    Returns:
        str: ``out_png``.
    """
    if not curves:
        raise ValueError('plot_roc_curves needs at least one curve')
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    for name, curve in curves.items():
        curve = _load_roc(name, curve)
        fpr = [math.nan if v is None else v for v in curve['fpr']]
        tpr = [math.nan if v is None else v for v in curve['tpr']]
        ax.plot(fpr, tpr, lw=1.5, label=roc_legend_label(name, curve))
    ax.plot([0, 1], [0, 1], ls='--', color='grey', lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect('equal')
    ax.set_xlabel('1 - Specificity (false positive rate)')
    ax.set_ylabel('Sensitivity (true positive rate)')
    if title:
        ax.set_title(title)
    ax.legend(loc='lower right', fontsize='small')
    return _save(fig, out_png)


def _as_gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    dtype = image.dtype
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3].mean(-1).astype(dtype)
    elif image.ndim == 3 and image.shape[0] in (1, 3):
        image = image.mean(0).astype(dtype)
    if image.ndim != 2:
        raise ValueError('images must be HxW, HxWxC or CxHxW arrays, got '
                         f'shape {image.shape}')
    return image


def _draw_overlay(ax, image, gt, pred, where: str) -> None:
    image = _as_gray(image)
    gt, pred = np.asarray(gt).squeeze(), np.asarray(pred).squeeze()
    if not gt.shape == pred.shape == image.shape:
        raise ValueError(f'{where}: image {image.shape}, ground truth '
                         f'{gt.shape} and prediction {pred.shape} must have '
                         'the same height and width')
    # 8-bit radiographs keep their gray levels; others are auto-scaled
    limits = dict(vmin=0, vmax=255) if image.dtype == np.uint8 else {}
    ax.imshow(image, cmap='gray', **limits)
    red = np.zeros(pred.shape + (4, ))
    red[pred > 0] = (1., 0., 0., 0.5)
    ax.imshow(red)
    if (gt > 0).any() and not (gt > 0).all():
        ax.contour(
            (gt > 0).astype(float),
            levels=[0.5],
            colors='lime',
            linewidths=1.2)
    ax.set_axis_off()


def plot_seg_overlays(images: Sequence[np.ndarray],
                      gts: Sequence[np.ndarray],
                      preds: Union[Sequence[np.ndarray],
                                   Mapping[str, Sequence[np.ndarray]]],
                      out_png: str,
                      titles: Optional[Sequence[str]] = None) -> str:
    """Lung masks over the radiographs, like the paper's Fig. 3: green line =
    ground-truth contour, red area = prediction.

    Args:
        images: Radiographs (HxW, HxWxC or CxHxW).
        gts: Ground-truth masks (HxW, lung > 0), one per image.
        preds: Predicted masks, one per image; or ``{method: masks}`` to
            compare methods, one row per image and one column per method.
        out_png: Output image path.
        titles: Panel titles, one per image (single ``preds`` only).

    Returns:
        str: ``out_png``.
    """
    if isinstance(preds, Mapping):
        methods = dict(preds)
    else:
        methods = {None: preds}
    n = len(images)
    if n == 0:
        raise ValueError('plot_seg_overlays needs at least one image')
    if len(gts) != n:
        raise ValueError(f'{n} images but {len(gts)} ground-truth masks')
    for method, masks in methods.items():
        if len(masks) != n:
            raise ValueError(f'{n} images but {len(masks)} predicted masks' +
                             (f' for {method!r}' if method else ''))
    if titles is not None and len(titles) != n:
        raise ValueError(f'{n} images but {len(titles)} titles')

    single = None in methods
    nrows, ncols = (1, n) if single else (n, len(methods))
    fig = Figure(figsize=(2.5 * ncols, 2.5 * nrows))
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False))
    for col, (method, masks) in enumerate(methods.items()):
        for i in range(n):
            ax = axes[0, i] if single else axes[i, col]
            where = f'image {i}' + (f' of {method!r}' if method else '')
            _draw_overlay(ax, images[i], gts[i], masks[i], where)
            if single and titles is not None:
                ax.set_title(titles[i], fontsize='small')
            elif not single and i == 0:
                ax.set_title(method, fontsize='small')
    return _save(fig, out_png)


def plot_matrix_heatmap(matrix: Union[np.ndarray, Sequence[Sequence[float]]],
                        row_labels: Sequence[str],
                        col_labels: Sequence[str],
                        out_png: str,
                        title: Optional[str] = None,
                        xlabel: Optional[str] = None,
                        ylabel: Optional[str] = None,
                        fmt: str = '{:.2f}',
                        cmap: str = 'viridis') -> str:
    """Annotated heat map, e.g. stage 2's forgetting matrix (rows: after
    training task i, columns: evaluated on task j). NaN cells stay blank.

    Returns:
        str: ``out_png``.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f'matrix must be 2-D, got shape {matrix.shape}')
    if matrix.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f'matrix of shape {matrix.shape} does not match '
            f'{len(row_labels)} row labels x {len(col_labels)} column '
            'labels')
    rows, cols = matrix.shape
    fig = Figure(figsize=(1.2 + 0.9 * cols, 1.0 + 0.6 * rows))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, aspect='auto')
    fig.colorbar(image, ax=ax)
    ax.set_xticks(
        range(cols), labels=list(col_labels), rotation=30, ha='right')
    ax.set_yticks(range(rows), labels=list(row_labels))
    finite = matrix[np.isfinite(matrix)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(rows):
        for j in range(cols):
            if np.isfinite(matrix[i, j]):
                ax.text(
                    j,
                    i,
                    fmt.format(matrix[i, j]),
                    ha='center',
                    va='center',
                    fontsize='small',
                    color='black' if matrix[i, j] > middle else 'white')
    if title:
        ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    return _save(fig, out_png)
