# Copyright (c) muscle_mm contributors. All rights reserved.
"""How fast does the leakage audit hash images? Images/s on one core.

Three passes over the images, in one process with one OpenCV thread (one
core):

* ``decode``: ``LoadXrayImage`` alone, the baseline every hash needs;
* ``cold``: decode + content hash + perceptual hash, into an empty cache;
* ``warm``: the same through the cache the cold pass wrote (a stat per
  file, no decode): what a second audit of ~180k images costs.

The images are every one the audit lists under ``--data-root`` (the demo
data are ~250 px), or, with ``--synthetic N``, N full-size radiographs
(``--size``, default 2048x2500) written to a temporary folder by
``benchmark_loading.py``'s generator, as 8- or 16-bit PNG, JPEG or DICOM.

Examples::

    python tools/misc/generate_demo_data.py --out data/demo
    python tools/dataset_converters/make_splits.py --data-root data/demo
    python tools/analysis_tools/benchmark_hashing.py --data-root data/demo
    python tools/analysis_tools/benchmark_hashing.py --synthetic 40 \\
        --size 2048x2500 --bit-depth 16 --format png --repeat 3
"""
import argparse
import importlib.util
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
from typing import List, Tuple

import cv2
import numpy as np

from muscle_mm.datasets.audit import (HashCache, decode_grey, hash_images,
                                      list_images)

FORMATS = dict(png='.png', jpeg='.jpeg', dicom='.dcm')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data/demo')
    parser.add_argument(
        '--limit', type=int, help='time only the first N images')
    parser.add_argument(
        '--repeat',
        type=int,
        default=1,
        help='rounds of the three passes; the median of each is reported '
        '(steadier on a busy machine)')
    synthetic = parser.add_argument_group(
        'full-size radiographs instead of --data-root')
    synthetic.add_argument(
        '--synthetic',
        type=int,
        metavar='N',
        help='hash N generated radiographs (each a different seed)')
    synthetic.add_argument(
        '--size',
        default='2048x2500',
        metavar='WxH',
        help='their width x height (default 2048x2500, as '
        'benchmark_loading.py)')
    synthetic.add_argument(
        '--bit-depth',
        type=int,
        choices=(8, 16),
        default=16,
        help='8: the 12-bit image >> 4 in uint8; 16: the 12-bit values in '
        'uint16 (a DICOM stores 12 bits; JPEG is 8-bit only)')
    synthetic.add_argument(
        '--format', choices=list(FORMATS), default='png')
    synthetic.add_argument(
        '--keep', metavar='DIR', help='write them here, not to a temporary '
        'folder')
    return parser.parse_args()


def radiograph_generator():
    """``radiograph(w, h, seed)`` of ``benchmark_loading.py`` beside this
    file (tools are scripts, not a package)."""
    path = osp.join(osp.dirname(osp.abspath(__file__)), 'benchmark_loading.py')
    spec = importlib.util.spec_from_file_location('benchmark_loading', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.radiograph


def write_synthetic(folder: str, n: int, w: int, h: int, fmt: str,
                    bit_depth: int) -> List[str]:
    """``n`` distinct ``w`` x ``h`` radiographs (seeds 0..n-1) as files."""
    if fmt == 'jpeg' and bit_depth != 8:
        raise ValueError('JPEG is 8-bit here: use --bit-depth 8')
    radiograph = radiograph_generator()
    paths = []
    for seed in range(n):
        img = radiograph(w, h, seed)  # 12-bit values in uint16
        if bit_depth == 8:
            img = (img >> 4).astype(np.uint8)
        path = osp.join(folder, f'xray{seed:05d}{FORMATS[fmt]}')
        if fmt == 'dicom':
            from muscle_mm.testing import write_dicom
            bits = 12 if bit_depth == 16 else 8
            write_dicom(path, img, bits_stored=bits, RescaleSlope=1,
                        RescaleIntercept=0, WindowCenter=2**(bits - 1),
                        WindowWidth=2**bits)
        else:
            cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 95]
                        if fmt == 'jpeg' else [])
        paths.append(osp.abspath(path))
    return paths


def passes(paths: List[str]) -> Tuple[float, float, float]:
    """Seconds of the decode, cold and warm passes over ``paths``."""
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
    return decode, cold, warm


def benchmark(paths: List[str], what: str, repeat: int = 1) -> None:
    """Time the three passes (``repeat`` rounds, the median of each) and
    print images/s and the ratios."""
    n = len(paths)
    rounds = [passes(paths) for _ in range(repeat)]
    decode, cold, warm = (statistics.median(t) for t in zip(*rounds))
    print(f'{n} {what}, one process, one OpenCV thread'
          + (f', median of {repeat} rounds' if repeat > 1 else '') + ':')
    print(f'  decode only (baseline)  {n / decode:9.1f} images/s')
    print(f'  cold: decode + hashes   {n / cold:9.1f} images/s '
          f'({cold / decode:.2f}x the baseline\'s time)')
    print(f'  warm: from the cache    {n / warm:9.1f} images/s '
          f'({warm / decode:.2g}x the baseline\'s time, cache load '
          'included)')


def main() -> int:
    args = parse_args()
    cv2.setNumThreads(1)  # per core
    if args.repeat < 1:
        raise SystemExit('benchmark_hashing: --repeat must be at least 1')
    if args.synthetic is None:
        if not osp.isdir(args.data_root):
            raise SystemExit(f'benchmark_hashing: --data-root '
                             f'{args.data_root} is not a folder (see the '
                             'example in --help)')
        paths = list(dict.fromkeys(
            p for _, p in list_images(args.data_root, log=lambda _: None)))
        paths = paths[:args.limit] if args.limit else paths
        benchmark(paths, f'images under {args.data_root}', args.repeat)
        return 0
    if args.synthetic < 1:
        raise SystemExit('benchmark_hashing: --synthetic must be at least 1')
    try:
        w, h = (int(v) for v in args.size.lower().split('x'))
    except ValueError:
        raise SystemExit(f'benchmark_hashing: --size {args.size!r}: '
                         'expected WxH, e.g. 2048x2500') from None
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or tmp
        os.makedirs(folder, exist_ok=True)
        try:
            paths = write_synthetic(folder, args.synthetic, w, h,
                                    args.format, args.bit_depth)
        except ValueError as e:
            raise SystemExit(f'benchmark_hashing: {e}')
        mb = sum(osp.getsize(p) for p in paths) / len(paths) / 2**20
        benchmark(paths, f'{w}x{h} {args.bit_depth}-bit {args.format} '
                  f'radiographs ({mb:.1f} MB each)', args.repeat)
    return 0


if __name__ == '__main__':
    sys.exit(main())
