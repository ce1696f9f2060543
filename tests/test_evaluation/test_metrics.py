"""Metrics of Tables 2 and 3 against independent computations."""
import importlib.util
import json
import math
import os.path as osp
import shutil
import sys
import uuid
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine import DefaultScope
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.structures import InstanceData, PixelData
from mmpretrain.structures import DataSample
from mmseg.evaluation import IoUMetric
from mmseg.structures import SegDataSample
from sklearn.metrics import accuracy_score, recall_score, roc_curve

import muscle_mm.evaluation.metrics  # noqa: F401  (registers the metrics)
from muscle_mm.evaluation.metrics import bootstrap_auc_ci
from muscle_mm.testing import generate_demo_data
from muscle_mm.utils import register_all_modules

REPO = str(Path(__file__).resolve().parents[2])

TB_CLASSES = ('ActiveTuberculosis', 'ObsoletePulmonaryTuberculosis')


def build_evaluator(cfg: dict, dataset_meta: dict = None) -> Evaluator:
    """Build as a config would: by type name in the ``muscle`` scope."""
    with DefaultScope.overwrite_default_scope('muscle_mm'):
        evaluator = Evaluator([cfg])
    if dataset_meta is not None:
        evaluator.dataset_meta = dataset_meta
    return evaluator


def run(evaluator: Evaluator, samples: list, batch: int = 4) -> dict:
    for i in range(0, len(samples), batch):
        evaluator.process(samples[i:i + batch])
    return evaluator.evaluate(len(samples))


# --------------------------------------------------------------------------
# binary classification
# --------------------------------------------------------------------------
def cls_samples(y, pos_scores):
    return [
        DataSample().set_gt_label(int(t)).set_pred_score(
            torch.tensor([1 - s, s], dtype=torch.float32))
        for t, s in zip(y, pos_scores)
    ]


def toy_scores(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    # rounded so that ties occur, as with real softmax outputs
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1).round(2)
    return y, s.astype(np.float32).astype(np.float64)


def mann_whitney_auc(y, s):
    """AUC as P(score_pos > score_neg) + 0.5 P(tie), by all pairs."""
    pos, neg = s[y == 1][:, None], s[y == 0][None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def test_binary_matches_sklearn_and_pairwise_auc(tmp_path):
    y, s = toy_scores()
    evaluator = build_evaluator(
        dict(type='BinaryClassificationMetric', out_dir=str(tmp_path)))
    res = run(evaluator, cls_samples(y, s))

    pred = (s >= 0.5).astype(int)
    assert res['binary/accuracy'] == pytest.approx(100 *
                                                   accuracy_score(y, pred))
    assert res['binary/sensitivity'] == pytest.approx(100 *
                                                      recall_score(y, pred))
    assert res['binary/specificity'] == pytest.approx(
        100 * recall_score(y, pred, pos_label=0))
    assert res['binary/auc'] == pytest.approx(100 * mann_whitney_auc(y, s))
    assert res['binary/auc_ci_low'] < res['binary/auc'] \
        < res['binary/auc_ci_high']

    roc = json.loads((tmp_path / 'roc.json').read_text())
    fpr, tpr, thr = roc_curve(y, s)
    np.testing.assert_allclose(roc['fpr'], fpr)
    np.testing.assert_allclose(roc['tpr'], tpr)
    assert roc['thresholds'][0] is None  # sklearn's inf, JSON-safe
    np.testing.assert_allclose(roc['thresholds'][1:], thr[1:])
    # the curve's area is the AUC; json holds fractions
    assert np.trapezoid(roc['tpr'], roc['fpr']) == pytest.approx(roc['auc'])
    assert roc['ci'] == pytest.approx(
        [res['binary/auc_ci_low'] / 100, res['binary/auc_ci_high'] / 100])
    assert roc['num_positive'] == int(y.sum())


def test_binary_hand_example_threshold_and_pos_label():
    # scores of the positive class; gt 1 = pneumonia
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    s = np.array([0.9, 0.5, 0.2, 0.5, 0.1, 0.7, 0.3, 0.6])
    res = run(
        build_evaluator(dict(type='BinaryClassificationMetric')),
        cls_samples(y, s))
    # >= 0.5 -> predicted positive: TP=3 (.9 .5 .6), FN=1, FP=2 (.5 .7), TN=2
    assert res['binary/accuracy'] == pytest.approx(100 * 5 / 8)
    assert res['binary/sensitivity'] == pytest.approx(75.0)
    assert res['binary/specificity'] == pytest.approx(50.0)
    # pairs pos>neg: .9:4, .5:2+0.5(tie), .2:1, .6:3 -> 10.5 / 16
    assert res['binary/auc'] == pytest.approx(100 * 10.5 / 16)

    # argmax: a 0.5/0.5 tie goes to class 0 (torch/numpy argmax)
    res = run(
        build_evaluator(
            dict(type='BinaryClassificationMetric', threshold=None)),
        cls_samples(y, s))
    assert res['binary/sensitivity'] == pytest.approx(50.0)
    assert res['binary/specificity'] == pytest.approx(75.0)

    # class 0 as positive: roles of sensitivity and specificity swap
    res = run(
        build_evaluator(
            dict(
                type='BinaryClassificationMetric', pos_label=0,
                threshold=None)), cls_samples(y, s))
    assert res['binary/sensitivity'] == pytest.approx(75.0)
    assert res['binary/specificity'] == pytest.approx(50.0)
    assert res['binary/auc'] == pytest.approx(100 * 10.5 / 16)


def test_binary_single_sigmoid_output():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.8, 0.4, 0.3, 0.1])
    samples = [
        DataSample().set_gt_label(int(t)).set_pred_score(torch.tensor([v]))
        for t, v in zip(y, s)
    ]
    res = run(
        build_evaluator(dict(type='BinaryClassificationMetric')), samples)
    assert res['binary/sensitivity'] == pytest.approx(50.0)
    assert res['binary/auc'] == pytest.approx(100 * mann_whitney_auc(y, s))


