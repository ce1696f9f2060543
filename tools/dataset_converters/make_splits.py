# Copyright (c) muscle_mm contributors. All rights reserved.
"""Write the paper's train/val/test split files of the four task datasets.

    python tools/dataset_converters/make_splits.py --data-root data
    python tools/dataset_converters/make_splits.py --data-root data/demo
    python tools/dataset_converters/make_splits.py \
        --root mura=/datasets/MURA-v1.1 --datasets mura
    python tools/dataset_converters/make_splits.py --data-root /ro/data \
        --out /scratch/splits   # then MUSCLE_SPLIT_ROOT=/scratch/splits
    python tools/dataset_converters/make_splits.py --data-root data \
        --protocol official     # the releases' own splits, see below

Each dataset gets ``<its folder>/muscle_splits/{train,val,test}.txt`` (one
path relative to the dataset folder per line) and ``info.json``; TBX11K
also ``{train,val,test}.json`` (COCO, for TBX11K-style evaluation outside
muscle_mm or a metric ``ann_file``), with the uncertain boxes treated as
``--uncertain-tb`` says and that choice recorded in their ``info``; they
are rewritten on every run.
Splits are patient-aware (Pneumonia, MURA), stratified, and deterministic
for a seed. The paper's counts (MUSCLE Table 1) are the targets, scaled to
what the release holds (or ``--proportions TRAIN VAL TEST``: the demo study
uses 40 10 50, so that its small test splits still give a narrow AUC CI);
found vs paper counts are printed, with the difference, never faked.
Existing split files are kept unless ``--force``.

``--protocol official`` writes ``<its folder>/muscle_splits_official/``
instead, from each release's own split, as the literature reports on it
(the readers' ``protocol='official'``): Pneumonia's ``test/`` (624 images)
is the test set and a patient-aware val is carved from ``train/`` + the
16-image official ``val/``; MURA's ``valid`` is the test set, val carved
from ``train`` (patient-aware, by body part); TBX11K's val (every image:
healthy, sick, TB) is the test set, as its test labels are hidden, val
carved from its train. The lung masks have no official split: their
official files are the paper's split. The carved val takes the paper's
val:train ratio (or ``--proportions``' TRAIN and VAL weights).

Data on a read-only disk: ``--out DIR`` writes them to
``DIR/<release folder name>/muscle_splits/`` instead, where the readers find
them given ``split_root=DIR``, or the environment variable
``MUSCLE_SPLIT_ROOT=DIR`` (seen by every config and the study). Without
``--out``, the splits of a data folder that is not writable go to a per-user
cache (``~/.cache/muscle_mm/splits/<hash of the folder's path>/``, said when
written), where the readers look when the data folder has none.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

from muscle_mm.datasets.readers.base import (PROTOCOL_ENV, PROTOCOLS,
                                             SKIP_HINT, SPLIT_ROOT_ENV,
                                             SPLITS, TABLE1,
                                             DatasetFormatError, ErrorPolicy,
                                             fallback_split_root, split_dir,
                                             split_file)
from muscle_mm.datasets.readers.lung_masks import ChestXrayMasksDataset
from muscle_mm.datasets.readers.mura import MURADataset
from muscle_mm.datasets.readers.pneumonia import KermanyPneumoniaDataset
from muscle_mm.datasets.readers.splits import (grouped_split,
                                               largest_remainder, write_splits)
from muscle_mm.datasets.readers.tbx11k import (UNCERTAIN_TB, TBX11KDataset,
                                               coco_subset, load_tbx11k)

READERS = {
    'pneumonia': KermanyPneumoniaDataset,
    'mura': MURADataset,
    'lung_masks': ChestXrayMasksDataset,
    'tbx11k': TBX11KDataset,
}
POLICY = {
    'pneumonia': 'patient-aware (personN / IM-XXXX), stratified by class',
    'mura': 'patient-aware (patientN) over official train+valid, '
    'stratified by body part',
    'lung_masks': 'images with a mask, stratified by source set',
    'tbx11k': 'TB images of public train+val, stratified by latent TB',
}
OFFICIAL_POLICY = {
    'pneumonia': "release's test/ as test; val carved patient-aware from "
    'train/ + the official val/, stratified by class',
    'mura': "release's valid as test; val carved patient-aware from train, "
    'stratified by body part',
    'lung_masks': "no official split: the paper's split (images with a "
    'mask, stratified by source set)',
    'tbx11k': "every image; release's val as test (its test labels are "
    'hidden); val carved from its train, stratified by healthy / sick / '
    'TB / latent TB',
}
#: the releases' own test sets (images), for the printed check
OFFICIAL_TEST = dict(pneumonia=624, mura=3197, tbx11k=1800)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--data-root',
        default='data',
        help='folder holding the datasets as distributed')
    parser.add_argument(
        '--root',
        nargs='*',
        default=[],
        metavar='KEY=PATH',
        help='dataset folder elsewhere than '
        '<data-root>/<release folder name>')
    parser.add_argument(
        '--datasets',
        nargs='+',
        default=list(READERS),
        choices=list(READERS),
        metavar='KEY')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--uncertain-tb',
        default='active',
        choices=UNCERTAIN_TB,
        help="TBX11K's COCO jsons: boxes of the uncertain "
        'PulmonaryTuberculosis class count as active TB or are ignored '
        "(iscrowd); as TBX11KDataset's uncertain_tb")
    parser.add_argument(
        '--proportions',
        nargs=3,
        type=float,
        metavar=('TRAIN', 'VAL', 'TEST'),
        help="train/val/test weights instead of the paper's counts (Table "
        '1); the demo study uses 40 10 50 (muscle_mm.datasets.demo.'
        'DEMO_SPLIT_PROPORTIONS) so its test splits are large enough for '
        'a narrow AUC CI')
    parser.add_argument(
        '--out',
        metavar='DIR',
        help='write the split files to DIR/<release folder name>/'
        'muscle_splits instead of the dataset folder (data on a read-only '
        f'disk); readers: split_root=DIR or {SPLIT_ROOT_ENV}=DIR')
    parser.add_argument(
        '--protocol',
        default='paper',
        choices=PROTOCOLS,
        help="'paper': the paper's re-splits (muscle_splits/); 'official': "
        "each release's own split (muscle_splits_official/), read by the "
        f"readers' protocol='official' or {PROTOCOL_ENV}=official")
    parser.add_argument(
        '--force', action='store_true', help='overwrite existing split files')
    return parser.parse_args()


def count_table(key: str, found: dict,
                proportions: Optional[dict] = None) -> str:
    """Found vs paper counts; ``target`` is the paper's ratio (or the
    given ``proportions``) applied to the images found (what a group-aware
    split aims at)."""
    paper = TABLE1[key]['counts']
    target = largest_remainder(sum(found.values()), proportions or paper)
    rows = []
    for s in SPLITS:
        d = found[s] - paper[s]
        rows.append(f'  {s:<5} found {found[s]:6d}  paper {paper[s]:6d}  ' +
                    ('ok' if d == 0 else f'difference {d:+d}') +
                    f'  (target for this release {target[s]})')
    return '\n'.join(rows)


def write_coco(root: str, folder: str, splits: dict,
               uncertain_tb: str) -> None:
    """COCO json per split with the reader's image ids, into ``folder``."""
    records = load_tbx11k(root, ErrorPolicy('raise', 'TBX11K'))
    for s, rels in splits.items():
        with open(osp.join(folder, f'{s}.json'), 'w') as f:
            json.dump(coco_subset(records, rels, uncertain_tb), f)
    print(f'tbx11k: COCO jsons written with uncertain_tb={uncertain_tb!r} '
          f'-> {folder}')


