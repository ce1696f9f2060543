# Copyright (c) muscle_mm contributors. All rights reserved.
"""TB detection figures of Table 3 (mAP, AP_active, AP_latent at IoU 0.5)."""
import contextlib
import io
import json
import os
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from muscle_mm.registry import METRICS
from .score_checks import check_finite_scores

# TBX11K's category names and the paper's names for them (Table 3)
TBX_ALIASES = {
    'ActiveTuberculosis': 'active',
    'ObsoletePulmonaryTuberculosis': 'latent',
}


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, 'tensor'):  # mmdet BaseBoxes, e.g. HorizontalBoxes
        value = value.tensor
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _xyxy_to_xywh(box) -> List[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def _quiet(fn, *args):
    """pycocotools prints progress to stdout; keep the logs readable."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def _load_coco_gt(ann_file: str) -> COCO:
    """pycocotools' ``COCO`` of ``ann_file``; a file that is no COCO json
    (truncated, not a dict, no ``images``/``categories``) raises naming it,
    not pycocotools' bare ``JSONDecodeError``/``AssertionError``."""
    expected = ('expected the COCO json of a split (a dict with "images", '
                '"annotations" and "categories"; TBX11K: muscle_splits/'
                'test.json of make_splits.py)')
    try:
        with open(ann_file, encoding='utf-8') as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f'TBDetectionMetric: ann_file {ann_file} is not '
                         f'valid JSON ({e}; a truncated or partly written '
                         f'file?); {expected}') from None
    if isinstance(data, dict):
        lacks = [
            k for k in ('images', 'categories')
            if not isinstance(data.get(k), list)
        ]
        found = sorted(data)
    else:
        lacks, found = ['images', 'categories'], type(data).__name__
    if lacks:
        raise ValueError(f'TBDetectionMetric: ann_file {ann_file} has no '
                         f'list {lacks} (found {found}); {expected}')
    coco = COCO()
    coco.dataset = data
    _quiet(coco.createIndex)
    return coco


def _same_image(img_path: str, file_name: str) -> bool:
    """Whether ``img_path`` is ``file_name`` (relative, or a bare name as in
    TBX11K's jsons)."""
    path = osp.normpath(img_path).replace(osp.sep, '/')
    name = osp.normpath(file_name).replace(osp.sep, '/')
    return path == name or path.endswith('/' + name)


def write_coco_results(path: str, dets: List[dict], coco_gt: COCO) -> None:
    """Detections as a COCO results json (``image_id``, ``category_id``,
    ``bbox`` ``[x, y, w, h]`` in original pixels, ``score``; plus the
    image's ``file_name`` where known), the format mmdet's ``format_only``
    writes and the TBX11K repository's test command submits (its
    challenge's own page is not stored here). Category ids are TBX11K's (1
    ActiveTuberculosis, 2 ObsoletePulmonaryTuberculosis), image ids those
    of the evaluated split (``make_splits.py``'s json, or ``ann_file``)."""
    names = {
        im['id']: im.get('file_name')
        for im in coco_gt.dataset['images']
    }
    out = []
    for d in dets:
        item = dict(
            image_id=d['image_id'],
            category_id=d['category_id'],
            bbox=[round(float(v), 2) for v in d['bbox']],
            score=round(float(d['score']), 5))
        if names.get(d['image_id']):
            item['file_name'] = names[d['image_id']]
        out.append(item)
    folder = osp.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(out, f)


