# Copyright (c) muscle_mm contributors. All rights reserved.
"""Inference on new radiographs with a stage-3 task model or a stage-2
multi-task checkpoint (issue 10, item 1).

Each image goes through the config's own test pipeline (``LoadXrayImage``
first), so training, ``tools/test.py`` and inference see identical pixels;
predictions come from the model's ``test_step``, which rescales masks and
boxes to the original image (mmseg, mmdet).
mmpretrain's, mmseg's and mmdet's Inferencers are not used: each builds its
model and pipeline in its own default scope (where ``LoadXrayImage`` and
``MultiTaskModel`` are not registered), reads with ``LoadImageFromFile`` and
cannot run one head of a multi-task model.
"""
import csv
import json
import logging
import os
import os.path as osp
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from mmengine.utils import ProgressBar

from muscle_mm.metainfo import TABLE1, TASK_DATASETS
from muscle_mm.registry import DATASETS, MODELS
from muscle_mm.utils import register_all_modules
from muscle_mm.utils.checkpoint_checks import (check_state_dict_fits,
                                               checkpoint_state_dict)

#: Files a folder is searched for; files without a suffix are read when
#: they are DICOM (PACS exports name them ``IM0001``).
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.dcm',
                  '.dicom', '.dic')
#: Suffixes of a text file listing inputs, one a line.
LIST_SUFFIXES = ('.txt', '.lst', '.list')
#: Task of each dataset type of Table 1 (a stage-3 config's task).
DATASET_TASKS = {
    TABLE1[ds]['type']: task
    for task, ds in TASK_DATASETS.items()
}
#: Colours (BGR) of masks and boxes, by class index.
COLOURS = ((0, 200, 0), (0, 0, 230), (230, 120, 0), (0, 200, 230), (200, 0,
                                                                    200))


@dataclass
class InferenceItem:
    """One input and what inference made of it."""
    path: str
    name: str  # output name, relative to the output folder, no suffix
    status: str = 'ok'
    error: str = ''
    image_size: Optional[Tuple[int, int]] = None  # (h, w) as loaded
    predictions: Dict[str, dict] = field(default_factory=dict)
    image: Optional[np.ndarray] = field(default=None, repr=False)

    def release(self) -> None:
        """Drop the image and the masks (once written to files)."""
        self.image = None
        for pred in self.predictions.values():
            pred.pop('mask', None)

    def fail(self, err: BaseException) -> None:
        self.status = 'error'
        self.error = f'{type(err).__name__}: {err}'.replace('\n', ' ')

    def to_json(self) -> dict:
        """The JSON record: masks are left out (they are written as PNG)."""
        preds = {
            task: {
                k: v
                for k, v in pred.items() if k != 'mask'
            }
            for task, pred in self.predictions.items()
        }
        return dict(
            file=self.path,
            status=self.status,
            error=self.error,
            image_size=list(self.image_size) if self.image_size else None,
            predictions=preds)


def is_dicom(path: str) -> bool:
    """Whether ``path`` starts as a DICOM file (``DICM`` at byte 128);
    ``DICOMDIR`` (an index, no pixels) is not an image."""
    if osp.basename(path).upper() == 'DICOMDIR':
        return False
    try:
        with open(path, 'rb') as f:
            return f.read(132)[128:] == b'DICM'
    except OSError:
        return False


def _folder_images(folder: str) -> List[str]:
    """Images below ``folder`` (sorted, recursive), with a warning naming
    how many other files were left out."""
    found, skipped = [], []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            path = osp.join(root, name)
            if name.lower().endswith(IMAGE_SUFFIXES) or (
                    not osp.splitext(name)[1] and is_dicom(path)):
                found.append(path)
            elif not name.startswith('.'):
                skipped.append(path)
    if skipped:
        print_log(
            f'{folder}: {len(skipped)} file(s) not read, neither with an '
            f'image suffix ({", ".join(IMAGE_SUFFIXES)}) nor DICOM without '
            f'a suffix, e.g. {skipped[0]}',
            logger='current',
            level=logging.WARNING)
    return found