def _writable(folder: str) -> Tuple[bool, str]:
    """Whether ``folder`` (or the nearest folder above it that exists,
    which is also returned) can be written."""
    existing = folder
    while not osp.isdir(existing) and osp.dirname(existing) != existing:
        existing = osp.dirname(existing)
    return os.access(existing, os.W_OK), existing


def check_writable(key: str, root: str, folder: str, out: Optional[str]):
    """Stop, saying what to do, unless ``folder`` can be written."""
    ok, existing = _writable(folder)
    if ok:
        return
    if out is None:
        raise SystemExit(
            f'{key}: neither the dataset folder {root} nor the fallback '
            f'{folder} is writable. Write the split files elsewhere with '
            '--out DIR, then let the readers find them with split_root=DIR '
            f'in the dataset config or {SPLIT_ROOT_ENV}=DIR in the '
            'environment (every config and the study read it).')
    raise SystemExit(f'{key}: --out {out}: cannot write {folder} '
                     f'({existing} is not writable); choose another --out.')


def output_folder(key: str, root: str, out: Optional[str],
                  protocol: str) -> Tuple[str, Optional[str]]:
    """The split folder to write and the ``split_root`` it lies under:
    ``out``'s, else the data folder's own, else, when that is read-only,
    the per-user fallback the readers also look in (said on stdout)."""
    folder = split_dir(root, key, out, protocol)
    if out is not None or osp.isdir(folder) or _writable(folder)[0]:
        return folder, out
    fallback = fallback_split_root(root)
    folder = split_dir(root, key, fallback, protocol)
    print(f'{key}: the dataset folder {root} is not writable (a read-only '
          f'disk?); the split files go to {folder}, where the readers look '
          f'when the data folder has none (or choose a place with --out DIR '
          f'and give the readers split_root=DIR or {SPLIT_ROOT_ENV}=DIR).')
    return folder, fallback


