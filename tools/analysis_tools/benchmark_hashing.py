# Copyright (c) muscle_mm contributors. All rights reserved.
"""How fast does the leakage audit hash images? Images/s on one core.

Three passes over every image the audit lists under ``--data-root``, in one
process (one core):

* ``decode``: ``LoadXrayImage`` alone, the baseline every hash needs;
* ``cold``: decode + content hash + perceptual hash, into an empty cache;
* ``warm``: the same through the cache the cold pass wrote (a stat per
  file, no decode): what a second audit of ~180k images costs.

Example::

    python tools/misc/generate_demo_data.py --out data/demo
    python tools/dataset_converters/make_splits.py --data-root data/demo
    python tools/analysis_tools/benchmark_hashing.py --data-root data/demo
"""
import argparse
import os.path as osp
import sys
import tempfile
import time

from muscle_mm.datasets.audit import (HashCache, decode_grey, hash_images,
                                      list_images)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data/demo')
    parser.add_argument(
        '--limit', type=int, help='time only the first N images')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if not osp.isdir(args.data_root):
        raise SystemExit(f'benchmark_hashing: --data-root {args.data_root} '
                         'is not a folder (see the example in --help)')
    paths = list(dict.fromkeys(
        p for _, p in list_images(args.data_root, log=lambda _: None)))
    paths = paths[:args.limit] if args.limit else paths
    n = len(paths)

    start = time.perf_counter()
    for p in paths:
        decode_grey(p)
    decode = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        _, errors, decoded = hash_images(paths, HashCache(tmp))
        cold = time.perf_counter() - start
        start = time.perf_counter()
        _, _, again = hash_images(paths, HashCache(tmp))
        warm = time.perf_counter() - start
    assert decoded == n and again == 0 and not errors, (decoded, again,
                                                         errors)
    print(f'{n} images under {args.data_root}, one process:')
    print(f'  decode only (baseline)  {n / decode:9.1f} images/s')
    print(f'  cold: decode + hashes   {n / cold:9.1f} images/s '
          f'({cold / decode:.2f}x the baseline\'s time)')
    print(f'  warm: from the cache    {n / warm:9.1f} images/s '
          f'({warm / decode:.3f}x the baseline\'s time, cache load '
          'included)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
