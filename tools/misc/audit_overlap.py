# Copyright (c) muscle_mm contributors. All rights reserved.
"""Find the same radiograph across the nine datasets and their splits.

    python tools/misc/audit_overlap.py --data-root data
    python tools/misc/audit_overlap.py --data-root data/demo \
        --work-dir work_dirs/audit_demo --protocol official \
        --cache-dir work_dirs/.audit_cache

Every image the study uses (stage-1-only datasets: group ``<key>/all``;
task datasets: the ``train``/``val``/``test`` split files of
``--protocol``, written by ``tools/dataset_converters/make_splits.py``) is
decoded as training decodes it and hashed: exact copies share the SHA-1 of
the decoded pixels, near-copies (re-encoded, resized, 8 vs 16 bit,
contrast-stretched, mirrored) have perceptual hashes within
``--threshold`` bits. Prints the group x group matrix of pairs and writes
to ``--work-dir``:

* ``pairs.csv``: every pair (kind, distance, mirrored, groups, paths);
* ``stage1_exclude.txt``: stage-1 images with a copy in a task's val/test
  split, one path relative to the data root per line (what
  ``configs/muscle/mdmoco_r18_noleak.py`` leaves out of MD-MoCo);
* ``audit_summary.json``: protocol, counts per cell, threshold, images
  hashed and read from the cache, leakage figures;

and to ``--cache-dir`` (default ``--work-dir``) ``hash_cache.json``: the
hashes, keyed by absolute path, size and mtime, whatever the protocol or
work dir: a second run, of any work dir sharing the cache, decodes only
new or changed files.

On the demo data the generator's planted copies (``planted_copies.json``)
are scored: precision and recall per threshold are printed and saved.
"""
import argparse
import json
import os
import os.path as osp
import sys

from muscle_mm.datasets.audit import (DEFAULT_THRESHOLD, format_matrix,
                                      pair_matrix, pairs_csv, planted_scores,
                                      read_planted, run_audit,
                                      stage1_exclusions, summary)
from muscle_mm.datasets.audit.hashing import CACHE_NAME
from muscle_mm.datasets.readers.base import default_protocol
from muscle_mm.metainfo import PROTOCOL_ENV, PROTOCOLS, TABLE1
from muscle_mm.utils.fileio import atomic_write

SWEEP = (0, 2, 4, 6, 8, 10, 12, 16, 24, 32)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--data-root',
        default='data',
        help='folder holding the datasets as distributed')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/audit',
        help='outputs (default work_dirs/audit)')
    parser.add_argument(
        '--cache-dir',
        help='the hash cache (default --work-dir); audits of other work '
        'dirs of the same images may share it')
    parser.add_argument(
        '--protocol',
        choices=PROTOCOLS,
        help="whose task splits are audited: 'paper' (muscle_splits/) or "
        "'official' (muscle_splits_official/); default "
        f"${PROTOCOL_ENV}, else 'paper', as the readers")
    parser.add_argument(
        '--threshold',
        type=int,
        default=DEFAULT_THRESHOLD,
        help='largest Hamming distance (of 255 bits) of a near-copy '
        f'(default {DEFAULT_THRESHOLD}: precision and recall 1 on the '
        "demo's planted copies)")
    parser.add_argument(
        '--out-csv', help='pairs CSV (default <work-dir>/pairs.csv)')
    parser.add_argument(
        '--workers',
        type=int,
        default=min(8, os.cpu_count() or 1),
        help='processes decoding images not yet in the cache')
    parser.add_argument(
        '--datasets',
        nargs='+',
        choices=list(TABLE1),
        metavar='KEY',
        help='audit only these datasets (keys of Table 1)')
    return parser.parse_args()


def _fmt(x) -> str:
    return '-' if x is None else f'{x:.3f}'


def main() -> int:
    args = parse_args()
    if not osp.isdir(args.data_root):
        raise SystemExit(f'audit_overlap: --data-root {args.data_root} is '
                         'not a folder; expected the folder holding the '
                         'datasets as distributed (README, Data)')
    planted = read_planted(args.data_root)
    sweep = sorted(set(SWEEP) | {args.threshold})
    try:
        protocol = default_protocol(args.protocol)  # a bad $MUSCLE_PROTOCOL
        audit = run_audit(
            args.data_root,
            args.cache_dir or args.work_dir,
            args.threshold,
            args.workers,
            args.datasets,
            search=max(sweep) if planted else None,
            protocol=protocol)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise SystemExit(f'audit_overlap: {e}')
    cells = pair_matrix(audit)
    info = summary(audit, cells)
    print(f'{info["images"]} images, {protocol} splits '
          f'({info["decoded"]} decoded, '
          f'{info["from_cache"]} from the cache), threshold '
          f'{audit.threshold}: {info["pairs"]["exact"]} exact and '
          f'{info["pairs"]["near"]} near pair(s)')
    print(format_matrix(audit, cells))

    out_csv = args.out_csv or osp.join(args.work_dir, 'pairs.csv')
    exclude = osp.join(args.work_dir, 'stage1_exclude.txt')
    excluded = stage1_exclusions(audit)
    atomic_write(pairs_csv(audit), out_csv)
    atomic_write(''.join(f'{p}\n' for p in excluded), exclude)
    info.update(pairs_csv=osp.abspath(out_csv),
                exclude_file=osp.abspath(exclude),
                hash_cache=osp.abspath(
                    osp.join(args.cache_dir or args.work_dir, CACHE_NAME)))
    lk = info['leakage']
    print(f'stage-1 images with a copy in a task val/test split: '
          f'{lk["stage1_images_with_heldout_copy"]} -> {exclude}')
    for group, n in lk['heldout_images_with_stage1_copy'].items():
        print(f'  {group}: {n} image(s) also in the stage-1 union')
    if planted:
        rows = planted_scores(audit, planted, sweep)
        info['planted'] = rows
        print(f'planted copies ({len(planted)}): threshold  found  true  '
              'precision  recall')
        for r in rows:
            mark = '  <- --threshold' if r['threshold'] == audit.threshold \
                else ''
            print(f'{r["threshold"]:>38}  {r["found"]:>5}  {r["true"]:>4}  '
                  f'{_fmt(r["precision"]):>9}  {_fmt(r["recall"]):>6}{mark}')
    atomic_write(
        json.dumps(info, indent=2),
        osp.join(args.work_dir, 'audit_summary.json'))
    print(f'pairs: {out_csv}; summary: '
          f'{osp.join(args.work_dir, "audit_summary.json")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