def test_bootstrap_ci_seeded_and_close_to_hanley_mcneil():
    y, s = toy_scores(n=300, seed=1)
    a = bootstrap_auc_ci(y, s, num_resamples=100, seed=3)
    assert a == bootstrap_auc_ci(y, s, num_resamples=100, seed=3)
    assert a != bootstrap_auc_ci(y, s, num_resamples=100, seed=4)
    assert a['num_valid'] == 100 and a['num_skipped'] == 0

    # width of the 95% CI vs the Hanley & McNeil (1982) standard error
    auc = mann_whitney_auc(y, s)
    n1, n0 = int(y.sum()), int((1 - y).sum())
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    se = math.sqrt((auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) *
                    (q2 - auc**2)) / (n1 * n0))
    wide = bootstrap_auc_ci(y, s, num_resamples=500, seed=0)
    assert wide['low'] < auc < wide['high']
    assert wide['high'] - wide['low'] == pytest.approx(2 * 1.96 * se, rel=0.25)


def test_binary_one_class_only_gives_nan_with_warning(tmp_path):
    y = np.zeros(6, dtype=int)
    s = np.array([0.1, 0.2, 0.7, 0.3, 0.4, 0.2])
    evaluator = build_evaluator(
        dict(type='BinaryClassificationMetric', out_dir=str(tmp_path)))
    with pytest.warns(UserWarning, match='AUC and its CI are undefined'):
        res = run(evaluator, cls_samples(y, s))
    assert math.isnan(res['binary/auc'])
    assert math.isnan(res['binary/auc_ci_low'])
    assert math.isnan(res['binary/sensitivity'])  # no positives
    assert res['binary/specificity'] == pytest.approx(100 * 5 / 6)
    assert res['binary/accuracy'] == pytest.approx(100 * 5 / 6)
    roc = json.loads((tmp_path / 'roc.json').read_text())
    assert roc['auc'] is None and roc['fpr'] == []


def test_binary_bootstrap_skips_one_class_resamples():
    # one positive among 6: a resample misses it with p = (5/6)^6 = 0.33
    y = np.array([1, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.2, 0.6, 0.1, 0.3, 0.4])
    with pytest.raises(ValueError, match='bootstrap resamples held one'):
        run(
            build_evaluator(
                dict(type='BinaryClassificationMetric', max_skip_ratio=0.1)),
            cls_samples(y, s))
    evaluator = build_evaluator(
        dict(type='BinaryClassificationMetric', max_skip_ratio=1.0))
    res = run(evaluator, cls_samples(y, s))
    metric = evaluator.metrics[0]
    skipped = metric.roc['num_bootstrap_skipped']
    assert 10 < skipped < 60  # ~33 of 100 expected
    assert res['binary/auc'] == pytest.approx(100.0)
    assert res['binary/auc_ci_high'] == pytest.approx(100.0)


def test_binary_bad_input_is_explained():
    evaluator = build_evaluator(dict(type='BinaryClassificationMetric'))
    with pytest.raises(KeyError, match='pred_score'):
        evaluator.process([DataSample().set_gt_label(1)])
    evaluator = build_evaluator(
        dict(type='BinaryClassificationMetric', pos_label=2))
    with pytest.raises(ValueError, match='pos_label=2'):
        evaluator.process(cls_samples([1], [0.3]))
    with pytest.raises(ValueError, match='threshold'):
        build_evaluator(dict(type='BinaryClassificationMetric', threshold=2))


