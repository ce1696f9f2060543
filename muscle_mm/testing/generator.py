# Copyright (c) muscle_mm contributors. All rights reserved.
"""Write miniatures of the nine public X-ray datasets of MUSCLE (Table 1).

Each writer reproduces the *native* release layout of one dataset (file
names, folder nesting, CSV/TXT/XML/JSON annotation formats, bit depths and
image formats) with a few dozen procedural phantoms, so that the real data
loaders, converters and configs can be exercised end to end without the
~180k real images. Labels are drawn into the images (opacities, TB lesions,
bone maturity, fractures, lung masks) so a small CNN can learn them.

A few task images (pneumonia, lung, TBX11K, MURA), transformed as a real
re-release would (re-encoded, resized, contrast-stretched, mirrored, other
bit depth), are planted as extra images into NIH and Indiana and listed in
their ``planted_copies.json``: the ground truth of the leakage audit
(``tools/misc/audit_overlap.py``). The task datasets are not changed.

Everything is deterministic from ``seed``: every dataset gets its own
``np.random.default_rng([seed, offset])`` stream with a fixed offset, and
files are encoded with fixed parameters, so the same seed gives
byte-identical files. Each dataset is written to a temporary folder beside
its target and renamed into place when complete (with a ``.complete``
marker), so concurrent or interrupted runs never leave a half-written
dataset that looks finished; reruns skip finished datasets.

Only numpy/cv2 are used (no mmcv/mmengine), so this runs before the
OpenMMLab stack is installed.
"""
import csv
import io
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from muscle_mm.metainfo import DATASET_FOLDERS
from .phantoms import (HEART_SCALE, MURA_PARTS, Chest, Style, add_blobs,
                       apply_finding, chest_phantom, hand_phantom,
                       limb_phantom, render)

#: Dataset key -> folder name under ``out_dir`` (as the releases unpack).
DEMO_DATASETS: Dict[str, str] = dict(DATASET_FOLDERS)

# Fixed per-dataset stream offsets (never Python's randomised hash()).
_SEED_OFFSETS = {key: 1009 * (i + 1) for i, key in enumerate(DEMO_DATASETS)}
_VERSION = 4  # bump when the output changes so old demo folders are redone
_COMPLETE = '.complete'  # written last: the folder is finished
_OURS = '.demo_data'  # written first: the folder belongs to this generator

#: Split weights (train, val, test) of the demo study's split files
#: (``make_splits.py --proportions 40 10 50``): half of each task set is
#: test data, so the AUC's 95% CI of a demo model spans well under 20 points
#: and both classes are present, while the training splits stay as small as
#: the demo's minutes allow. The paper's splits (Table 1) are ~80/10/10.
DEMO_SPLIT_PROPORTIONS: Dict[str, int] = {'train': 40, 'val': 10, 'test': 50}

# Per-source grey-level mapping: the heterogeneity MUSCLE has to absorb.
_STYLES = {
    'nih': Style(gamma=1.0, lo=0.03, hi=0.9, noise=0.012),
    'shenzhen': Style(gamma=0.8, lo=0.06, hi=1.0, noise=0.015),
    'montgomery': Style(gamma=1.25, lo=0.02, hi=0.8, noise=0.006,
                        max_value=4095),
    'indiana': Style(gamma=0.9, lo=0.0, hi=0.92, noise=0.01),
    'boneage8': Style(gamma=1.1, lo=0.05, hi=0.95, noise=0.01),
    'boneage16': Style(gamma=0.9, lo=0.1, hi=0.85, noise=0.005,
                       max_value=65535),
    'pneumonia': Style(gamma=0.85, lo=0.08, hi=0.95, noise=0.015),
    'mura': Style(gamma=1.0, lo=0.0, hi=0.9, noise=0.01),
    'tbx11k': Style(gamma=1.05, lo=0.02, hi=0.95, noise=0.01),
}

NIH_FINDINGS = ('Atelectasis', 'Cardiomegaly', 'Effusion', 'Infiltration',
                'Mass', 'Nodule', 'Pneumonia', 'Pneumothorax',
                'Consolidation', 'Edema', 'Emphysema', 'Fibrosis',
                'Pleural_Thickening', 'Hernia')
NIH_HEADER = ('Image Index,Finding Labels,Follow-up #,Patient ID,'
              'Patient Age,Patient Gender,View Position,'
              'OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]')
TBX11K_CATEGORIES = [
    {'id': 1, 'name': 'ActiveTuberculosis'},
    {'id': 2, 'name': 'ObsoletePulmonaryTuberculosis'},
    {'id': 3, 'name': 'PulmonaryTuberculosis'},
]


