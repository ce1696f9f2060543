# Copyright (c) muscle_mm contributors. All rights reserved.
"""Is X-ray loading fast enough? Two checks.

``files``: load + resize throughput per CPU core of ``LoadXrayImage`` and
mmcv's ``Resize`` (to the paper's 800x500) on a 16-bit PNG, a JPEG and a
DICOM of a 2500x2048 radiograph written to a temporary folder, against a
baseline measured in the same run: ``cv2.imread`` + ``cv2.resize`` (for the
DICOM ``pydicom.dcmread(...).pixel_array`` + ``cv2.resize``), which neither
maps intensities nor checks the file.

``log``: data_time against iteration time of a training run, read from
``WORK_DIR/<timestamp>/vis_data/scalars.json`` (or a ``.log`` file). The
loader is not the bottleneck when data_time stays under ``--max-ratio``
(5%) of the iteration time; the exit status is 1 otherwise.

Examples::

    python tools/analysis_tools/benchmark_loading.py files --repeat 10
    python tools/train.py configs/muscle/demo/mdmoco_r18_demo.py \\
        --work-dir work_dirs/demo_moco
    python tools/analysis_tools/benchmark_loading.py log work_dirs/demo_moco
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='mode', required=True)

    files = sub.add_parser('files', help='load+resize throughput per core')
    files.add_argument(
        '--size',
        default='2048x2500',
        metavar='WxH',
        help='source image width x height: a 2500x2048 '
        'radiograph, portrait (default 2048x2500)')
    files.add_argument(
        '--scale',
        default='800x500',
        metavar='WxH',
        help="resize target, the paper's w x h "
        '(configs/_base_/xray_constants.py)')
    files.add_argument(
        '--repeat',
        type=int,
        default=10,
        help='timed loads per file and loader (after 1 '
        'warm-up); the median is reported')
    files.add_argument(
        '--keep',
        metavar='DIR',
        help='write the test files here instead of a '
        'temporary folder')

    log = sub.add_parser('log', help='data_time vs time of a training run')
    log.add_argument('path', help='work_dir, a scalars.json or a .log file')
    log.add_argument(
        '--skip',
        type=int,
        default=1,
        help='first logged windows to ignore (worker start-up)')
    log.add_argument(
        '--max-ratio',
        type=float,
        default=0.05,
        help='largest acceptable data_time / time')
    return parser.parse_args()


def wxh(text: str) -> Tuple[int, int]:
    w, h = (int(v) for v in text.lower().split('x'))
    return w, h


# --------------------------------------------------------------- files mode
def radiograph(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A 12-bit chest-like image in [0, 4095]: smooth anatomy + quantum
    noise, so that PNG/JPEG compress it as they compress real films (pure
    noise or flat images would make decoding unrealistically slow/fast)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w / 2, h / 2
    body = np.exp(-(((xx - cx) / (0.42 * w))**4 + ((yy - cy) / (0.48 * h))**4))
    lungs = sum(
        np.exp(-(((xx - cx + s * 0.2 * w) / (0.13 * w))**2 +
                 ((yy - 0.45 * h) / (0.28 * h))**2)) for s in (-1, 1))
    low = cv2.resize(
        rng.random((16, 16), dtype=np.float32), (w, h),
        interpolation=cv2.INTER_CUBIC)
    img = 0.15 + 0.7 * body - 0.35 * lungs + 0.08 * low
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 4095).astype(np.uint16)


def write_files(folder: str, w: int, h: int) -> Dict[str, str]:
    """A 16-bit PNG, an 8-bit JPEG and a 12-bit DICOM of one radiograph."""
    from muscle_mm.testing import write_dicom
    img = radiograph(w, h)
    paths = dict(
        png16=osp.join(folder, 'xray16.png'),
        jpeg=osp.join(folder, 'xray.jpeg'),
        dicom=osp.join(folder, 'xray.dcm'))
    cv2.imwrite(paths['png16'], img)
    cv2.imwrite(paths['jpeg'], (img >> 4).astype(np.uint8),
                [cv2.IMWRITE_JPEG_QUALITY, 95])
    write_dicom(
        paths['dicom'],
        img,
        bits_stored=12,
        RescaleSlope=1,
        RescaleIntercept=0,
        WindowCenter=2048,
        WindowWidth=4096)
    return paths


def median_seconds(fns: List[Callable[[], object]],
                   repeat: int) -> List[float]:
    """Median time of each function; calls are interleaved so that load
    from other processes hits all of them alike."""
    for fn in fns:
        fn()  # warm-up: imports, page cache
    times: List[List[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, acc in zip(fns, times):
            start = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def run_files(args: argparse.Namespace) -> int:
    # per core: one process, one OpenCV thread
    cv2.setNumThreads(1)
    from mmengine.dataset import Compose

    from muscle_mm.utils import register_all_modules
    register_all_modules()

    w, h = wxh(args.size)
    scale = wxh(args.scale)
    ours = Compose([
        dict(type='LoadXrayImage'),
        dict(type='Resize', scale=scale, keep_ratio=False),
    ])

    def baseline(kind: str, path: str) -> Callable[[], object]:
        if kind == 'dicom':
            import pydicom
            return lambda: cv2.resize(pydicom.dcmread(path).pixel_array, scale)
        return lambda: cv2.resize(
            cv2.imread(path, cv2.IMREAD_UNCHANGED), scale)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or tmp
        os.makedirs(folder, exist_ok=True)
        paths = write_files(folder, w, h)
        print(f'{w}x{h} (w x h) radiograph -> {scale[0]}x{scale[1]}, '
              f'1 core, median of {args.repeat} loads\n')
        print(f'{"file":<7}{"MB":>6}  {"ours ms":>8}{"img/s":>7}  '
              f'{"baseline ms":>11}{"img/s":>7}  {"ours/baseline":>13}')
        for kind, path in paths.items():
            out = ours(dict(img_path=path))
            assert out['img'].shape == (scale[1], scale[0], 3), out['img']
            t_ours, t_base = median_seconds(
                [lambda: ours(dict(img_path=path)),
                 baseline(kind, path)], args.repeat)
            size = osp.getsize(path) / 2**20
            print(f'{kind:<7}{size:>6.1f}  {t_ours * 1e3:>8.1f}'
                  f'{1 / t_ours:>7.1f}  {t_base * 1e3:>11.1f}'
                  f'{1 / t_base:>7.1f}  {t_ours / t_base:>12.2f}x')
    print('\nours = LoadXrayImage (decode, grey, map to 0-255, 3 channels) +'
          ' mmcv Resize; baseline = decode + cv2.resize only')
    return 0


# ----------------------------------------------------------------- log mode
def find_log(path: str) -> str:
    """The newest scalars.json (or .log) of a work_dir, or the file."""
    if osp.isfile(path):
        return path
    for pattern in ('*/vis_data/scalars.json', 'vis_data/scalars.json',
                    '*/*.log', '*.log'):
        found = glob.glob(osp.join(path, pattern))
        if found:
            return max(found, key=osp.getmtime)
    raise FileNotFoundError(
        f'no */vis_data/scalars.json or *.log under {path}; expected the '
        'work_dir of a training run (tools/train.py --work-dir)')


LOG_LINE = re.compile(r'Epoch\(train\).*?\btime: ([\d.]+)\s+'
                      r'data_time: ([\d.]+)')


def read_times(path: str) -> List[Tuple[float, float]]:
    """(time, data_time) of every logged training window."""
    rows = []
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            if path.endswith('.json'):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f'{path}, line {n}: not JSON ({err})')
                # training windows carry the lr; validation ones do not
                if 'time' in entry and 'data_time' in entry and any(
                        k == 'lr' or k.endswith('/lr') or k.startswith('loss')
                        for k in entry):
                    rows.append((entry['time'], entry['data_time']))
            else:
                match = LOG_LINE.search(line)
                if match:
                    rows.append((float(match[1]), float(match[2])))
    return rows


def run_log(args: argparse.Namespace) -> int:
    path = find_log(args.path)
    rows = read_times(path)
    if len(rows) <= args.skip:
        raise ValueError(
            f'{path}: {len(rows)} training log entries with time and '
            f'data_time, {args.skip} skipped; expected more (run longer or '
            'log more often: default_hooks.logger.interval)')
    rows = rows[args.skip:]
    it_time = statistics.mean(r[0] for r in rows)
    data_time = statistics.mean(r[1] for r in rows)
    ratio = data_time / it_time
    ok = ratio < args.max_ratio
    print(f'{path}\n{len(rows)} logged windows (first {args.skip} skipped)\n'
          f'iteration time {it_time * 1e3:.1f} ms, data_time '
          f'{data_time * 1e3:.2f} ms: data_time/time = {ratio:.2%} '
          f'(limit {args.max_ratio:.0%})\n' +
          ('OK: the loader is not the bottleneck'
           if ok else 'SLOW: the model waits for data; raise num_workers or '
           'pre-resize the images'))
    return 0 if ok else 1


def main() -> int:
    args = parse_args()
    return run_files(args) if args.mode == 'files' else run_log(args)


if __name__ == '__main__':
    sys.exit(main())