def test_binary_nan_scores_name_the_samples():
    """A diverged model's NaN scores stop with the samples named, not with
    sklearn's "Input contains NaN" (nor, with one class, silently)."""
    y, s = toy_scores(40)
    samples = cls_samples(y, s)
    for i in (3, 7, 11, 12, 20, 30):
        samples[i].set_metainfo(dict(img_path=f'/data/test/img{i}.png'))
        samples[i].set_pred_score(torch.tensor([np.nan, np.nan]))
    with pytest.raises(ValueError) as err:
        run(build_evaluator(dict(type='BinaryClassificationMetric')), samples)
    message = str(err.value)
    assert 'NaN or infinite scores for 6 of 40 samples' in message
    for i in (3, 7, 11, 12, 20):  # the first five
        assert f'/data/test/img{i}.png: [nan, nan]' in message
    assert 'img30' not in message
    one_class = cls_samples([0, 0, 0], [0.1, 0.2, 0.3])
    one_class[1].set_pred_score(torch.tensor([0.5, float('inf')]))
    with pytest.raises(ValueError, match=r'1 of 3 samples.*sample 1: '
                       r'\[0.5, inf\]'):
        run(build_evaluator(dict(type='BinaryClassificationMetric')),
            one_class)
    with pytest.raises(ValueError, match=r'bootstrap_auc_ci.*sample 2: '
                       r'\[nan\]'):
        bootstrap_auc_ci(np.array([0, 1, 1]), np.array([0.2, 0.4, np.nan]))


def test_tb_detection_nan_scores_name_the_image():
    samples = tb_samples()
    samples[1].pred_instances.scores[0] = float('nan')
    with pytest.raises(ValueError, match=r'TBDetectionMetric.*1 of 3 '
                       r'samples.*img2.png: \[nan'):
        run(
            build_evaluator(
                dict(type='TBDetectionMetric'), dict(classes=TB_CLASSES)),
            samples)


# --------------------------------------------------------------------------
# lung segmentation
# --------------------------------------------------------------------------
def seg_sample(gt, pred):
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None])
    sample.pred_sem_seg = PixelData(data=torch.as_tensor(pred)[None])
    return sample


def hand_masks():
    """Image A: 4 lung pixels in G, 6 in P, 3 shared. Image B: no lung."""
    gt_a = np.zeros((4, 4), dtype=np.int64)
    gt_a[0, :4] = 1
    pred_a = np.zeros((4, 4), dtype=np.int64)
    pred_a[0, 1:4] = 1
    pred_a[1, 1:4] = 1
    empty = np.zeros((4, 4), dtype=np.int64)
    return [(gt_a, pred_a), (empty, empty)]


def test_lung_seg_hand_worked_example():
    meta = dict(classes=('background', 'lung'))
    res = run(
        build_evaluator(dict(type='LungSegMetric'), meta),
        [seg_sample(g, p) for g, p in hand_masks()])
    # A: 2*3/(4+6) = 0.6; B: both empty -> 1 by definition
    assert res['lung/Dice'] == pytest.approx(100 * (0.6 + 1) / 2)
    assert res['lung/Dice_pooled'] == pytest.approx(100 * 6 / 10)
    # lung: I=3, U=4+6-3=7. background: A I=9 U=13, B I=U=16
    iou_lung, iou_bg = 3 / 7, (9 + 16) / (13 + 16)
    assert res['lung/IoU_lung'] == pytest.approx(100 * iou_lung)
    assert res['lung/IoU_background'] == pytest.approx(100 * iou_bg)
    assert res['lung/mIoU'] == pytest.approx(100 * (iou_lung + iou_bg) / 2)

    # mmseg's own IoUMetric pools the same way
    mmseg_metric = IoUMetric(iou_metrics=['mIoU'])
    mmseg_metric.dataset_meta = meta
    mmseg_metric.process({},
                         [seg_sample(g, p).to_dict() for g, p in hand_masks()])
    assert mmseg_metric.evaluate(2)['mIoU'] == pytest.approx(
        res['lung/mIoU'], abs=0.01)


def test_lung_seg_empty_masks_and_ignore_index():
    empty = np.zeros((5, 5), dtype=np.int64)
    res = run(
        build_evaluator(dict(type='LungSegMetric')),
        [seg_sample(empty, empty)] * 2)
    assert res['lung/Dice'] == 100.0
    assert res['lung/Dice_pooled'] == 100.0
    assert res['lung/mIoU'] == 100.0

    # lung missed entirely: Dice 0, defined
    gt = empty.copy()
    gt[1:3, 1:3] = 1
    res = run(
        build_evaluator(dict(type='LungSegMetric')), [seg_sample(gt, empty)])
    assert res['lung/Dice'] == 0.0 and res['lung/IoU_lung'] == 0.0

    # wrong prediction on ignored pixels does not count
    gt_ign = gt.copy()
    gt_ign[0, :] = 255
    pred = gt.copy()
    pred[0, :] = 1
    res = run(
        build_evaluator(dict(type='LungSegMetric')),
        [seg_sample(gt_ign, pred)])
    assert res['lung/Dice'] == 100.0 and res['lung/mIoU'] == 100.0


def test_lung_seg_bad_input_is_explained():
    evaluator = build_evaluator(dict(type='LungSegMetric'))
    with pytest.raises(ValueError, match='differ in size'):
        evaluator.process([seg_sample(np.zeros((4, 4)), np.zeros((4, 5)))])
    with pytest.raises(ValueError, match=r'labels \[0, 2\]'):
        evaluator.process(
            [seg_sample(np.zeros((2, 2)), np.array([[0, 2], [0, 0]]))])


