# Copyright (c) muscle_mm contributors. All rights reserved.
"""Write the synthetic demo miniatures of the nine MUSCLE X-ray datasets.

    python tools/misc/generate_demo_data.py --out data/demo
    python tools/misc/generate_demo_data.py --out data/demo --scale 0.3 \
        --datasets nih shenzhen

Each dataset lands in ``<out>/<native folder name>`` with its real release
layout (see ``muscle_mm.testing``). Finished datasets are skipped unless
``--overwrite``. ``muscle_mm.testing`` needs numpy and cv2 only, so this
works before torch/mmcv/mmengine are installed.
"""
import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if (REPO / 'muscle_mm' / 'testing').is_dir():  # in a checkout: its generator
    sys.path.insert(0, str(REPO))
from muscle_mm import testing  # noqa: E402


def parse_args(keys):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/demo', help='output folder')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--scale', type=float, default=1.0,
        help='multiplies every image count (at least 2 per class/split)')
    parser.add_argument(
        '--datasets', nargs='+', choices=keys, default=keys, metavar='KEY',
        help=f'subset to write (default: all of {" ".join(keys)})')
    parser.add_argument(
        '--overwrite', action='store_true',
        help='regenerate datasets that are already complete')
    return parser.parse_args()


def main():
    keys = list(testing.DEMO_DATASETS)
    args = parse_args(keys)
    from_marker = testing.generator.completed_count
    total, t_all = 0, time.perf_counter()
    for key in args.datasets:
        root = Path(args.out) / testing.DEMO_DATASETS[key]
        skipped = (not args.overwrite
                   and from_marker(root, args.seed, args.scale) is not None)
        t0 = time.perf_counter()
        n = testing.generate_demo_data(args.out, args.seed, args.scale,
                                       [key], args.overwrite)[key]
        status = 'complete, skipped' if skipped else (
            f'written in {time.perf_counter() - t0:.1f}s')
        print(f'{key:<13} {n:4d} images -> {root}  ({status})')
        total += n
    print(f'total         {total:4d} images in '
          f'{time.perf_counter() - t_all:.1f}s')


if __name__ == '__main__':
    main()