def _list_file(path: str) -> List[str]:
    """Paths listed in a text file, one a line; ``#`` starts a comment and
    relative paths are relative to the list's folder."""
    root = osp.dirname(osp.abspath(path))
    with open(path, encoding='utf-8') as f:
        lines = [ln.split('#', 1)[0].strip() for ln in f]
    return [ln if osp.isabs(ln) else osp.join(root, ln) for ln in lines if ln]


def list_inputs(inputs: Union[str, Sequence[str]]) -> List[InferenceItem]:
    """Expand files, folders (recursively: :data:`IMAGE_SUFFIXES` and DICOM
    files without suffix) and lists (:data:`LIST_SUFFIXES`) into items with
    unique output names.

    A folder's images keep their path below it as output name (MURA's many
    ``image1.png`` stay apart); other files are named by their stem. A path
    that does not exist becomes an item whose status is ``error``.
    """
    if isinstance(inputs, str):
        inputs = [inputs]
    pairs: List[Tuple[str, str]] = []
    for entry in inputs:
        entry = str(entry)
        if osp.isdir(entry):
            pairs += [(p, osp.splitext(osp.relpath(p, entry))[0])
                      for p in _folder_images(entry)]
        elif entry.lower().endswith(LIST_SUFFIXES) and osp.isfile(entry):
            pairs += [(p, osp.splitext(osp.basename(p))[0])
                      for p in _list_file(entry)]
        else:
            pairs.append((entry, osp.splitext(osp.basename(entry))[0]))
    items, used = [], set()
    for path, name in pairs:
        unique, k = name, 1
        while unique in used:
            k += 1
            unique = f'{name}__{k}'
        used.add(unique)
        item = InferenceItem(path=path, name=unique)
        if not osp.exists(path):
            item.fail(FileNotFoundError(f"'{path}' does not exist"))
        items.append(item)
    return items


def _loader_of(cfg: Config, task: Optional[str]) -> dict:
    """The test dataloader config of a stage-3 config, or of ``task`` in a
    multi-task config (where it may be the path of a dataset config)."""
    from muscle_mm.engine.loops.utils import task_entry
    if task is None:
        loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    else:
        tasks = cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}
        if task not in tasks:
            raise KeyError(f'The multi-task config has no test or val '
                           f'dataloader for task "{task}"; it has '
                           f'{list(tasks)}. Add one (a dataset config path).')
        loader = tasks[task]
        if isinstance(loader, str):
            try:
                loader = task_entry(loader, 'test_dataloader', task)
            except KeyError:
                loader = task_entry(loader, 'val_dataloader', task)
    if not loader or 'dataset' not in loader:
        raise KeyError('The config has no test_dataloader (nor '
                       'val_dataloader) with a `dataset`; inference reads '
                       'its pipeline.')
    return loader


def _dataset_of(loader: dict) -> dict:
    dataset = loader['dataset']
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset['dataset']  # a wrapper (RepeatDataset...)
    if 'pipeline' not in dataset:
        raise KeyError('The test dataset config has no `pipeline`; inference '
                       'runs the test pipeline.')
    return dataset


def _inference_pipeline(pipeline: Sequence[dict]) -> List[dict]:
    """The test pipeline without the annotation loaders (new images have no
    labels) and with ``LoadXrayImage`` raising on a bad file."""
    out = []
    for t in pipeline:
        t = dict(t)
        name = str(t.get('type', '')).split('.')[-1]
        if 'Annotation' in name:
            continue
        if name == 'LoadXrayImage':
            t['on_error'] = 'raise'
        out.append(t)
    return out


def _classes(dataset: dict) -> Optional[Tuple[str, ...]]:
    meta = dataset.get('metainfo') or {}
    if meta.get('classes'):
        return tuple(meta['classes'])
    try:
        cls = DATASETS.get(dataset.get('type'))
    except Exception:  # an unknown or unimportable type: indices only
        cls = None
    classes = getattr(cls, 'METAINFO', {}).get('classes') if cls else None
    return tuple(classes) if classes else None