def test_lung_seg_nan_logits_name_the_images():
    """NaN logits argmax to some label: a silent Dice before, now an error
    naming the images."""
    (gt, pred), (empty, _) = hand_masks()
    samples = [seg_sample(gt, pred), seg_sample(empty, empty)]
    for i, sample in enumerate(samples):
        logits = torch.zeros(2, 4, 4)
        if i == 1:
            logits[1, 0, :2] = float('nan')
            sample.set_metainfo(dict(img_path='/data/lung/b.png'))
        sample.seg_logits = PixelData(data=logits)
    with pytest.raises(ValueError, match=r'LungSegMetric \(seg_logits\).*'
                       r'1 of 2 samples.*/data/lung/b.png: \[nan, nan\]'):
        run(build_evaluator(dict(type='LungSegMetric')), samples)


# --------------------------------------------------------------------------
# TB detection
# --------------------------------------------------------------------------
def det_sample(img_id, gt_boxes, gt_labels, boxes, scores, labels):
    sample = DetDataSample(
        metainfo=dict(
            img_id=img_id, ori_shape=(100, 100), img_path=f'img{img_id}.png'))
    # boxes as mmdet's PackDetInputs packs them
    sample.gt_instances = InstanceData(
        bboxes=HorizontalBoxes(
            torch.tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4)),
        labels=torch.tensor(gt_labels, dtype=torch.long))
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        scores=torch.tensor(scores, dtype=torch.float32),
        labels=torch.tensor(labels, dtype=torch.long))
    return sample


def tb_samples():
    """Image 1: two active TB boxes; detections TP .9, FP .8, TP .7.
    Image 2: one latent box, found (IoU 0.81). Image 3: healthy, no boxes."""
    return [
        det_sample(1, [[10, 10, 50, 50], [60, 60, 90, 90]], [0, 0],
                   [[10, 10, 50, 50], [0, 60, 20, 90], [60, 60, 90, 92]],
                   [.9, .8, .7], [0, 0, 0]),
        det_sample(2, [[20, 20, 40, 40]], [1], [[20, 20, 40, 42.5]], [.6],
                   [1]),
        det_sample(3, [], [], [], [], []),
    ]


# 101-point interpolated AP of image 1: precision 1 up to recall 0.5 (51
# recall thresholds 0..0.5), then 2/3 up to recall 1 (50 thresholds)
HAND_AP_ACTIVE = 100 * (51 * 1 + 50 * 2 / 3) / 101


def test_tb_detection_hand_computed_ap():
    res = run(
        build_evaluator(
            dict(type='TBDetectionMetric'), dict(classes=TB_CLASSES)),
        tb_samples())
    assert res['tbx/AP_active'] == pytest.approx(HAND_AP_ACTIVE)
    assert res['tbx/AP_latent'] == pytest.approx(100.0)
    assert res['tbx/mAP'] == pytest.approx((HAND_AP_ACTIVE + 100) / 2)


def test_tb_detection_iou_below_threshold_is_a_miss():
    # IoU of [20,20,40,40] and [20,20,40,50] is 400/600 = 0.67; with
    # [20,20,40,62] it is 400/840 = 0.48 < 0.5
    hit = det_sample(1, [[20, 20, 40, 40]], [0], [[20, 20, 40, 50]], [.5], [0])
    miss = det_sample(1, [[20, 20, 40, 40]], [0], [[20, 20, 40, 62]], [.5],
                      [0])
    meta = dict(classes=TB_CLASSES)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # no latent GT here
        assert run(
            build_evaluator(dict(type='TBDetectionMetric'), meta),
            [hit])['tbx/AP_active'] == pytest.approx(100.)
        assert run(
            build_evaluator(dict(type='TBDetectionMetric'), meta),
            [miss])['tbx/AP_active'] == pytest.approx(0.)


def test_tb_detection_no_detections_and_missing_class():
    samples = [
        det_sample(1, [[10, 10, 50, 50]], [0], [], [], []),
        det_sample(2, [[20, 20, 40, 40]], [1], [], [], []),
    ]
    res = run(
        build_evaluator(
            dict(type='TBDetectionMetric'), dict(classes=TB_CLASSES)), samples)
    assert res == {'tbx/AP_active': 0., 'tbx/AP_latent': 0., 'tbx/mAP': 0.}

    # no latent TB in the set: its AP is undefined, mAP is over active only
    with pytest.warns(UserWarning, match='ObsoletePulmonaryTuberculosis'):
        res = run(
            build_evaluator(
                dict(type='TBDetectionMetric', classes=TB_CLASSES)),
            [tb_samples()[0]])
    assert math.isnan(res['tbx/AP_latent'])
    assert res['tbx/mAP'] == pytest.approx(HAND_AP_ACTIVE)


def coco_gt_json(path):
    """TBX11K-style json: category ids 1..3 incl. the unused 'uncertain'
    one, boxes as xywh."""
    anns = [(1, 1, [10, 10, 40, 40]), (1, 1, [60, 60, 30, 30]),
            (2, 2, [20, 20, 20, 20])]
    data = dict(
        images=[
            dict(id=i, width=100, height=100, file_name=f'img{i}.png')
            for i in (1, 2, 3)
        ],
        categories=[
            dict(id=1, name='ActiveTuberculosis'),
            dict(id=2, name='ObsoletePulmonaryTuberculosis'),
            dict(id=3, name='PulmonaryTuberculosis')
        ],
        annotations=[
            dict(
                id=k + 1,
                image_id=i,
                category_id=c,
                bbox=b,
                area=b[2] * b[3],
                iscrowd=0) for k, (i, c, b) in enumerate(anns)
        ])
    path.write_text(json.dumps(data))
    return str(path)


