# Copyright (c) muscle_mm contributors. All rights reserved.
"""Check the nine datasets against MUSCLE Table 1.

    python tools/misc/verify_datasets.py --data-root data
    python tools/misc/verify_datasets.py --data-root data/demo --decode

For every dataset and split: builds the reader with ``on_error='skip'`` and
``check_files=True``, prints found vs expected (Table 1) counts with the
difference, and lists the items the reader skipped (missing files, bad
masks or boxes) and images that cannot be read: headers opened by PIL, or
with ``--decode`` every image decoded by ``LoadXrayImage``, as training
reads it (a JPEG libjpeg warns about is a problem). Exit status 1 if anything is missing or unreadable.
"""
import argparse
import os.path as osp
import sys

from muscle_mm.datasets.readers import TABLE1
from muscle_mm.datasets.readers.verify import verify_split


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data')
    parser.add_argument(
        '--datasets',
        nargs='+',
        default=list(TABLE1),
        choices=list(TABLE1),
        metavar='KEY')
    parser.add_argument(
        '--decode',
        action='store_true',
        help='decode every image (slow) instead of headers')
    parser.add_argument(
        '--show',
        type=int,
        default=20,
        help='problems listed per dataset split')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    status = 0
    print(f'{"dataset":<13} {"split":<5} {"found":>7} {"Table 1":>7}  note')
    for key in args.datasets:
        root = osp.join(args.data_root, TABLE1[key]['folder'])
        for split, expected in TABLE1[key]['counts'].items():
            if not osp.isdir(root):
                print(f'{key:<13} {split:<5} {"-":>7} {expected:>7}  '
                      f'folder {root} not found')
                status = 1
                continue
            found, problems = verify_split(key, root, split, args.decode)
            diff = found - expected
            note = 'ok' if diff == 0 else f'difference {diff:+d}'
            if problems:
                note += f', {len(problems)} problem(s)'
                status = 1
            print(f'{key:<13} {split:<5} {found:>7} {expected:>7}  {note}')
            for p in problems[:args.show]:
                print(f'    {p}')
            if len(problems) > args.show:
                print(f'    ... and {len(problems) - args.show} more')
    return status


if __name__ == '__main__':
    sys.exit(main())