def _coco_from_dict(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    _quiet(coco.createIndex)
    return coco


@METRICS.register_module()
class TBDetectionMetric(BaseMetric):
    """AP at IoU 0.5, overall and per class, for TB detection (TBX11K).

    The figures of the paper's Table 3 (MUSCLE, Sec. 3): ``AP_active``,
    ``AP_latent`` and their mean ``mAP``, in **percent**. As TBX11K's own
    evaluation, the APs come from pycocotools' ``COCOeval`` (bbox, IoU
    threshold 0.5, 101-point interpolated precision, 100 detections per
    image, all areas), on the images this metric has seen.
    Keys: ``tbx/{AP_active, AP_latent, mAP}``.

    These are computed on *all* the images seen: a box on a healthy or sick
    (non-TB) image is a false positive, as TBX11K's "all X-rays"
    evaluation (the official protocol's test set, TBX11K's val, holds all
    kinds). When some seen images are not TB images (no ground-truth box),
    the same figures on the TB images alone, the paper's (MUSCLE) and
    TBX11K's "only TB" evaluation, are added as ``tbx/{AP_active_tb,
    AP_latent_tb, mAP_tb}``; on the paper's TB-only splits both coincide.

    Ground truth comes from the data samples (as the configs do, so the
    dataset's ``uncertain_tb`` alone decides what TBX11K's uncertain boxes
    are): their raw ``instances`` (as mmdet's ``CocoMetric``) or their
    ``gt_instances`` / ``ignored_instances`` in original-image coordinates
    (mmdet's test pipelines load annotations after ``Resize``); ignored boxes
    become COCO ``iscrowd`` boxes. Or from ``ann_file``, the COCO json of
    the same split, as ``make_splits.py`` writes them (classes matched to
    its categories by name, samples by ``img_id``, each checked against the
    ``file_name`` of its id), refused when the dataset has an
    ``uncertain_tb`` that the file's ``info['uncertain_tb']`` is not.

    Defined values for degenerate sets: no detections at all give AP 0 for
    every class with ground truth (the result json is built here because
    ``COCO.loadRes`` fails on an empty list); a class without any ground-truth
    box has no AP (NaN, with a warning) and is left out of ``mAP``, as in
    COCO.

    Args:
        ann_file (str, optional): COCO ground truth of the evaluated split,
            e.g. ``'data/TBX11K/muscle_splits/test.json'`` for the test
            split (``make_splits.py`` writes ``{train,val,test}.json``
            there). Defaults to None.
        classes (Sequence[str], optional): Class names in label order;
            defaults to ``dataset_meta['classes']``.
        class_aliases (dict): Short names used in the metric keys
            (``AP_<alias>``). Defaults to TBX11K's active / latent.
        iou_thr (float): IoU threshold. Defaults to 0.5.
        max_dets (int): Detections kept per image. Defaults to 100.
        results_file (str, optional): Also write the detections there as a
            COCO results json (:func:`write_coco_results`), e.g. for the
            TBX11K challenge. Defaults to None.
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to
            'tbx'.
    """
    default_prefix: Optional[str] = 'tbx'

    def __init__(self,
                 ann_file: Optional[str] = None,
                 classes: Optional[Sequence[str]] = None,
                 class_aliases: Optional[Dict[str, str]] = None,
                 iou_thr: float = 0.5,
                 max_dets: int = 100,
                 results_file: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ann_file = ann_file
        self.classes = list(classes) if classes is not None else None
        self.class_aliases = dict(TBX_ALIASES if class_aliases is
                                  None else class_aliases)
        self.iou_thr = iou_thr
        self.max_dets = max_dets
        self.results_file = results_file
        self._coco_gt: Optional[COCO] = None
        if ann_file is not None:
            if not osp.isfile(ann_file):
                raise FileNotFoundError(
                    f'TBDetectionMetric: ann_file {ann_file!r} does not '
                    'exist; give the COCO json of the test split (TBX11K: '
                    'muscle_splits/test.json of make_splits.py) or leave '
                    'ann_file=None to take the ground truth from the data '
                    'samples')
            self._coco_gt = _load_coco_gt(ann_file)

    @property
    def dataset_meta(self) -> Optional[dict]:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict) -> None:
        # checked here, when the runner builds the loop, not after inference
        self._dataset_meta = dataset_meta
        self._check_uncertain_tb()

    def _check_uncertain_tb(self) -> None:
        """The ann_file must treat the uncertain boxes as the dataset does."""
        wanted = (self._dataset_meta or {}).get('uncertain_tb')
        if self._coco_gt is None or wanted is None:
            return
        info = self._coco_gt.dataset.get('info')
        found = info.get('uncertain_tb') if isinstance(info, dict) else None
        if found == wanted:
            return
        what = (f'was written with uncertain_tb={found!r}' if found else
                'does not record how it treats the uncertain boxes (no '
                "info['uncertain_tb'])")
        raise ValueError(
            f'TBDetectionMetric: ann_file {self.ann_file} {what}, but the '
            f'dataset it evaluates has uncertain_tb={wanted!r} (boxes of '
            "TBX11K's uncertain PulmonaryTuberculosis class: 'active' counts "
            "them as active TB, 'ignore' ignores them), so the metric would "
            'score against other ground truth than the dataset holds. Leave '
            'ann_file=None to take the ground truth from the dataset (as '
            'configs/_base_/datasets/tbx11k.py does), or rewrite the file '
            'with `python tools/dataset_converters/make_splits.py '
            f'--data-root DATA --datasets tbx11k --uncertain-tb {wanted}`.')

    # ------------------------------------------------------------------ #
    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep predictions (xyxy, original scale) and, without
        ``ann_file``, the ground truth of each image."""
        for sample in data_samples:
            where = sample.get('img_path', 'a sample')
            if 'pred_instances' not in sample:
                raise KeyError(
                    'TBDetectionMetric needs `pred_instances` in each data '
                    f'sample (mmdet DetDataSample), found keys '
                    f'{sorted(sample)} for {where}')
            pred = sample['pred_instances']
            result = dict(
                img_id=sample.get('img_id'),
                img_path=where,
                file=sample.get('img_path'),
                bboxes=_to_numpy(pred['bboxes']).reshape(-1, 4),
                scores=_to_numpy(pred['scores']).reshape(-1),
                labels=_to_numpy(pred['labels']).reshape(-1).astype(int))
            if self._coco_gt is None:
                result['gt'] = self._gt_from_sample(sample, where)
            self.results.append(result)

    @staticmethod
    def _gt_from_sample(sample: dict, where: str) -> dict:
        height, width = sample.get('ori_shape', (0, 0))[:2]
        boxes, labels, ignore = [], [], []
        if 'instances' in sample:
            for inst in sample['instances']:
                boxes.append(inst['bbox'])
                labels.append(inst['bbox_label'])
                ignore.append(bool(inst.get('ignore_flag', 0)))
        elif 'gt_instances' in sample:
            for key, flag in (('gt_instances', False), ('ignored_instances',
                                                        True)):
                insts = sample.get(key) or {}
                if 'bboxes' not in insts:
                    continue
                b = _to_numpy(insts['bboxes']).reshape(-1, 4)
                boxes.extend(b.tolist())
                labels.extend(_to_numpy(insts['labels']).reshape(-1).tolist())
                ignore.extend([flag] * len(b))
        else:
            raise KeyError(
                f'{where}: without ann_file, TBDetectionMetric takes the '
                'ground truth from `instances` or `gt_instances` of the data '
                'sample, and neither is there; load annotations in the test '
                'pipeline or give ann_file')
        return dict(
            width=int(width),
            height=int(height),
            bboxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
            labels=np.asarray(labels, dtype=int),
            ignore=np.asarray(ignore, dtype=bool))

    # ------------------------------------------------------------------ #
    def _class_names(self) -> List[str]:
        names = self.classes or (self.dataset_meta or {}).get('classes')
        if not names:
            raise ValueError('TBDetectionMetric needs the class names: set '
                             '`classes` or use a dataset with '
                             "metainfo['classes']")
        return list(names)

    def _build_gt(self, results: list, names: List[str]):
        """COCO ground truth, the processed image ids and label→cat id."""
        if self._coco_gt is not None:
            coco = self._coco_gt
            by_name = {c['name']: c['id'] for c in coco.dataset['categories']}
            missing = [n for n in names if n not in by_name]
            if missing:
                raise ValueError(
                    f'classes {missing} are not categories of {self.ann_file}'
                    f' (it has {sorted(by_name)})')
            cat_ids = [by_name[n] for n in names]
            img_ids = []
            for res in results:
                if res['img_id'] not in coco.imgs:
                    raise KeyError(
                        f"{res['img_path']}: img_id {res['img_id']!r} is not "
                        f'an image of {self.ann_file}; the test dataset and '
                        'ann_file must be the same split')
                name = coco.imgs[res['img_id']].get('file_name')
                if not res['file'] or not name:
                    raise ValueError(
                        f"{res['img_path']}: cannot tell whether img_id "
                        f"{res['img_id']!r} is this image in {self.ann_file}"
                        f" (the sample's img_path is {res['file']!r}, the "
                        f"file's file_name is {name!r}); with ann_file each "
                        'sample needs its img_path and each image of the '
                        'file its file_name, else ids of another split '
                        'would be scored silently')
                if not _same_image(res['file'], name):
                    raise ValueError(
                        f"{res['img_path']}: img_id {res['img_id']!r} is "
                        f'{name!r} in {self.ann_file}, not this image; the '
                        'test dataset and ann_file must be the same split and '
                        'give the same ids to the same images (use the json '
                        "of the dataloader's split that make_splits.py "
                        'wrote, e.g. muscle_splits/test.json for the test '
                        "split, not TBX11K's own jsons, whose ids "
                        'TBX11KDataset renumbers; or ann_file=None)')
                img_ids.append(res['img_id'])
            return coco, img_ids, cat_ids

        cat_ids = list(range(1, len(names) + 1))
        images, annotations = [], []
        for idx, res in enumerate(results):
            img_id = res['img_id'] if res['img_id'] is not None else idx
            gt = res['gt']
            images.append(
                dict(id=img_id, width=gt['width'], height=gt['height']))
            for box, label, ign in zip(gt['bboxes'], gt['labels'],
                                       gt['ignore']):
                if not 0 <= label < len(names):
                    raise ValueError(f"{res['img_path']}: ground-truth label "
                                     f'{label} is not a class of {names}')
                x, y, w, h = _xyxy_to_xywh(box)
                annotations.append(
                    dict(
                        id=len(annotations) + 1,
                        image_id=img_id,
                        category_id=cat_ids[label],
                        bbox=[x, y, w, h],
                        area=w * h,
                        iscrowd=int(ign)))
        ids = [im['id'] for im in images]
        if len(set(ids)) != len(ids):
            raise ValueError('TBDetectionMetric: duplicate img_id in the data '
                             'samples; each test image must be seen once')
        categories = [dict(id=i, name=n) for i, n in zip(cat_ids, names)]
        coco = _coco_from_dict(
            dict(
                images=images, annotations=annotations, categories=categories))
        return coco, ids, cat_ids

    def _aps(self,
             coco_gt: COCO,
             coco_dt: COCO,
             img_ids: List[int],
             cat_ids: List[int],
             names: List[str],
             warn: bool = True) -> Dict[str, float]:
        """``AP_<class>`` and ``mAP`` (percent) on the images ``img_ids``."""
        coco_eval = COCOeval(coco_gt, coco_dt, iouType='bbox')
        coco_eval.params.imgIds = img_ids
        coco_eval.params.catIds = cat_ids
        coco_eval.params.iouThrs = np.array([self.iou_thr])
        coco_eval.params.maxDets = [self.max_dets]
        _quiet(coco_eval.evaluate)
        _quiet(coco_eval.accumulate)
        # precision: [iou thr, recall thr, class, area range, max dets]
        precision = coco_eval.eval['precision'][0, :, :, 0, -1]

        metrics, aps = {}, []
        for k, name in enumerate(names):
            p = precision[:, k]
            ap = float(p[p > -1].mean()) if (p > -1).any() else float('nan')
            if np.isnan(ap):
                if warn:
                    msg = (f'TBDetectionMetric: no ground-truth box of '
                           f'{name!r} among the evaluated images; its AP is '
                           'NaN and left out of mAP')
                    warnings.warn(msg)
                    MMLogger.get_current_instance().warning(msg)
            else:
                aps.append(ap)
            metrics[f'AP_{self.class_aliases.get(name, name)}'] = 100. * ap
        metrics['mAP'] = 100. * float(np.mean(aps)) if aps else float('nan')
        return metrics

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Per-class AP at ``iou_thr`` and their mean, in percent."""
        if not results:
            raise ValueError('TBDetectionMetric got no samples; is the test '
                             'dataloader empty?')
        names = self._class_names()
        check_finite_scores(
            [np.concatenate([r['scores'], r['bboxes'].ravel()])
             for r in results], [r['img_path'] for r in results],
            'TBDetectionMetric (scores, boxes)')
        coco_gt, img_ids, cat_ids = self._build_gt(results, names)

        dets = []
        for res, img_id in zip(results, img_ids):
            for box, score, label in zip(res['bboxes'], res['scores'],
                                         res['labels']):
                if not 0 <= label < len(names):
                    raise ValueError(f"{res['img_path']}: predicted label "
                                     f'{label} is not a class of {names}')
                x, y, w, h = _xyxy_to_xywh(box)
                dets.append(
                    dict(
                        id=len(dets) + 1,
                        image_id=img_id,
                        category_id=cat_ids[label],
                        bbox=[x, y, w, h],
                        area=w * h,
                        score=float(score),
                        iscrowd=0))
        coco_dt = _coco_from_dict(
            dict(
                images=coco_gt.dataset['images'],
                annotations=dets,
                categories=coco_gt.dataset['categories']))

        metrics = self._aps(coco_gt, coco_dt, img_ids, cat_ids, names)
        # TB images: those with a ground-truth box (ignored ones included)
        tb_ids = [i for i in img_ids if coco_gt.getAnnIds(imgIds=[i])]
        if tb_ids and len(tb_ids) < len(img_ids):
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')  # warned above already
                tb = self._aps(coco_gt, coco_dt, tb_ids, cat_ids, names,
                               warn=False)
            metrics.update({f'{k}_tb': v for k, v in tb.items()})
        if self.results_file is not None:
            write_coco_results(self.results_file, dets, coco_gt)
        return metrics