def test_tb_detection_ann_file_matches_pycocotools_loadres(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ann_file = coco_gt_json(tmp_path / 'test.json')
    res = run(
        build_evaluator(
            dict(type='TBDetectionMetric', ann_file=ann_file),
            dict(classes=TB_CLASSES)), tb_samples())
    assert res['tbx/AP_active'] == pytest.approx(HAND_AP_ACTIVE)
    assert res['tbx/AP_latent'] == pytest.approx(100.0)

    # the standard pycocotools path: loadRes + summarize, AP at IoU .5
    dets = []
    for s in tb_samples():
        p = s.pred_instances
        for b, sc, lb in zip(p.bboxes.tolist(), p.scores.tolist(),
                             p.labels.tolist()):
            dets.append(
                dict(
                    image_id=s.img_id,
                    category_id=lb + 1,
                    bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]],
                    score=sc))
    gt = COCO(ann_file)
    coco_eval = COCOeval(gt, gt.loadRes(dets), 'bbox')
    coco_eval.params.catIds = [1, 2]
    coco_eval.params.iouThrs = np.array([0.5])
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    assert res['tbx/mAP'] == pytest.approx(100 * coco_eval.stats[0])


def test_tb_detection_raw_instances_and_errors(tmp_path):
    sample = tb_samples()[1].to_dict()
    del sample['gt_instances']
    sample['instances'] = [
        dict(bbox=[20, 20, 40, 40], bbox_label=1, ignore_flag=0),
        dict(bbox=[60, 60, 70, 70], bbox_label=0, ignore_flag=1),
    ]
    evaluator = build_evaluator(
        dict(type='TBDetectionMetric'), dict(classes=TB_CLASSES))
    evaluator.metrics[0].process({}, [sample])
    with pytest.warns(UserWarning, match='ActiveTuberculosis'):
        res = evaluator.metrics[0].evaluate(1)
    # the ignored active box is no ground truth: AP_active undefined
    assert math.isnan(res['tbx/AP_active'])
    assert res['tbx/AP_latent'] == pytest.approx(100.)

    with pytest.raises(FileNotFoundError, match='make_splits.py'):
        build_evaluator(
            dict(
                type='TBDetectionMetric',
                ann_file=str(tmp_path / 'nope.json')))
    ann_file = coco_gt_json(tmp_path / 'test.json')
    evaluator = build_evaluator(
        dict(type='TBDetectionMetric', ann_file=ann_file),
        dict(classes=TB_CLASSES))
    evaluator.process([det_sample(7, [], [], [], [], [])])
    with pytest.raises(KeyError, match='img_id 7'):
        evaluator.evaluate(1)
    # img_id 2 is img2.png in the file, not img1.png
    evaluator = build_evaluator(
        dict(type='TBDetectionMetric', ann_file=ann_file),
        dict(classes=TB_CLASSES))
    sample = det_sample(2, [], [], [], [], [])
    sample.set_metainfo(dict(img_path='/data/img1.png'))
    evaluator.process([sample])
    with pytest.raises(ValueError, match="img_id 2 is 'img2.png'"):
        evaluator.evaluate(1)