@dataclass
class TaskSpec:
    """What inference needs of one task: its pipeline and class names."""
    name: str
    load: Compose  # the pipeline's first transform (the loader)
    rest: Compose  # the others
    classes: Optional[Tuple[str, ...]]

    def class_name(self, index: int) -> str:
        if self.classes and 0 <= index < len(self.classes):
            return str(self.classes[index])
        return str(index)


class XrayInferencer:
    """Run a MUSCLE task model on new radiographs (PNG, JPEG, DICOM).

    Args:
        config (str | Config): A stage-3 config (``configs/muscle/finetune``)
            or a stage-2 multi-task one (``configs/muscle/cl_r18.py``).
        checkpoint (str): The ``.pth`` that ``tools/train.py`` wrote for it;
            it must hold every tensor of the model.
        task (str, optional): ``pneumonia``, ``mura``, ``lung``, ``tbx`` or
            ``all``. Defaults to the config's task, or every head of a
            multi-task model.
        device (str): Torch device. Defaults to ``'cpu'``.
        batch_size (int): Images per forward pass. Defaults to 8.
        score_thr (float): Boxes drawn from this score on (the JSON holds
            all the model returns). Defaults to 0.3.
    """

    def __init__(self,
                 config: Union[str, Config],
                 checkpoint: str,
                 task: Optional[str] = None,
                 device: str = 'cpu',
                 batch_size: int = 8,
                 score_thr: float = 0.3) -> None:
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        cfg = config if isinstance(config, Config) else Config.fromfile(config)
        self.cfg = cfg
        self.checkpoint = checkpoint
        self.batch_size = batch_size
        self.score_thr = score_thr
        self.device = torch.device(device)
        self.scope = cfg.get('default_scope', 'muscle_mm')
        register_all_modules(init_default_scope=False)
        with DefaultScope.overwrite_default_scope(self.scope):
            self.model = MODELS.build(cfg.model)
            self._load(checkpoint)
            self.multitask = hasattr(self.model, 'task_names')
            self.tasks = {t: self._task_spec(t) for t in self._select(task)}
        self.model.to(self.device).eval()

    def _load(self, checkpoint: str) -> None:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'Checkpoint "{checkpoint}" does not exist; pass the .pth '
                'written by tools/train.py for this config.')
        # strict, as tools/test.py: a checkpoint of another model raises
        state_dict, meta = checkpoint_state_dict(checkpoint)
        check_state_dict_fits(self.model, state_dict, checkpoint, meta)
        self.model.load_state_dict(state_dict, strict=False)

    def _select(self, task: Optional[str]) -> List[str]:
        if self.multitask:
            names = list(self.model.task_names)
            if task in (None, 'all'):
                return names
            if task not in names:
                raise KeyError(f'Task "{task}" is not a head of this '
                               f'multi-task model; choose from {names} or '
                               "'all'.")
            return [task]
        dataset = _dataset_of(_loader_of(self.cfg, None))
        own = DATASET_TASKS.get(str(dataset.get('type')).split('.')[-1])
        if task not in (None, 'all') and own is not None and task != own:
            raise ValueError(
                f'This config is the {own} task model (its test dataset is '
                f"{dataset.get('type')}), not {task}; pass --task {own}, or "
                'the config of the other task.')
        return [own or (task if task not in (None, 'all') else 'model')]

    def _task_spec(self, task: str) -> TaskSpec:
        loader = _loader_of(self.cfg, task if self.multitask else None)
        dataset = _dataset_of(loader)
        pipeline = _inference_pipeline(dataset['pipeline'])
        if len(pipeline) < 2:
            raise ValueError(f'The test pipeline of task "{task}" has no '
                             'loading transform followed by packing; '
                             f'found {pipeline}')
        return TaskSpec(
            name=task,
            load=Compose(pipeline[:1]),
            rest=Compose(pipeline[1:]),
            classes=_classes(dataset))

    # ------------------------------------------------------------ running
    def __call__(self,
                 inputs: Union[str, Sequence[str]],
                 out_dir: Optional[str] = None,
                 show_progress: bool = True) -> List[InferenceItem]:
        """Predict every input; with ``out_dir``, write per input a JSON, a
        visualisation PNG (and a lung mask PNG), and ``summary.csv``.

        A file that cannot be read is reported (status ``error``) and
        skipped; the run goes on. With ``out_dir``, masks are kept only in
        their PNG files (``mask_file``), so memory does not grow with the
        number of inputs; without it, each prediction holds its ``mask``.
        """
        items = list_inputs(inputs)
        if not items:
            raise ValueError(f'No images found in {inputs} (looked for '
                             f'{", ".join(IMAGE_SUFFIXES)}).')
        bar = ProgressBar(len(items)) if show_progress else None
        for chunk in self._chunks(items):
            for spec in self.tasks.values():
                ready = self._prepare(
                    spec, chunk, keep_image=out_dir is not None)
                if not ready:
                    continue
                samples = self._predict(spec.name, [d for _, d in ready])
                for (item, _), sample in zip(ready, samples):
                    item.predictions[spec.name] = self._parse(spec, sample)
            if out_dir is not None:
                for item in chunk:
                    self._write(item, out_dir)
                    item.release()  # written: free pixels and masks
            if bar is not None:
                for _ in chunk:
                    bar.update()
        if out_dir is not None:
            write_summary(items, osp.join(out_dir, 'summary.csv'))
        return items

    def extract_features(
            self,
            inputs: Union[str, Sequence[str]],
            out_dir: Optional[str] = None,
            show_progress: bool = True
    ) -> Tuple[np.ndarray, List[InferenceItem]]:
        """Pooled backbone embeddings: the global average of the last
        stage's features, one row per readable input.

        Each image is preprocessed as the (first selected) task sees it;
        batch padding is cropped off before pooling. With ``out_dir``,
        writes ``features.npy`` and ``features.csv`` (row -> file; failed
        files have no row).

        Returns:
            tuple: ``(N, C)`` float32 array and the items (status, row order).
        """
        spec = next(iter(self.tasks.values()))
        items = list_inputs(inputs)
        if not items:
            raise ValueError(f'No images found in {inputs}.')
        bar = ProgressBar(len(items)) if show_progress else None
        rows: List[np.ndarray] = []
        order: List[InferenceItem] = []
        for chunk in self._chunks(items):
            ready = self._prepare(spec, chunk, keep_image=False)
            if ready:
                rows.append(self._embed(spec.name, [d for _, d in ready]))
                order += [item for item, _ in ready]
            if bar is not None:
                for _ in chunk:
                    bar.update()
        feats = np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
        if out_dir is not None:
            os.makedirs(out_dir, exist_ok=True)
            np.save(osp.join(out_dir, 'features.npy'), feats)
            index = {id(item): k for k, item in enumerate(order)}
            with open(osp.join(out_dir, 'features.csv'), 'w', newline='') as f:
                writer = csv.writer(f)
                writer.writerow(['row', 'file', 'status', 'error'])
                for item in items:
                    writer.writerow([
                        index.get(id(item), ''), item.path, item.status,
                        item.error
                    ])
        return feats, items

    def _chunks(self, items: List[InferenceItem]) -> Iterator[list]:
        for start in range(0, len(items), self.batch_size):
            yield items[start:start + self.batch_size]

    def _prepare(self, spec: TaskSpec, chunk: List[InferenceItem],
                 keep_image: bool) -> List[Tuple[InferenceItem, dict]]:
        """Run the task's pipeline on each readable item of ``chunk``."""
        ready = []
        with DefaultScope.overwrite_default_scope(self.scope):
            for item in chunk:
                if item.status != 'ok':
                    continue
                try:
                    results = spec.load(dict(img_path=item.path))
                    if results is None:
                        raise OSError('the loading transform dropped it')
                    if item.image_size is None:
                        item.image_size = tuple(results['ori_shape'][:2])
                    if keep_image and item.image is None:
                        item.image = np.array(results['img'])
                    data = spec.rest(results)
                    if data is None:
                        raise ValueError('the test pipeline dropped it')
                except Exception as err:  # any unreadable file: skip it
                    item.fail(err)
                    continue
                ready.append((item, data))
        return ready

    def _task_model(self, task: str):
        return self.model.tasks[task] if self.multitask else self.model

    @torch.no_grad()
    def _predict(self, task: str, data_list: List[dict]) -> list:
        if self.multitask:
            self.model.active_task = task
        return self.model.test_step(pseudo_collate(data_list))

    @torch.no_grad()
    def _embed(self, task: str, data_list: List[dict]) -> np.ndarray:
        model = self._task_model(task)
        data = model.data_preprocessor(pseudo_collate(data_list), False)
        inputs, samples = data['inputs'], data.get('data_samples')
        shapes = [
            tuple(s.metainfo.get('img_shape', inputs.shape[-2:])[:2])
            for s in (samples or [])
        ] or [tuple(inputs.shape[-2:])] * len(inputs)
        geometry = self.model.task_geometry(task) if self.multitask \
            else nullcontext()
        pooled = []
        with geometry:
            if len(set(shapes)) == 1:  # one size: crop the padding at once
                h, w = shapes[0]
                pooled.append(self._pool(model, inputs[..., :h, :w]))
            else:
                for x, (h, w) in zip(inputs, shapes):
                    pooled.append(self._pool(model, x[None, :, :h, :w]))
        return torch.cat(pooled).float().cpu().numpy()

    @staticmethod
    def _pool(model, x: torch.Tensor) -> torch.Tensor:
        feats = model.backbone(x)
        last = feats[-1] if isinstance(feats, (tuple, list)) else feats
        return last.mean(dim=(2, 3))

    # ------------------------------------------------------------ outputs
    def _parse(self, spec: TaskSpec, sample) -> dict:
        """JSON-ready prediction of one data sample (a lung mask kept as an
        array under ``mask``)."""
        if 'pred_score' in sample:
            scores = sample.pred_score.float().cpu().numpy()
            label = int(scores.argmax())
            return dict(
                type='classification',
                class_scores={
                    spec.class_name(k): float(s)
                    for k, s in enumerate(scores)
                },
                pred_label=label,
                pred_class=spec.class_name(label),
                pred_score=float(scores[label]))
        if 'pred_sem_seg' in sample:
            mask = sample.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
            total = float(mask.size)
            areas = {
                spec.class_name(k):
                dict(
                    area_px=int((mask == k).sum()),
                    fraction=float((mask == k).sum() / total))
                for k in range(1, max(len(spec.classes or ()), 2))
            }
            fg = int((mask > 0).sum())
            return dict(
                type='segmentation',
                mask_area_px=fg,
                mask_fraction=fg / total,
                class_areas=areas,
                mask=mask)
        if 'pred_instances' in sample:
            inst = sample.pred_instances
            boxes = inst.bboxes.float().cpu().numpy()
            scores = inst.scores.float().cpu().numpy()
            labels = inst.labels.cpu().numpy()
            return dict(
                type='detection',
                boxes=[
                    dict(
                        bbox=[float(v) for v in box],
                        label=int(lab),
                        class_name=spec.class_name(int(lab)),
                        score=float(s))
                    for box, s, lab in zip(boxes, scores, labels)
                ])
        raise TypeError(f'Task "{spec.name}": the model returned a '
                        f'{type(sample).__name__} with neither pred_score, '
                        'pred_sem_seg nor pred_instances.')

    def _write(self, item: InferenceItem, out_dir: str) -> None:
        base = osp.join(out_dir, item.name)
        os.makedirs(osp.dirname(base), exist_ok=True)
        record = item.to_json()
        record['config'] = self.cfg.filename
        record['checkpoint'] = self.checkpoint
        if item.status == 'ok':
            for task, pred in item.predictions.items():
                if 'mask' in pred:
                    mask_file = f'{base}_{task}_mask.png'
                    binary = int(pred['mask'].max(initial=0)) <= 1 and len(
                        self.tasks[task].classes or (0, 1)) <= 2
                    cv2.imwrite(mask_file,
                                pred['mask'] * (255 if binary else 1))
                    record['predictions'][task]['mask_file'] = \
                        osp.basename(mask_file)
                    record['predictions'][task]['mask_values'] = (
                        '0 background, 255 foreground'
                        if binary else 'class index')
            if item.image is not None:
                vis_file = f'{base}_vis.png'
                cv2.imwrite(vis_file, self.visualise(item))
                record['visualisation'] = osp.basename(vis_file)
        with open(f'{base}.json', 'w', encoding='utf-8') as f:
            json.dump(record, f, indent=2)

    def visualise(self, item: InferenceItem) -> np.ndarray:
        """The image (BGR, 8-bit) with masks overlaid, boxes from
        ``score_thr`` on, and each task's scores written top-left."""
        img = np.clip(item.image, 0, 255).astype(np.uint8)
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 or \
            img.shape[2] == 1 else img.copy()
        h, w = img.shape[:2]
        scale = max(h, w) / 800
        font, thick = max(0.35, 0.5 * scale), max(1, round(scale))
        lines = []
        for task, pred in item.predictions.items():
            if pred['type'] == 'classification':
                lines.append(f"{task}: {pred['pred_class']} "
                             f"{pred['pred_score']:.2f}")
            elif pred['type'] == 'segmentation':
                mask = pred['mask']
                for k in np.unique(mask):
                    if k == 0:
                        continue
                    colour = np.array(COLOURS[(k - 1) % len(COLOURS)])
                    sel = mask == k
                    img[sel] = (0.6 * img[sel] + 0.4 * colour).astype(np.uint8)
                lines.append(f'{task}: {100 * pred["mask_fraction"]:.1f}% '
                             'of the image')
            else:
                shown = [
                    b for b in pred['boxes'] if b['score'] >= self.score_thr
                ]
                for box in shown:
                    x1, y1, x2, y2 = (int(round(v)) for v in box['bbox'])
                    colour = COLOURS[(box['label'] + 1) % len(COLOURS)]
                    cv2.rectangle(img, (x1, y1), (x2, y2), colour, thick)
                    cv2.putText(img, f"{box['class_name']} {box['score']:.2f}",
                                (x1, max(y1 - 3, 10)),
                                cv2.FONT_HERSHEY_SIMPLEX, font, colour, thick,
                                cv2.LINE_AA)
                lines.append(f'{task}: {len(shown)} boxes >= {self.score_thr}')
        step = int(22 * max(scale, 0.5))
        for k, line in enumerate(lines):
            cv2.putText(img, line, (5, step * (k + 1)),
                        cv2.FONT_HERSHEY_SIMPLEX, font, (0, 255, 255), thick,
                        cv2.LINE_AA)
        return img


def summary_row(item: InferenceItem) -> dict:
    """One CSV row: the file, its status, and each task's headline."""
    row = dict(
        file=item.path, output=item.name, status=item.status, error=item.error)
    for task, pred in item.predictions.items():
        if pred['type'] == 'classification':
            row[f'{task}_class'] = pred['pred_class']
            row[f'{task}_score'] = f"{pred['pred_score']:.6f}"
        elif pred['type'] == 'segmentation':
            row[f'{task}_area_px'] = pred['mask_area_px']
            row[f'{task}_fraction'] = f"{pred['mask_fraction']:.6f}"
        else:
            scores = [b['score'] for b in pred['boxes']]
            row[f'{task}_boxes'] = len(scores)
            row[f'{task}_max_score'] = f'{max(scores):.6f}' if scores else ''
    return row


def write_summary(items: Sequence[InferenceItem], path: str) -> None:
    """``summary.csv``: one row per input, ok or error with the message."""
    rows = [summary_row(item) for item in items]
    keys: List[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


__all__ = [
    'XrayInferencer', 'InferenceItem', 'list_inputs', 'write_summary',
    'IMAGE_SUFFIXES', 'LIST_SUFFIXES', 'is_dicom'
]