def official_splits(key: str, root: str, weights: dict,
                    seed: int) -> Dict[str, List[str]]:
    """The release's own train/test with a val carved from its train
    (grouped, stratified, ``weights``' val:train ratio); the lung masks,
    which have none, keep the paper's split."""
    reader = READERS[key]
    if not hasattr(reader, 'official_candidates'):
        return grouped_split(reader.split_candidates(root), weights, seed)
    parts = reader.official_candidates(root)
    if not parts['train'] or not parts['test']:
        raise SystemExit(f'{key}: the release in {root} has no official '
                         f'train or test image (found {len(parts["train"])} '
                         f'and {len(parts["test"])})')
    carved = grouped_split(parts['train'],
                           dict(weights, test=0), seed)
    return dict(
        train=carved['train'],
        val=carved['val'],
        test=sorted(p for p, _, _ in parts['test']))


def make_one(key: str,
             root: str,
             seed: int,
             force: bool,
             uncertain_tb: str = 'active',
             proportions: Optional[dict] = None,
             out: Optional[str] = None,
             protocol: str = 'paper') -> dict:
    """Write (or keep) the split files of one dataset; returns the counts.

    ``proportions`` (``{'train': w, 'val': w, 'test': w}``) replace the
    paper's counts as the targets' weights; ``out`` is the ``split_root``
    written to instead of ``root`` (``base.split_dir``); ``protocol``
    ``'official'`` splits as :func:`official_splits`.
    """
    folder, split_root = output_folder(key, root, out, protocol)
    paths = [split_file(folder, s) for s in SPLITS]
    if all(osp.isfile(p) for p in paths) and not force:
        found = {
            s: sum(1 for ln in open(p) if ln.strip())
            for s, p in zip(SPLITS, paths)
        }
        print(f'{key}: split files exist in {folder}, kept (--force to '
              'rewrite)')
        if key == 'tbx11k':
            check_writable(key, root, folder, out)
            write_coco(
                root, folder, {
                    s: [ln.strip() for ln in open(p) if ln.strip()]
                    for s, p in zip(SPLITS, paths)
                }, uncertain_tb)
        return found
    check_writable(key, root, folder, out)
    weights = proportions or TABLE1[key]['counts']
    if protocol == 'official':
        splits = official_splits(key, root, weights, seed)
        policy = OFFICIAL_POLICY[key]
    else:
        items = READERS[key].split_candidates(root)
        if not items:
            raise SystemExit(f'{key}: no image found in {root}')
        splits = grouped_split(items, weights, seed)
        policy = POLICY[key]
    found = {s: len(v) for s, v in splits.items()}
    info = dict(
        dataset=key,
        protocol=protocol,
        seed=seed,
        policy=policy,
        found=found,
        paper=TABLE1[key]['counts'],
        candidates=sum(found.values()))
    if proportions:
        info['proportions'] = proportions
    if split_root is not None:
        info['data_root'] = osp.abspath(root)
    write_splits(root, splits, info, folder)
    print(f'{key}: {sum(found.values())} images, {policy}, seed {seed} '
          f'-> {folder}')
    if key == 'tbx11k':
        write_coco(root, folder, splits, uncertain_tb)
    return found


def main():
    args = parse_args()
    roots = {k: osp.join(args.data_root, TABLE1[k]['folder']) for k in READERS}
    for spec in args.root:
        key, _, path = spec.partition('=')
        if key not in READERS or not path:
            raise SystemExit(f'--root {spec!r}: expected KEY=PATH with KEY '
                             f'in {list(READERS)}')
        roots[key] = path
    proportions = None
    if args.proportions:
        if min(args.proportions) < 0 or sum(args.proportions) <= 0:
            raise SystemExit('--proportions: expected three non-negative '
                             f'weights TRAIN VAL TEST, got {args.proportions}')
        proportions = dict(zip(SPLITS, args.proportions))
    missing = 0
    for key in args.datasets:
        if not osp.isdir(roots[key]):
            print(f'{key}: {roots[key]} not found, skipped')
            missing += 1
            continue
        try:
            found = make_one(key, roots[key], args.seed, args.force,
                             args.uncertain_tb, proportions, args.out,
                             args.protocol)
        except DatasetFormatError as e:
            # the reader's hint (on_error="skip") is no option of this tool
            reason = str(e).replace(f' ({SKIP_HINT})', '')
            raise SystemExit(
                f'make_splits.py: {key}: {reason}\nThe split files list '
                'every image of the release, so a bad item cannot be '
                'skipped here: correct the file named above (or restore it '
                'from the release) and run make_splits.py again.') from None
        if args.protocol == 'paper' or key not in OFFICIAL_TEST:
            print(count_table(key, found, proportions))
        else:
            print('  ' + '  '.join(f'{s} {found[s]}' for s in SPLITS) +
                  f'  (the full release\'s test set: {OFFICIAL_TEST[key]})')
    if args.out is not None and missing < len(args.datasets):
        print(f'Split files are under {args.out}: give the readers '
              f'split_root={args.out!r}, or set {SPLIT_ROOT_ENV}='
              f'{args.out} for every config and the study.')
    return 1 if missing == len(args.datasets) else 0


if __name__ == '__main__':
    sys.exit(main())