def test_tb_detection_ann_file_that_is_no_coco_json(tmp_path):
    """A truncated ann_file, or JSON that is no COCO dataset, is refused
    naming the file and what was expected (not a bare JSONDecodeError)."""
    text = open(coco_gt_json(tmp_path / 'test.json')).read()
    cases = {
        'truncated.json': (text[:len(text) // 2], 'is not valid JSON'),
        'list.json': ('[]', "has no list ['images', 'categories']"),
        'no_images.json': (json.dumps(dict(json.loads(text), images=None)),
                           "has no list ['images']"),
    }
    for name, (content, problem) in cases.items():
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(ValueError) as e:
            build_evaluator(dict(type='TBDetectionMetric', ann_file=str(path)))
        msg = str(e.value)
        assert f'ann_file {path} {problem}' in msg, msg
        assert 'expected the COCO json' in msg and 'make_splits.py' in msg


# --------------------------------------------------------------------------
# TB detection on the demo TBX11K config: one `uncertain_tb` for both
# --------------------------------------------------------------------------
TBX_DEMO_CONFIG = osp.join(REPO, 'configs/_base_/datasets/demo/tbx11k.py')
UNCERTAIN = 3  # TBX11K's category id of PulmonaryTuberculosis


def make_splits(*argv):
    spec = importlib.util.spec_from_file_location(
        'make_splits', osp.join(REPO,
                                'tools/dataset_converters/make_splits.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with mock.patch.object(sys, 'argv', ['make_splits.py', *argv]):
        assert tool.main() == 0


@pytest.fixture(scope='module')
def tbx_demo(tmp_path_factory):
    """Demo TBX11K with the paper's split and make_splits.py's jsons
    (written with the default --uncertain-tb active)."""
    out = str(tmp_path_factory.mktemp('tbx_demo'))
    generate_demo_data(out, seed=0, datasets=['tbx11k'])
    make_splits('--data-root', out, '--datasets', 'tbx11k')
    return osp.join(out, 'TBX11K')


def tbx_boxes(root):
    """file name -> [(xyxy, TBX11K category id)], from TBX11K's jsons."""
    boxes = {}
    for part in ('train', 'val'):
        coco = json.load(open(f'{root}/annotations/json/TBX11K_{part}.json'))
        names = {im['id']: im['file_name'] for im in coco['images']}
        for a in coco['annotations']:
            x, y, w, h = a['bbox']
            boxes.setdefault(names[a['image_id']], []).append(
                ([x, y, x + w, y + h], a['category_id']))
    return boxes


class TBOracle(BaseModel):
    """Predicts TBX11K's boxes (uncertain ones as active TB, scored above
    the rest so that a false positive among them would lower the AP)."""

    def __init__(self, boxes, predict_uncertain=True):
        super().__init__()
        self.boxes = boxes
        self.predict_uncertain = predict_uncertain

    def forward(self, inputs, data_samples=None, mode='predict'):
        for sample in data_samples:
            found = [(b, c)
                     for b, c in self.boxes[sample.img_path.split('/imgs/')[1]]
                     if self.predict_uncertain or c != UNCERTAIN]
            sample.pred_instances = InstanceData(
                bboxes=torch.tensor([b for b, _ in found]).reshape(-1, 4),
                scores=torch.tensor(
                    [1. if c == UNCERTAIN else .9 for _, c in found]),
                labels=torch.tensor([int(c == 2) for _, c in found]))
        return data_samples


def run_tbx_test(root,
                 uncertain_tb,
                 work_dir,
                 predict_uncertain=True,
                 **metric):
    """``tools/test.py`` of the demo config with --cfg-options
    ``test_dataloader.dataset.uncertain_tb`` (and ``test_evaluator.*``)."""
    cfg = Config.fromfile(TBX_DEMO_CONFIG)
    cfg.merge_from_dict({
        'test_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.uncertain_tb': uncertain_tb,
        **{
            f'test_evaluator.{k}': v
            for k, v in metric.items()
        }
    })
    register_all_modules(init_default_scope=False)
    runner = Runner(
        model=TBOracle(tbx_boxes(root), predict_uncertain),
        work_dir=str(work_dir),
        test_dataloader=cfg.test_dataloader,
        test_cfg=dict(type='TestLoop'),
        test_evaluator=cfg.test_evaluator,
        default_scope='muscle_mm',
        log_level='WARNING',
        experiment_name=f'tbx_{uncertain_tb}_{uuid.uuid4().hex}')
    return runner.test()


def test_tbx_config_metric_follows_the_datasets_uncertain_tb(
        tbx_demo, tmp_path):
    test_split = open(f'{tbx_demo}/muscle_splits/test.txt').read().split()
    boxes = tbx_boxes(tbx_demo)
    assert any(c == UNCERTAIN for rel in test_split
               for _, c in boxes[rel.split('imgs/')[1]])  # else untested
    # active: the uncertain boxes are active TB, each one to be found
    res = run_tbx_test(tbx_demo, 'active', tmp_path)
    assert res['tbx/AP_active'] == pytest.approx(100.)
    assert res['tbx/mAP'] == pytest.approx(100.)
    res = run_tbx_test(tbx_demo, 'active', tmp_path, predict_uncertain=False)
    assert res['tbx/AP_active'] < 99.
    # ignore: finding them is no false positive, missing them no miss
    for predict_uncertain in (True, False):
        res = run_tbx_test(tbx_demo, 'ignore', tmp_path, predict_uncertain)
        assert res['tbx/AP_active'] == pytest.approx(100.)
        assert res['tbx/mAP'] == pytest.approx(100.)


def test_tbx_ann_file_of_another_split_is_refused(tbx_demo, tmp_path):
    """Perfect predictions scored against the json of another split: an
    error naming the file, the img_id and both images, never mAP 0."""
    splits = f'{tbx_demo}/muscle_splits'
    with pytest.raises(KeyError) as err:
        run_tbx_test(
            tbx_demo, 'active', tmp_path, ann_file=f'{splits}/val.json')
    assert f'{splits}/val.json' in str(err.value)
    assert 'img_id' in str(err.value)

    # the val split numbered like the test split (another converter's
    # per-split ids): the ids match, the images do not
    test = json.load(open(f'{splits}/test.json'))
    val = json.load(open(f'{splits}/val.json'))
    # (as many val images as the test split has, ids taken from it)
    assert len(val['images']) >= 1
    new_id = {v['id']: t['id'] for t, v in zip(test['images'], val['images'])}
    val['images'] = [im for im in val['images'] if im['id'] in new_id]
    val['annotations'] = [
        a for a in val['annotations'] if a['image_id'] in new_id
    ]
    for im in val['images']:
        im['id'] = new_id[im['id']]
    for ann in val['annotations']:
        ann['image_id'] = new_id[ann['image_id']]
    renumbered = tmp_path / 'val_renumbered.json'
    renumbered.write_text(json.dumps(val))
    with pytest.raises(ValueError) as err:
        run_tbx_test(tbx_demo, 'active', tmp_path, ann_file=str(renumbered))
    first = test['images'][0]
    for part in (str(renumbered), f"img_id {first['id']} is "
                 f"{val['images'][0]['file_name']!r}", first['file_name']):
        assert part in str(err.value)

    # without file names the check cannot be made: refused, not skipped
    for im in val['images']:
        del im['file_name']
    renumbered.write_text(json.dumps(val))
    with pytest.raises(ValueError, match="file_name is None") as err:
        run_tbx_test(tbx_demo, 'active', tmp_path, ann_file=str(renumbered))
    assert str(renumbered) in str(err.value)


def test_tb_detection_ann_file_needs_the_samples_img_path(tmp_path):
    ann_file = coco_gt_json(tmp_path / 'test.json')
    sample = tb_samples()[0]
    del sample.img_path  # e.g. PackDetInputs(meta_keys=...) without it
    evaluator = build_evaluator(
        dict(type='TBDetectionMetric', ann_file=ann_file),
        dict(classes=TB_CLASSES))
    evaluator.process([sample])
    with pytest.raises(ValueError, match="img_path is None"):
        evaluator.evaluate(1)


def test_tbx_ann_file_must_be_written_with_the_datasets_uncertain_tb(
        tbx_demo, tmp_path):
    root = str(tmp_path / 'TBX11K')
    shutil.copytree(tbx_demo, root)
    ann_file = f'{root}/muscle_splits/test.json'
    for written, other in (('active', 'ignore'), ('ignore', 'active')):
        make_splits('--data-root', str(tmp_path), '--datasets', 'tbx11k',
                    '--uncertain-tb', written)
        assert json.load(open(ann_file))['info']['uncertain_tb'] == written
        # the same figures as from the dataset's own ground truth
        for predict_uncertain in (True, False):
            assert run_tbx_test(
                root, written, tmp_path, predict_uncertain,
                ann_file=ann_file) == run_tbx_test(root, written, tmp_path,
                                                   predict_uncertain)
        with pytest.raises(ValueError) as err:
            run_tbx_test(root, other, tmp_path, ann_file=ann_file)
        for part in (ann_file, f'written with uncertain_tb={written!r}',
                     f'has uncertain_tb={other!r}', 'ann_file=None',
                     f'--uncertain-tb {other}'):
            assert part in str(err.value)
    # a json that does not say how it treats them (TBX11K's own)
    tbx_json = f'{root}/annotations/json/TBX11K_train.json'
    with pytest.raises(ValueError, match='does not record'):
        run_tbx_test(root, 'active', tmp_path, ann_file=tbx_json)


# --------------------------------------------------------------------------
# official protocol: MURA per study + kappa, lung per source, TBX11K on all
# images vs TB images and its results file
# --------------------------------------------------------------------------
def mura_samples(studies):
    """``{study: (label, [positive scores])}`` -> one DataSample per image,
    its img_path inside its study's folder (MURA's layout)."""
    out = []
    for name, (label, scores) in studies.items():
        for j, s in enumerate(scores):
            out.append(
                DataSample(metainfo=dict(
                    img_path=f'/d/valid/XR_WRIST/{name}/image{j + 1}.png')).
                set_gt_label(label).set_pred_score(
                    torch.tensor([1 - s, s], dtype=torch.float64)))
    return out


# mean scores .45 .7 .3 .6 .85 -> studies predicted 0 1 0 1 1, labels 1 1 0 0 1
MURA_STUDIES = {
    'patient1/study1_positive': (1, [.6, .3]),
    'patient2/study1_positive': (1, [.7]),
    'patient3/study1_negative': (0, [.2, .4, .3]),
    'patient4/study1_negative': (0, [.8, .4]),
    'patient5/study1_positive': (1, [.9, .8]),
}


def test_binary_study_level_hand_worked_and_kappa_as_sklearn():
    from sklearn.metrics import cohen_kappa_score
    res = run(
        build_evaluator(
            dict(type='BinaryClassificationMetric', study_level=True)),
        mura_samples(MURA_STUDIES))
    assert res['binary/study_count'] == 5
    assert res['binary/study_accuracy'] == pytest.approx(100 * 3 / 5)
    assert res['binary/study_sensitivity'] == pytest.approx(100 * 2 / 3)
    assert res['binary/study_specificity'] == pytest.approx(100 * 1 / 2)
    # positives .45 .7 .85 vs negatives .3 .6: 5 of 6 pairs ordered
    assert res['binary/study_auc'] == pytest.approx(100 * 5 / 6)
    # p_o = 3/5; p_e = .6 * .6 + .4 * .4 = .52; (.6 - .52) / .48 = 1/6
    assert res['binary/study_kappa'] == pytest.approx(1 / 6)
    assert res['binary/study_kappa'] == pytest.approx(
        cohen_kappa_score([1, 1, 0, 0, 1], [0, 1, 0, 1, 1]))
    # per image, as the paper's Table 2, and its kappa
    y = [lab for lab, s in MURA_STUDIES.values() for _ in s]
    s = np.array([v for _, sc in MURA_STUDIES.values() for v in sc])
    pred = (s >= 0.5).astype(int)
    assert res['binary/accuracy'] == pytest.approx(
        100 * accuracy_score(y, pred))
    assert res['binary/kappa'] == pytest.approx(cohen_kappa_score(y, pred))


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_cohen_kappa_matches_sklearn(seed):
    from sklearn.metrics import cohen_kappa_score

    from muscle_mm.evaluation.metrics.binary_classification import \
        cohen_kappa
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
    b[:20] = a[:20]  # some agreement beyond chance
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert cohen_kappa(a, a) == pytest.approx(1.0)


def test_binary_study_level_refuses_mixed_labels_in_a_study():
    samples = mura_samples({'patient1/study1_positive': (1, [.6])}) + \
        mura_samples({'patient1/study1_positive': (0, [.2])}) + \
        mura_samples({'patient2/study1_negative': (0, [.1])})
    with pytest.raises(ValueError, match='patient1/study1_positive.*'
                       'different labels'):
        run(
            build_evaluator(
                dict(type='BinaryClassificationMetric', study_level=True)),
            samples)


def test_lung_seg_per_source_hand_worked():
    (gt_a, pred_a), (gt_b, pred_b) = hand_masks()
    samples = [seg_sample(gt_a, pred_a), seg_sample(gt_b, pred_b)]
    samples[0].set_metainfo(dict(img_path='/d/CXR_png/MCUCXR_0001_0.png'))
    samples[1].set_metainfo(dict(img_path='/d/CXR_png/CHNCXR_0001_0.png'))
    res = run(
        build_evaluator(
            dict(type='LungSegMetric'),
            dict(classes=('background', 'lung'))), samples)
    # A alone (Montgomery): Dice 2*3/10; IoU lung 3/7, background 9/13
    assert res['lung/Dice_Montgomery'] == pytest.approx(60.)
    assert res['lung/mIoU_Montgomery'] == pytest.approx(100 * (3 / 7 + 9 / 13)
                                                        / 2)
    # B alone (Shenzhen): no lung in either, background all agreed
    assert res['lung/Dice_Shenzhen'] == pytest.approx(100.)
    assert res['lung/mIoU_Shenzhen'] == pytest.approx(100.)
    assert res['lung/Dice'] == pytest.approx(100 * (0.6 + 1) / 2)  # pooled


def tb_samples_with_healthy_fp():
    """tb_samples, image 3 (healthy) now with an active-TB box at .95."""
    samples = tb_samples()
    samples[2] = det_sample(3, [], [], [[5, 5, 30, 30]], [.95], [0])
    return samples


def test_tb_detection_all_images_and_tb_only(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    out = str(tmp_path / 'submission' / 'bbox.json')
    res = run(
        build_evaluator(
            dict(type='TBDetectionMetric', results_file=out),
            dict(classes=TB_CLASSES)), tb_samples_with_healthy_fp())
    # all images: active detections .95 FP, .9 TP, .8 FP, .7 TP -> the
    # precision is 1/2 at recall 1/2 and 2/4 at recall 1: AP 0.5
    assert res['tbx/AP_active'] == pytest.approx(50.)
    assert res['tbx/AP_latent'] == pytest.approx(100.)
    # TB images only (the paper's): the healthy image's box is not scored
    assert res['tbx/AP_active_tb'] == pytest.approx(HAND_AP_ACTIVE)
    assert res['tbx/mAP_tb'] == pytest.approx((HAND_AP_ACTIVE + 100) / 2)

    # pycocotools on the written results file: the same all-images AP
    gt = dict(
        images=[dict(id=i, width=100, height=100) for i in (1, 2, 3)],
        categories=[dict(id=1, name=TB_CLASSES[0]),
                    dict(id=2, name=TB_CLASSES[1])],
        annotations=[
            dict(id=k + 1, image_id=i, category_id=c, bbox=b, iscrowd=0,
                 area=b[2] * b[3])
            for k, (i, c, b) in enumerate([(1, 1, [10, 10, 40, 40]),
                                           (1, 1, [60, 60, 30, 30]),
                                           (2, 2, [20, 20, 20, 20])])
        ])
    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    dets = json.load(open(out))
    assert {d['category_id'] for d in dets} == {1, 2}
    assert {'image_id', 'bbox', 'score'} <= set(dets[0])
    e = COCOeval(coco, coco.loadRes(out), 'bbox')
    e.params.iouThrs = np.array([0.5])
    e.params.maxDets = [100]
    e.evaluate()
    e.accumulate()
    p = e.eval['precision'][0, :, 0, 0, -1]
    assert res['tbx/AP_active'] == pytest.approx(100 * p[p > -1].mean())
