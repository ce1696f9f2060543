# Copyright (c) muscle_mm contributors. All rights reserved.
"""The study's report: Tables 2/3, ROC curves (Fig. 2), segmentation
overlays (Fig. 3) and the stage-2 forgetting matrix, from the stage folders
that :class:`~muscle_mm.apis.MuscleStudy` wrote."""
import os
import os.path as osp
import shutil
from typing import Dict, List, Mapping, Tuple

import cv2
import numpy as np

from muscle_mm.evaluation.tables import (build_table2, build_table3,
                                         to_markdown, write_tables)
from muscle_mm.metainfo import CLS_TASKS, INIT_NAMES, TABLE3_TASKS, TASK_TITLES
from muscle_mm.visualization import plot_roc_curves, plot_seg_overlays


def predict_segmentation(config: str, checkpoint: str,
                         num_images: int) -> Tuple[List, List, List]:
    """Images, ground truths and predictions of the first test images."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner

    from muscle_mm.utils.checkpoint_checks import check_checkpoint_fits

    cfg = Config.fromfile(config)
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
                 log=print) -> Dict[str, str]:
    """Write the paper's tables and figures under ``work_dir/report``.

    Args:
        work_dir: The study's work dir.
        results: ``{task: {backbone: {init: stage3 outputs}}}`` as returned
            by :meth:`MuscleStudy.run`.
        num_overlays: Test images shown in the segmentation figure.

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
    for name, paths in write_tables(metrics, report_dir).items():
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
                out['config'], out['checkpoint'], num_overlays)
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
    if any(t in metrics for t in CLS_TASKS):
        log('\n' + to_markdown(build_table2(metrics)))
    if any(t in metrics for t in TABLE3_TASKS):
        log('\n' + to_markdown(build_table3(metrics)))
    log(f'\nReport written to {report_dir}:')
    for name in sorted(written):
        log(f'  {written[name]}')
    return written