class _Writer:
    """Writes files below one dataset folder and counts the images."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.n_images = 0

    def _path(self, rel: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def image(self, rel: str, img: np.ndarray, rgb: bool = False) -> None:
        """PNG (8/16-bit) or JPEG by extension; ``rgb`` stores grey as BGR."""
        if rgb:
            img = np.repeat(img[..., None], 3, axis=2)
        ext = Path(rel).suffix.lower()
        params = ([cv2.IMWRITE_JPEG_QUALITY, 90] if ext in ('.jpg', '.jpeg')
                  else [cv2.IMWRITE_PNG_COMPRESSION, 3])
        ok, buf = cv2.imencode(ext, img, params)
        assert ok, rel
        self._path(rel).write_bytes(buf.tobytes())
        self.n_images += 1

    def mask(self, rel: str, mask: np.ndarray) -> None:
        """Binary 0/255 8-bit PNG mask (not counted as an image)."""
        ok, buf = cv2.imencode('.png', (mask > 0).astype(np.uint8) * 255)
        self._path(rel).write_bytes(buf.tobytes())

    def text(self, rel: str, text: str) -> None:
        self._path(rel).write_bytes(text.encode('utf-8'))

    def lines(self, rel: str, lines: Sequence[str]) -> None:
        self.text(rel, ''.join(f'{line}\n' for line in lines))

    def csv(self, rel: str, rows: Sequence[Sequence]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator='\n').writerows(rows)
        self.text(rel, buf.getvalue())

    def json(self, rel: str, obj: dict) -> None:
        self.text(rel, json.dumps(obj))

    def append(self, rel: str, text: str) -> None:
        """Add ``text`` at the end of a file written before."""
        with open(self._path(rel), 'ab') as f:
            f.write(text.encode('utf-8'))


# --------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------


def _count(base: int, scale: float) -> int:
    """Scaled count, at least 2 so every class/split stays non-empty."""
    return max(2, int(round(base * scale)))


def _size(rng: np.random.Generator, long_side: Tuple[int, int],
          aspect: Tuple[float, float]) -> Tuple[int, int]:
    """Random (h, w): long side in a range, ``aspect`` = w / h range."""
    side = int(rng.integers(long_side[0], long_side[1] + 1))
    a = rng.uniform(*aspect)
    return (side, int(side * a)) if a <= 1 else (int(side / a), side)


def _chest(rng: np.random.Generator,
           hw: Tuple[int, int],
           findings: Sequence[str] = (),
           **kwargs) -> Chest:
    """Chest phantom with named findings (NIH-14 vocabulary) drawn in."""
    heart = max([HEART_SCALE.get(f, 1.) for f in findings], default=1.)
    chest = chest_phantom(rng, *hw, heart_scale=heart, **kwargs)
    for name in findings:
        apply_finding(chest, name, rng)
    return chest


# TB lesion kinds = TBX11K category ids:
# (radius range, amplitude, blur sharpness, lung region)
# Sized for the demo's 128x80 input (the 256 px images shrink 2x across and
# 3.2x down): the smallest, latent lesions still span ~7x5 px there.
_TB_KINDS = {
    1: ((0.06, 0.09), 0.38, 0.45, 'upper'),  # active: fuzzy consolidation
    2: ((0.025, 0.035), 0.6, 0.12, 'any'),  # obsolete: calcified dot
    3: ((0.035, 0.05), 0.45, 0.3, 'upper'),  # uncertain type
}


def _add_tb(chest: Chest, rng: np.random.Generator,
            kinds: Sequence[int]) -> List[Tuple[Tuple[int, ...], int, int]]:
    """Draw TB lesions; returns ``(bbox, category_id, lung side)``."""
    out = []
    for kind in kinds:
        radius, amp, sharp, region = _TB_KINDS[kind]
        side = int(rng.integers(2))
        cavity = kind == 1 and rng.random() < 0.3
        for box in add_blobs(chest, rng, 1, radius, amp, sharp, region, side,
                             cavity):
            out.append((box, kind, side))
    return out


def _tb_kinds(rng: np.random.Generator) -> List[int]:
    """1-3 lesions, mostly active, some latent, a few uncertain."""
    n = int(rng.integers(1, 4))
    return [int(k) for k in rng.choice([1, 2, 3], n, p=[0.6, 0.3, 0.1])]


def _sex_age(rng: np.random.Generator) -> Tuple[str, int]:
    return ('male' if rng.random() < 0.6 else 'female'), int(
        rng.integers(18, 80))


def _tb_reading(sides: Sequence[int]) -> str:
    if len(set(sides)) == 2:
        return 'bilateral PTB'
    return f"PTB in the {('right', 'left')[sides[0]]} upper field"


# --------------------------------------------------------------------------
# One writer per dataset
# --------------------------------------------------------------------------


def _write_nih(w: _Writer, rng: np.random.Generator, scale: float) -> None:
    """NIH ChestX-ray14 (NIHCC), as released on box.com / Kaggle.

    Layout: ``Data_Entry_2017.csv`` (11 columns; the header literally
    contains ``OriginalImage[Width,Height]`` and
    ``OriginalImagePixelSpacing[x,y]``, each spanning two columns),
    ``images_001/images/00000001_000.png`` ... (one folder per unpacked
    ``images_0XX.tar.gz``; 8-bit grey PNGs, ``<patient>_<follow-up>``
    names), ``train_val_list.txt`` / ``test_list.txt`` (patient-wise split,
    one image name per line). Labels are ``|``-joined or ``No Finding``.
    """
    n = _count(40, scale)
    rows, train_val, test = [NIH_HEADER.split(',')], [], []
    pid = 0
    while len(rows) - 1 < n:
        pid += 1
        sex, age = _sex_age(rng)
        in_test = pid % 4 == 0
        for fu in range(min(n - len(rows) + 1, int(rng.integers(1, 5)))):
            name = f'{pid:08d}_{fu:03d}.png'
            k = int(rng.choice([0, 1, 2], p=[0.5, 0.35, 0.15]))
            findings = sorted(map(str, rng.choice(NIH_FINDINGS, k, False)))
            view = 'PA' if rng.random() < 0.6 else 'AP'
            chest = _chest(rng, (256, 256), findings)
            folder = 1 + (len(rows) - 1) * 2 // n
            w.image(f'images_{folder:03d}/images/{name}',
                    render(chest.image, _STYLES['nih'], rng))
            spacing = float(rng.choice([0.139, 0.143, 0.168]))
            rows.append([
                name, '|'.join(findings) or 'No Finding', fu, pid, age,
                sex[0].upper(), view,
                int(rng.integers(2000, 3057)),
                int(rng.integers(2000, 3057)), spacing, spacing
            ])
            (test if in_test else train_val).append(name)
    w.csv('Data_Entry_2017.csv', rows)
    w.lines('train_val_list.txt', train_val)
    w.lines('test_list.txt', test)


def _write_shenzhen(w: _Writer, rng: np.random.Generator,
                    scale: float) -> None:
    """Shenzhen Hospital CXR set ("ChinaSet_AllFiles"), NLM release.

    Layout: ``CXR_png/CHNCXR_0001_0.png`` (suffix 0 = normal, 1 = TB;
    normal cases are numbered first), ``ClinicalReadings/CHNCXR_0001_0.txt``
    (``male 35yrs`` then the reading, e.g. ``normal``). The real PNGs are
    grey images saved as RGB, so part of these are 3-channel with equal
    channels.
    """
    n_normal, n_tb = _count(10, scale), _count(10, scale)
    for i in range(n_normal + n_tb):
        tb = i >= n_normal
        name = f'CHNCXR_{i + 1:04d}_{int(tb)}'
        chest = _chest(rng, _size(rng, (280, 310), (0.95, 1.05)))
        reading = 'normal'
        if tb:
            lesions = _add_tb(chest, rng, _tb_kinds(rng))
            reading = _tb_reading([s for _, _, s in lesions] or [0])
        img = render(chest.image, _STYLES['shenzhen'], rng)
        w.image(f'CXR_png/{name}.png', img, rgb=rng.random() < 0.5)
        sex, age = _sex_age(rng)
        w.lines(f'ClinicalReadings/{name}.txt', [f'{sex} {age}yrs', reading])


def _montgomery_case(rng: np.random.Generator,
                     tb: bool) -> Tuple[Chest, np.ndarray, str]:
    """One Montgomery-style 12-bit chest (portrait or landscape)."""
    hw = (292, 240) if rng.random() < 0.8 else (240, 292)
    chest = _chest(rng, hw)
    reading = 'normal'
    if tb:
        lesions = _add_tb(chest, rng, _tb_kinds(rng))
        reading = _tb_reading([s for _, _, s in lesions] or [0])
    return chest, render(chest.image, _STYLES['montgomery'], rng), reading


def _write_montgomery(w: _Writer, rng: np.random.Generator,
                      scale: float) -> None:
    """Montgomery County CXR set (NLM), as unpacked ``MontgomerySet``.

    Layout: ``CXR_png/MCUCXR_0001_0.png`` (12-bit values in 16-bit grey
    PNGs; suffix 1 = TB), ``ManualMask/leftMask/<name>.png`` and
    ``ManualMask/rightMask/<name>.png`` (0/255, same size, patient's left
    and right lung), ``ClinicalReadings/<name>.txt`` (sex, age, reading).
    """
    labels = [0] * _count(6, scale) + [1] * _count(4, scale)
    for i, tb in enumerate(rng.permutation(labels)):
        name = f'MCUCXR_{i + 1:04d}_{tb}'
        chest, img, reading = _montgomery_case(rng, bool(tb))
        w.image(f'CXR_png/{name}.png', img)
        w.mask(f'ManualMask/leftMask/{name}.png', chest.left_lung)
        w.mask(f'ManualMask/rightMask/{name}.png', chest.right_lung)
        sex, age = _sex_age(rng)
        w.lines(f'ClinicalReadings/{name}.txt', [
            f"Patient's Sex: {sex[0].upper()}", f"Patient's Age: {age:03d}Y",
            reading
        ])


# Indiana report texts per finding: (FINDINGS, IMPRESSION, MeSH major).
_INDIANA_TEXT = {
    None: ('The heart is normal in size. The mediastinum is unremarkable. '
           'The lungs are clear.', 'No acute cardiopulmonary disease.',
           'normal'),
    'Cardiomegaly': ('The heart is enlarged. The lungs are clear.',
                     'Cardiomegaly without acute pulmonary disease.',
                     'Cardiomegaly/mild'),
    'Effusion': ('Small pleural effusion with blunting of the '
                 'costophrenic angle.', 'Small pleural effusion.',
                 'Pleural Effusion/small'),
    'Atelectasis': ('Streaky basilar opacity consistent with atelectasis.',
                    'Basilar atelectasis.', 'Pulmonary Atelectasis/base'),
    'Nodule': ('There is a small nodular density in the lung.',
               'Pulmonary nodule. Recommend CT follow-up.',
               'Nodule/lung'),
    'Pneumonia': ('Patchy airspace opacities are present.',
                  'Findings consistent with pneumonia.',
                  'Pneumonia/patchy'),
    'Emphysema': ('The lungs are hyperexpanded and hyperlucent.',
                  'Emphysema.', 'Emphysema'),
}


def _indiana_report(rid: int, finding: Optional[str],
                    images: Sequence[str]) -> str:
    """An OpenI ``ecgen-radiology`` XML report referencing its images."""
    findings, impression, mesh = _INDIANA_TEXT[finding]
    root = ET.Element('eCitation')
    ET.SubElement(root, 'meta', type='rr')
    ET.SubElement(root, 'uId', id=f'CXR{rid}')
    ET.SubElement(root, 'pmcId', id=str(rid))
    ET.SubElement(root, 'docSource').text = 'CXR'
    ET.SubElement(root, 'IUXRId', id=str(rid))
    ET.SubElement(root, 'publisher').text = 'Indiana University'
    ET.SubElement(root, 'title').text = (
        'Indiana University Chest X-ray Collection')
    article = ET.SubElement(
        ET.SubElement(root, 'MedlineCitation', Owner='Indiana University'),
        'Article', PubModel='Electronic')
    abstract = ET.SubElement(article, 'Abstract')
    for label, text in (('COMPARISON', 'None.'),
                        ('INDICATION', 'XXXX-year-old with cough.'),
                        ('FINDINGS', findings), ('IMPRESSION', impression)):
        ET.SubElement(abstract, 'AbstractText', Label=label).text = text
    ET.SubElement(ET.SubElement(root, 'MeSH'), 'major').text = mesh
    for i, name in enumerate(images):
        parent = ET.SubElement(root, 'parentImage', id=name)
        ET.SubElement(parent, 'figureId').text = f'F{i + 1}'
        ET.SubElement(parent, 'caption').text = 'Xray Chest PA and Lateral'
        ET.SubElement(ET.SubElement(parent, 'panel', type='single'),
                      'url').text = (
                          f'/hadoop/storage/radiology/extract/{name}.jpg')
    ET.indent(root)
    return ('<?xml version="1.0" encoding="utf-8"?>\n' +
            ET.tostring(root, encoding='unicode') + '\n')


def _write_indiana(w: _Writer, rng: np.random.Generator,
                   scale: float) -> None:
    """Indiana University CXR collection (OpenI), PNG + report release.

    Layout: ``NLMCXR_png/CXR1_1_IM-0001-3001.png`` style names
    (``CXR<report>[_<n>]_IM-<series>-<instance>``; 8-bit grey, frontal and
    often a lateral view per report) and
    ``NLMCXR_reports/ecgen-radiology/<report>.xml`` (``<eCitation>`` with
    ``AbstractText`` FINDINGS/IMPRESSION and one ``<parentImage id=...>``
    per image).
    """
    n, rid, series = _count(20, scale), 0, 0
    while w.n_images < n:
        rid += 1
        series += int(rng.integers(1, 4))
        finding = (None if rng.random() < 0.55 else str(
            rng.choice(list(_INDIANA_TEXT)[1:])))
        findings = [finding] if finding else []
        views = ['PA', 'LATERAL'][:min(n - w.n_images,
                                       int(rng.integers(1, 3)))]
        names = []
        for k, view in enumerate(views):
            if rid == 1 or rng.random() < 0.3:
                name = f'CXR{rid}_1_IM-{series:04d}-{3 + k}001'
            else:
                name = f'CXR{rid}_IM-{series:04d}-{1 + k}001'
            hw = _size(rng, (256, 300), (0.8, 1.0))
            chest = _chest(rng, hw, findings if k == 0 else (), view=view)
            w.image(f'NLMCXR_png/{name}.png',
                    render(chest.image, _STYLES['indiana'], rng))
            names.append(name)
        w.text(f'NLMCXR_reports/ecgen-radiology/{rid}.xml',
               _indiana_report(rid, finding, names))


def _write_rsna_boneage(w: _Writer, rng: np.random.Generator,
                        scale: float) -> None:
    """RSNA Pediatric Bone Age Challenge 2017, training release.

    Layout: ``boneage-training-dataset.csv`` (``id,boneage,male``; bone age
    in months, ``male`` as ``True``/``False``) and
    ``boneage-training-dataset/<id>.png`` hand radiographs of mixed sizes
    and bit depths (8- and 16-bit PNGs).
    """
    rows, img_id = [['id', 'boneage', 'male']], 1376
    for _ in range(_count(20, scale)):
        img_id += int(rng.integers(1, 6))
        age, male = int(rng.integers(6, 221)), bool(rng.random() < 0.54)
        h, wd = _size(rng, (256, 320), (0.7, 0.9))
        deep = rng.random() < 0.4
        style = _STYLES['boneage16' if deep else 'boneage8']
        w.image(f'boneage-training-dataset/{img_id}.png',
                render(hand_phantom(rng, h, wd, age, male), style, rng))
        rows.append([img_id, age, male])
    w.csv('boneage-training-dataset.csv', rows)


# Opacity density of the pneumonia phantoms, chosen for learnability alone
# (issue 13): at 0.5 / 0.3 a ResNet-18 from scratch was at 100% after the
# demo's 3 epochs, so the table could not tell models apart.
PNEUMONIA_AMP = {'bacteria': 0.2, 'virus': 0.12}


def _pneumonia_chest(rng: np.random.Generator, kind: str) -> np.ndarray:
    """Paediatric AP chest: bacterial = lobar consolidation, viral =
    diffuse bilateral patchy opacities, normal = clear lungs."""
    chest = _chest(rng, _size(rng, (240, 320), (0.8, 1.35)), pediatric=True)
    if kind == 'bacteria':
        add_blobs(chest, rng, int(rng.integers(1, 3)), (0.09, 0.13),
                  PNEUMONIA_AMP[kind], 0.45)
    elif kind == 'virus':
        for side in (0, 1):
            add_blobs(chest, rng, 3, (0.05, 0.08), PNEUMONIA_AMP[kind], 0.5,
                      side=side)
    return render(chest.image, _STYLES['pneumonia'], rng)


def _write_pneumonia(w: _Writer, rng: np.random.Generator,
                     scale: float) -> None:
    """Kermany et al. paediatric pneumonia (Kaggle "chest-xray-pneumonia").

    Layout: ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg``;
    normal ``IM-0115-0001.jpeg`` / ``NORMAL2-IM-1427-0001.jpeg``, pneumonia
    ``person1_bacteria_1.jpeg`` / ``person1_virus_6.jpeg`` (running index
    per type). Several images per patient, patients never cross splits, and
    the official val split is tiny (8 images).
    """
    splits = {'train': (36, 44), 'val': (4, 4), 'test': (66, 66)}
    pid, person, running = 114, 0, {'bacteria': 0, 'virus': 0}
    for split, (n_normal, n_pneu) in splits.items():
        todo = {'NORMAL': _count(n_normal, scale),
                'PNEUMONIA': _count(n_pneu, scale)}
        for cls, n in todo.items():
            done = 0
            while done < n:
                k = min(n - done, int(rng.integers(1, 4)))
                if cls == 'NORMAL':
                    pid += int(rng.integers(1, 4))
                    prefix = 'NORMAL2-' if rng.random() < 0.3 else ''
                    names = [f'{prefix}IM-{pid:04d}-{j + 1:04d}'
                             for j in range(k)]
                    kind = 'normal'
                else:
                    person += 1
                    kind = 'bacteria' if rng.random() < 0.65 else 'virus'
                    names = []
                    for _ in range(k):
                        running[kind] += 1
                        names.append(f'person{person}_{kind}_{running[kind]}')
                for name in names:
                    w.image(f'chest_xray/{split}/{cls}/{name}.jpeg',
                            _pneumonia_chest(rng, kind))
                done += k


def _write_mura(w: _Writer, rng: np.random.Generator, scale: float) -> None:
    """MURA v1.1 (Stanford musculoskeletal radiographs).

    Layout (this folder is the unpacked ``MURA-v1.1/``; CSV paths are
    relative to its parent): ``train_image_paths.csv`` /
    ``valid_image_paths.csv`` (one path per line, no header),
    ``train_labeled_studies.csv`` / ``valid_labeled_studies.csv``
    (``<study dir>/,<0|1>``, no header) and images at
    ``{train,valid}/XR_<PART>/patientNNNNN/studyK_{positive,negative}/
    imageJ.png`` for the seven upper-extremity parts. Abnormal studies show
    a displaced fracture or a metal implant in every image.
    """
    patient = 0
    for split, n_base, first_patient in (('train', 30, 0),
                                         ('valid', 80, 11184)):
        patient = max(patient, first_patient)
        n_studies = max(4, _count(n_base, scale))  # 2+ per class
        paths, studies = [], []
        while len(studies) < n_studies:
            patient += 1
            n_patients = patient - first_patient
            part = MURA_PARTS[(n_patients - 1) % len(MURA_PARTS)]
            # Some patients have 2 studies, unless parts would go missing.
            left = n_studies - len(studies)
            unseen = max(0, len(MURA_PARTS) - n_patients)
            n_here = 1 + int(rng.random() < 0.25 and left - 1 > unseen)
            for study in range(1, n_here + 1):
                i = len(studies)  # alternate labels within every part
                positive = (i + i // len(MURA_PARTS)) % 2
                label = 'positive' if positive else 'negative'
                ab = (None if not positive else
                      ('fracture' if rng.random() < 0.5 else 'implant'))
                sdir = (f'{split}/XR_{part}/patient{patient:05d}/'
                        f'study{study}_{label}/')
                for j in range(int(rng.integers(1, 4))):
                    h, wd = _size(rng, (220, 320), (0.6, 1.0))
                    img = render(limb_phantom(rng, h, wd, part, ab),
                                 _STYLES['mura'], rng)
                    w.image(f'{sdir}image{j + 1}.png', img,
                            rgb=rng.random() < 0.2)
                    paths.append([f'MURA-v1.1/{sdir}image{j + 1}.png'])
                studies.append([f'MURA-v1.1/{sdir}', positive])
        w.csv(f'{split}_image_paths.csv', paths)
        w.csv(f'{split}_labeled_studies.csv', studies)


def _write_lung_masks(w: _Writer, rng: np.random.Generator,
                      scale: float) -> None:
    """Kaggle "Chest Xray Masks and Labels" (Shenzhen + Montgomery masks).

    Layout: ``CXR_png/CHNCXR_0001_0.png`` and ``CXR_png/MCUCXR_0001_0.png``
    side by side; ``masks/CHNCXR_0001_0_mask.png`` for Shenzhen and
    ``masks/MCUCXR_0001_0.png`` for Montgomery (union of both lungs, 0/255,
    same size as the image). About 10% of the images have no mask, as in
    the real set.
    """
    cases = ([('CHNCXR', i) for i in range(_count(44, scale))] +
             [('MCUCXR', i) for i in range(_count(22, scale))])
    n_missing = max(1, int(round(0.1 * len(cases))))
    missing = set(rng.permutation(len(cases))[:n_missing].tolist())
    for idx, (src, i) in enumerate(cases):
        tb = int(i % 2)
        name = f'{src}_{i + 1:04d}_{tb}'
        if src == 'MCUCXR':
            chest, img, _ = _montgomery_case(rng, bool(tb))
            mask_name = f'{name}.png'
        else:
            chest = _chest(rng, _size(rng, (280, 310), (0.95, 1.05)))
            if tb:
                _add_tb(chest, rng, _tb_kinds(rng))
            img = render(chest.image, _STYLES['shenzhen'], rng)
            mask_name = f'{name}_mask.png'
        w.image(f'CXR_png/{name}.png', img)
        if idx not in missing:
            w.mask(f'masks/{mask_name}', chest.lungs)


def _write_tbx11k(w: _Writer, rng: np.random.Generator,
                  scale: float) -> None:
    """TBX11K (Liu et al., CVPR 2020) tuberculosis detection release.

    Layout: ``imgs/{tb,health,sick}/{tb0003,h0001,s0001}.png`` (8-bit),
    ``annotations/json/TBX11K_{train,val}.json`` (COCO: images with
    ``file_name`` like ``tb/tb0003.png``; boxes ``[x, y, w, h]`` for the 3
    TB categories; healthy/sick images have none) and
    ``lists/{TBX11K,all}_{train,val}.txt`` (``tb/tb0003.png`` lines).
    Active TB = large fuzzy consolidations, obsolete = small calcified dots.
    """
    groups = {'tb': (40, 24), 'health': (8, 2), 'sick': (8, 2)}
    prefix = {'tb': 'tb', 'health': 'h', 'sick': 's'}
    data = {s: {'images': [], 'annotations': []} for s in ('train', 'val')}
    for group, (n_train, n_val) in groups.items():
        number = 0
        for split, n in (('train', _count(n_train, scale)),
                         ('val', _count(n_val, scale))):
            for _ in range(n):
                number += int(rng.integers(1, 4))
                file_name = f'{group}/{prefix[group]}{number:04d}.png'
                findings = ([str(rng.choice(['Pneumonia', 'Effusion',
                                             'Mass', 'Atelectasis']))]
                            if group == 'sick' else [])
                chest = _chest(rng, (256, 256), findings)
                lesions = (_add_tb(chest, rng, _tb_kinds(rng))
                           if group == 'tb' else [])
                w.image(f'imgs/{file_name}',
                        render(chest.image, _STYLES['tbx11k'], rng))
                images = data[split]['images']
                anns = data[split]['annotations']
                image_id = len(images) + 1
                images.append({'id': image_id, 'file_name': file_name,
                               'width': 256, 'height': 256})
                for (x, y, bw, bh), cat, _ in lesions:
                    anns.append({'id': len(anns) + 1, 'image_id': image_id,
                                 'category_id': cat,
                                 'bbox': [x, y, bw, bh], 'area': bw * bh,
                                 'iscrowd': 0})
    for split, d in data.items():
        w.json(f'annotations/json/TBX11K_{split}.json',
               dict(d, categories=TBX11K_CATEGORIES))
        names = [im['file_name'] for im in d['images']]
        w.lines(f'lists/TBX11K_{split}.txt', names)
        w.lines(f'lists/all_{split}.txt', names)


_WRITERS: Dict[str, Callable[[_Writer, np.random.Generator, float], None]] = {
    'nih': _write_nih,
    'shenzhen': _write_shenzhen,
    'montgomery': _write_montgomery,
    'indiana': _write_indiana,
    'rsna_boneage': _write_rsna_boneage,
    'pneumonia': _write_pneumonia,
    'mura': _write_mura,
    'lung_masks': _write_lung_masks,
    'tbx11k': _write_tbx11k,
}


# --------------------------------------------------------------------------
# Planted copies (issue 12): the leakage audit's ground truth
# --------------------------------------------------------------------------

#: Manifest of the copies, in each receiving dataset folder.
PLANTED_MANIFEST = 'planted_copies.json'
#: Receiving stage-1-only dataset -> (source task dataset, one transform per
#: copy). Each transform is used twice over all sources.
_PLANTS = {
    'nih': (('pneumonia', ('exact', 'jpeg', 'flip')),
            ('lung_masks', ('resize', 'contrast', 'bit_depth')),
            ('tbx11k', ('jpeg', 'flip', 'contrast'))),
    'indiana': (('mura', ('exact', 'resize', 'bit_depth')), ),
}
_CAPTURED = 10  # images of a source rendered to pick its copies from


class _Enough(Exception):
    """Stops a source writer once :class:`_Capture` has its images."""


class _Capture(_Writer):
    """Renders the first ``limit`` images of a dataset in memory (nothing
    is written): a planted copy's source, re-rendered from the source's
    own stream, so every dataset is still generated on its own."""

    def __init__(self, limit: int) -> None:
        super().__init__(Path('.'))
        self.limit = limit
        self.images: List[Tuple[str, np.ndarray]] = []
        self.masks: List[str] = []

    def image(self, rel: str, img: np.ndarray, rgb: bool = False) -> None:
        if len(self.images) == self.limit:
            raise _Enough
        if Path(rel).suffix.lower() in ('.jpg', '.jpeg'):
            # the pixels of the file, which _Writer.image encodes so
            buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
            img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        self.images.append((rel, img))  # grey (an RGB file: equal channels)

    def mask(self, rel: str, mask: np.ndarray) -> None:
        self.masks.append(Path(rel).stem)

    def text(self, rel: str, text: str) -> None:
        pass


def _plant_sources(key: str, seed: int, scale: float,
                   n: int) -> List[Tuple[str, np.ndarray]]:
    """``n`` images of dataset ``key`` that its split files list (lung
    images with a mask, TBX11K TB images), every second one from the
    start of its stream: ``(path relative to the dataset, grey pixels)``."""
    cap = _Capture(_CAPTURED)
    try:
        _WRITERS[key](cap, np.random.default_rng([seed, _SEED_OFFSETS[key]]),
                      scale)
    except _Enough:
        pass
    masks = {m[:-5] if m.endswith('_mask') else m for m in cap.masks}
    usable = [(rel, img) for rel, img in cap.images
              if (key != 'lung_masks' or Path(rel).stem in masks) and
              (key != 'tbx11k' or rel.startswith('imgs/tb/'))]
    return usable[1::2][:n]


def _to_8bit(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    lo, hi = float(img.min()), float(img.max())
    return np.rint((img - lo) * (255 / max(hi - lo, 1))).astype(np.uint8)


def plant_transform(img: np.ndarray, kind: str) -> np.ndarray:
    """One planted copy: the same pixels (``exact``, a lossless
    re-encode), a JPEG round trip at quality 75 (``jpeg``), 0.7x
    (``resize``), the 2nd-98th percentile stretched over the whole range
    (``contrast``, clipping), a left-right mirror (``flip``) or the other
    bit depth (``bit_depth``: 8-bit x 257, or 16-bit onto 0-255)."""
    if kind == 'exact':
        return img
    if kind == 'jpeg':
        ok, buf = cv2.imencode('.jpg', _to_8bit(img),
                               [cv2.IMWRITE_JPEG_QUALITY, 75])
        return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if kind == 'resize':
        h, w = img.shape[:2]
        return cv2.resize(img, (round(w * 0.7), round(h * 0.7)),
                          interpolation=cv2.INTER_AREA)
    if kind == 'contrast':
        lo, hi = np.percentile(img, (2, 98))
        top = np.iinfo(img.dtype).max
        out = (img.astype(np.float64) - lo) * (top / max(hi - lo, 1))
        return np.clip(np.rint(out), 0, top).astype(img.dtype)
    if kind == 'flip':
        return np.ascontiguousarray(img[:, ::-1])
    if kind == 'bit_depth':
        return (img.astype(np.uint16) * 257 if img.dtype == np.uint8 else
                _to_8bit(img))
    raise ValueError(f'unknown planted transform {kind!r}')


def _add_nih(w: _Writer, rng: np.random.Generator, i: int,
             img: np.ndarray) -> str:
    """A planted image as a new NIH patient (train_val list, no finding)."""
    pid = 30001 + i
    name = f'{pid:08d}_000.png'
    rel = f'images_002/images/{name}'
    w.image(rel, img)
    sex, age = _sex_age(rng)
    buf = io.StringIO()
    csv.writer(buf, lineterminator='\n').writerow([
        name, 'No Finding', 0, pid, age, sex[0].upper(), 'PA', img.shape[1],
        img.shape[0], 0.143, 0.143
    ])
    w.append('Data_Entry_2017.csv', buf.getvalue())
    w.append('train_val_list.txt', f'{name}\n')
    return rel


def _add_indiana(w: _Writer, rng: np.random.Generator, i: int,
                 img: np.ndarray) -> str:
    """A planted image as a new Indiana report with one image."""
    rid = 9001 + i
    name = f'CXR{rid}_IM-{9001 + i:04d}-1001'
    rel = f'NLMCXR_png/{name}.png'
    w.image(rel, img)
    w.text(f'NLMCXR_reports/ecgen-radiology/{rid}.xml',
           _indiana_report(rid, None, [name]))
    return rel


_PLANT_WRITERS = {'nih': _add_nih, 'indiana': _add_indiana}


def _plant(w: _Writer, key: str, seed: int, scale: float) -> None:
    """Add the planted copies of ``_PLANTS[key]`` and their manifest."""
    rng = np.random.default_rng([seed, _SEED_OFFSETS[key], 1])
    copies = []
    for src, kinds in _PLANTS[key]:
        sources = _plant_sources(src, seed, scale, len(kinds))
        for (rel, img), kind in zip(sources, kinds):
            copy = _PLANT_WRITERS[key](w, rng, len(copies),
                                       plant_transform(img, kind))
            copies.append(
                dict(
                    copy=f'{DEMO_DATASETS[key]}/{copy}',
                    source=f'{DEMO_DATASETS[src]}/{rel}',
                    transform=kind))
    w.json(
        PLANTED_MANIFEST,
        dict(
            note='copies of task images planted by the demo generator for '
            'the leakage audit (tools/misc/audit_overlap.py); paths '
            'relative to the demo data root',
            copies=copies))

# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def _params(seed: int, scale: float) -> dict:
    return {'generator': 'muscle_mm demo', 'version': _VERSION,
            'seed': seed, 'scale': scale}


def completed_count(root: Path, seed: int, scale: float) -> Optional[int]:
    """Image count of a finished demo folder made with these settings."""
    try:
        marker = json.loads((Path(root) / _COMPLETE).read_text())
    except (OSError, ValueError):
        return None
    if {k: marker.get(k) for k in _params(seed, scale)} != _params(
            seed, scale):
        return None
    return int(marker['images'])


def _check_ours(root: Path) -> None:
    """Refuse to replace a folder the generator did not write."""
    if root.exists() and any(root.iterdir()) and not (root / _OURS).exists():
        raise FileExistsError(
            f'{root} exists and was not written by the demo generator '
            '(real data?); refusing to overwrite it.')


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _sweep_stale(root: Path) -> None:
    """Remove the ``.<name>.tmp-<pid>`` (and ``.old-<pid>``) folders that a
    generator killed before its clean-up left beside ``root``; those of live
    processes are theirs, in use."""
    if not root.parent.is_dir():
        return
    pattern = re.compile(rf'\.{re.escape(root.name)}\.(?:tmp|old)-(\d+)')
    for path in root.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and not _pid_alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)


def _move_into_place(tmp: Path, root: Path, seed: int, scale: float,
                     overwrite: bool) -> None:
    """Rename the finished ``tmp`` to ``root``, replacing an old folder.

    Renames are atomic, so a reader sees either no dataset or a whole one,
    and of two generators racing for ``root`` one wins and the other, whose
    copy is identical (same seed), discards its own.
    """
    for _ in range(3):
        if root.exists():
            if not overwrite and \
                    completed_count(root, seed, scale) is not None and \
                    json.loads((tmp / _COMPLETE).read_text()) == \
                    json.loads((root / _COMPLETE).read_text()):
                shutil.rmtree(tmp)  # another run finished the same folder
                return
            _check_ours(root)
            old = root.with_name(f'.{root.name}.old-{os.getpid()}')
            try:
                root.rename(old)
            except FileNotFoundError:  # the other run moved it first
                continue
            shutil.rmtree(old, ignore_errors=True)
        try:
            tmp.rename(root)
            return
        except OSError:  # another run renamed its copy into place first
            continue
    raise RuntimeError(f'Could not move {tmp} to {root}: another process '
                       'keeps replacing it.')


def generate_demo_data(out_dir: str,
                       seed: int = 0,
                       scale: float = 1.0,
                       datasets: Optional[Sequence[str]] = None,
                       overwrite: bool = False) -> Dict[str, int]:
    """Write synthetic miniatures of the nine MUSCLE datasets.

    Args:
        out_dir: parent folder; dataset ``k`` goes to
            ``out_dir/DEMO_DATASETS[k]``.
        seed: non-negative seed; the same seed gives byte-identical files.
        scale: multiplies every image count (at least 2 per class/split).
        datasets: subset of ``DEMO_DATASETS`` keys (default: all nine).
        overwrite: regenerate folders that are already complete.

    Returns:
        Number of images per dataset key (also for skipped, complete ones).
    """
    keys = list(DEMO_DATASETS) if datasets is None else list(datasets)
    unknown = sorted(set(keys) - set(DEMO_DATASETS))
    if unknown:
        raise ValueError(f'Unknown demo datasets {unknown}; '
                         f'choose from {list(DEMO_DATASETS)}')
    if int(seed) != seed or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed}')
    if not scale > 0:
        raise ValueError(f'scale must be positive, got {scale}')
    seed, scale = int(seed), float(scale)
    counts = {}
    for key in keys:
        root = Path(out_dir) / DEMO_DATASETS[key]
        _sweep_stale(root)
        done = completed_count(root, seed, scale)
        if done is not None and not overwrite:
            counts[key] = done
            continue
        _check_ours(root)
        # written beside the target and renamed into place when complete
        tmp = root.with_name(f'.{root.name}.tmp-{os.getpid()}')
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        try:
            (tmp / _OURS).write_text(json.dumps(_params(seed, scale)) + '\n')
            writer = _Writer(tmp)
            rng = np.random.default_rng([seed, _SEED_OFFSETS[key]])
            _WRITERS[key](writer, rng, scale)
            if key in _PLANTS:
                _plant(writer, key, seed, scale)
            marker = dict(_params(seed, scale), images=writer.n_images)
            (tmp / _COMPLETE).write_text(json.dumps(marker) + '\n')
            _move_into_place(tmp, root, seed, scale, overwrite)
        except BaseException:  # interrupted or failed: leave nothing behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        counts[key] = writer.n_images
    return counts
