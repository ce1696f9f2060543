# Copyright (c) muscle_mm contributors. All rights reserved.
"""Shared pieces of the nine dataset readers: Table 1, CSV/list parsing,
split files and the ``on_error`` policy.

Every reader takes ``data_root`` (the folder as distributed), ``split`` and
``on_error``. Errors name the file and what was expected; with
``on_error='skip'`` a bad item is dropped, counted and logged, never silently.
"""
import csv
import hashlib
import os
import os.path as osp
from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from mmengine.logging import MMLogger

from muscle_mm.metainfo import PROTOCOL_ENV, PROTOCOLS, TABLE1

SPLITS = ('train', 'val', 'test')
SPLIT_DIR = 'muscle_splits'
MAKE_SPLITS = 'python tools/dataset_converters/make_splits.py'
#: environment variable: the default ``split_root`` of every reader
SPLIT_ROOT_ENV = 'MUSCLE_SPLIT_ROOT'

IMG_EXTS = ('.png', '.jpg', '.jpeg', '.dcm')


class DatasetFormatError(ValueError):
    """A dataset file is missing, malformed or inconsistent."""


#: How a dataset's reader can go on past a bad item; tools that read the
#: release without a reader's options (make_splits.py) replace it.
SKIP_HINT = 'pass on_error="skip" to drop such items and count them in the log'


class ErrorPolicy:
    """Raise on a bad item (``'raise'``) or drop and count it (``'skip'``)."""

    def __init__(self, on_error: str, name: str) -> None:
        if on_error not in ('raise', 'skip'):
            raise ValueError(f"{name}: on_error must be 'raise' or 'skip', "
                             f'got {on_error!r}')
        self.on_error = on_error
        self.name = name
        self.skipped: List[str] = []

    def __call__(self, msg: str, exc_type: type = DatasetFormatError) -> None:
        if self.on_error == 'raise':
            raise exc_type(f'{self.name}: {msg} ({SKIP_HINT})')
        self.skipped.append(msg)

    def report(self) -> None:
        if not self.skipped:
            return
        logger = MMLogger.get_current_instance()
        shown = '\n  '.join(self.skipped[:10])
        more = len(self.skipped) - 10
        logger.warning(f'{self.name}: skipped {len(self.skipped)} item(s):\n  '
                       f'{shown}' +
                       (f'\n  ... and {more} more' if more > 0 else ''))


def find_dir(root: str, required: str, nests: Sequence[str] = ('', )) -> str:
    """First of ``root/nest`` holding ``required``; accepts extra nesting
    folders some releases add (e.g. Kaggle's ``chest_xray/chest_xray``)."""
    for nest in nests:
        base = osp.join(root, nest) if nest else root
        if osp.exists(osp.join(base, required)):
            return base
    tried = ', '.join(osp.join(root, n, required) for n in nests)
    raise FileNotFoundError(f'expected {required!r} in the dataset folder; '
                            f'tried {tried}. Is data_root the folder as '
                            'distributed?')


def list_files(folder: str, exts: Iterable[str] = IMG_EXTS) -> List[str]:
    """Sorted file names (no stat) in ``folder`` with one of ``exts``."""
    exts = tuple(exts)
    with os.scandir(folder) as it:
        return sorted(
            e.name for e in it
            if e.name.lower().endswith(exts) and not e.name.startswith('.'))


def read_csv(path: str,
             columns: Sequence[str]) -> List[Tuple[int, Dict[str, str]]]:
    """``(line number, {column: value})`` of each row of a CSV with a header.

    Every row must have the header's number of fields: a shorter row would
    leave columns empty. A header ending in a nameless column (a trailing
    comma, as some Kaggle CSVs have) lets rows carry that empty field or
    not; a value in it means the row is shifted. Blank lines are skipped.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'expected the CSV file {path}')
    with open(path, newline='', encoding='utf-8-sig') as f:
        reader = csv.reader(f, skipinitialspace=True)
        found = [c.strip() for c in next(reader, [])]
        missing = [c for c in columns if c not in found]
        if missing:
            raise DatasetFormatError(
                f'{path}: expected columns {list(columns)}, missing '
                f'{missing}; found {found}')
        n = len(found)
        tail = found[-1] == ''  # a nameless last column
        index = [found.index(c) for c in columns]
        rows = []
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if tail and len(row) == n and row[-1].strip():
                raise DatasetFormatError(
                    f'{path}, line {line}: the value {row[-1]!r} is in the '
                    "header's nameless last column; expected it empty (is "
                    'a comma missing or one too many?)')
            if len(row) != n and not (tail and len(row) == n - 1):
                expected = f'{n - 1} or {n}' if tail else str(n)
                raise DatasetFormatError(
                    f'{path}, line {line}: expected {expected} fields as in '
                    f'the header {found}, found {len(row)}: {row}')
            rows.append((line, {
                c: row[i].strip()
                for c, i in zip(columns, index)
            }))
        return rows


def read_rows(path: str, n_cols: int) -> List[List[str]]:
    """Rows of a header-less CSV with exactly ``n_cols`` columns."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'expected the CSV file {path}')
    rows = []
    with open(path, newline='', encoding='utf-8-sig') as f:
        for i, row in enumerate(csv.reader(f), 1):
            if not row or not ''.join(row).strip():
                continue
            if len(row) != n_cols:
                raise DatasetFormatError(
                    f'{path}, line {i}: expected {n_cols} column(s) '
                    f'without header, found {len(row)}: {row}')
            rows.append([c.strip() for c in row])
    return rows


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f'protocol must be one of {PROTOCOLS}, got '
                         f'{protocol!r}')
    return protocol


def default_protocol(protocol: Optional[str] = None) -> str:
    """``protocol``, else ``$MUSCLE_PROTOCOL``, else ``'paper'``."""
    return check_protocol(protocol or os.environ.get(PROTOCOL_ENV)
                          or 'paper')


def fallback_split_root(data_root: str) -> str:
    """The ``split_root`` where ``make_splits.py`` writes the splits of a
    read-only ``data_root`` when no ``--out`` is given: a per-user cache
    (``$XDG_CACHE_HOME`` or ``~/.cache``) keyed by the folder's absolute
    path, so that two copies of a release never share split files."""
    cache = os.environ.get('XDG_CACHE_HOME') or osp.join(
        osp.expanduser('~'), '.cache')
    digest = hashlib.sha1(osp.abspath(data_root).encode()).hexdigest()[:12]
    return osp.join(cache, 'muscle_mm', 'splits', digest)


def split_dir(data_root: str,
              key: str,
              split_root: Optional[str] = None,
              protocol: str = 'paper') -> str:
    """Folder of the split files of dataset ``key`` (a key of ``TABLE1``):
    ``<data_root>/muscle_splits`` (``muscle_splits_official`` for the
    official protocol), or, for data on a read-only disk,
    ``<split_root>/<release folder name>/muscle_splits[_official]``, as
    ``make_splits.py --out <split_root>`` writes them. Without
    ``split_root``, a data folder that has no split folder but whose
    :func:`fallback_split_root` has one is read from there."""
    name = SPLIT_DIR if check_protocol(protocol) == 'paper' \
        else f'{SPLIT_DIR}_{protocol}'
    if split_root:
        return osp.join(split_root, TABLE1[key]['folder'], name)
    own = osp.join(data_root, name)
    fallback = osp.join(
        fallback_split_root(data_root), TABLE1[key]['folder'], name)
    return fallback if not osp.isdir(own) and osp.isdir(fallback) else own


def split_file(folder: str, split: str) -> str:
    """``<folder>/<split>.txt``, ``folder`` as :func:`split_dir` gives."""
    return osp.join(folder, f'{split}.txt')


def _split_lines(path: str) -> List[str]:
    with open(path, encoding='utf-8') as f:
        return [ln.strip() for ln in f if ln.strip()]


def _examples(counts: Dict[str, int], n: int = 5) -> str:
    shown = ', '.join(k + (f' ({c} times)' if c > 2 else '')
                      for k, c in list(counts.items())[:n])
    return shown + (', ...' if len(counts) > n else '')


def split_problems(folder: str, split: str,
                   lines: Sequence[str]) -> List[str]:
    """What is wrong with one split's lines: a path listed twice, or also
    in another split file of ``folder`` (paths compared normalised)."""
    path = split_file(folder, split)
    counts = Counter(osp.normpath(ln) for ln in lines)
    twice = {k: c for k, c in counts.items() if c > 1}
    problems = []
    if twice:
        problems.append(f'split file {path} lists {len(twice)} image(s) '
                        f'more than once: {_examples(twice)}')
    for other in SPLITS:
        other_path = split_file(folder, other)
        if other == split or not osp.isfile(other_path):
            continue
        shared = [
            k for k in dict.fromkeys(
                osp.normpath(ln) for ln in _split_lines(other_path))
            if k in counts
        ]
        if shared:
            a, b = sorted((path, other_path))
            problems.append(f'split files {a} and {b} share {len(shared)} '
                            f'image(s): {_examples(dict.fromkeys(shared, 1))}')
    return problems


def read_split(data_root: str,
               split: str,
               key: str,
               split_root: Optional[str] = None,
               protocol: str = 'paper') -> List[str]:
    """Relative paths of one split written by ``make_splits.py`` (in
    ``data_root``, or under ``split_root``: :func:`split_dir`) for
    ``protocol``; an image listed twice, or also in another split, is an
    error."""
    folder = split_dir(data_root, key, split_root, protocol)
    path = split_file(folder, split)
    if osp.basename(data_root) == TABLE1[key]['folder']:
        where = f'--data-root "{osp.dirname(data_root)}"'
    else:
        where = f'--root "{key}={data_root}"'
    if split_root:
        where += f' --out "{split_root}"'
    cmd = f'{MAKE_SPLITS} {where} --datasets {key}'
    if protocol != 'paper':
        cmd += f' --protocol {protocol}'
    if not osp.isfile(path):
        whose = "the paper's" if protocol == 'paper' else \
            f'the {protocol} protocol\'s'
        raise FileNotFoundError(
            f'split file {path} not found; {whose} {split} split of '
            f'{key} is written once by:\n  {cmd}')
    lines = _split_lines(path)
    if not lines:
        raise DatasetFormatError(
            f'split file {path} is empty; expected one relative image path '
            f'per line. Re-create it with:\n  {cmd} --force')
    problems = split_problems(folder, split, lines)
    if problems:
        raise DatasetFormatError(
            '; '.join(problems) + '. Each image must be in exactly one '
            f'split, once. Re-create the splits with:\n  {cmd} --force')
    return lines


class XrayReaderMixin:
    """Common constructor of the readers (placed before the library base).

    Args:
        data_root (str): the dataset folder as distributed.
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        pipeline (Sequence): transforms, usually starting with
            ``LoadXrayImage``.
        on_error (str): ``'raise'`` (default) or ``'skip'`` bad items.
        check_files (bool): stat every image (slow on network disks).
        split_root (str, optional): where ``make_splits.py --out`` wrote
            the split files, for data on a read-only disk; they are read
            from ``<split_root>/<release folder>/muscle_splits``. Defaults
            to the environment variable ``MUSCLE_SPLIT_ROOT`` if set (so
            every config and the study see it), else ``data_root``.
        protocol (str, optional): ``'paper'`` (the paper's re-splits,
            ``muscle_splits/``) or ``'official'`` (the release's own
            train/test, ``muscle_splits_official/``; ``make_splits.py
            --protocol official``). Defaults to the environment variable
            ``MUSCLE_PROTOCOL`` if set (so every config and the study see
            it), else ``'paper'``.
    """

    SOURCE = ''
    HAS_SPLITS = True  # False: MD-MoCo only, Table 1 has a train column only

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 pipeline: Sequence = (),
                 on_error: str = 'raise',
                 check_files: bool = False,
                 split_root: Optional[str] = None,
                 protocol: Optional[str] = None,
                 **kwargs) -> None:
        name = type(self).__name__
        if split not in SPLITS:
            raise ValueError(f'{name}: split must be one of {SPLITS}, '
                             f'got {split!r}')
        if not self.HAS_SPLITS and split != 'train':
            raise ValueError(
                f'{name} is used for MD-MoCo only and has no {split!r} '
                "split (MUSCLE Table 1: N/A); use split='train'")
        if not osp.isdir(data_root):
            raise FileNotFoundError(f'{name}: data_root {data_root} is not a '
                                    'folder; expected the dataset as '
                                    'distributed')
        self.root = osp.abspath(data_root)
        self.split = split
        self.errors = ErrorPolicy(on_error, name)
        self.check_files = check_files
        self.split_root = split_root or os.environ.get(SPLIT_ROOT_ENV) \
            or None
        self.protocol = default_protocol(protocol)
        kwargs.setdefault('ann_file', '')
        super().__init__(data_root=self.root, pipeline=pipeline, **kwargs)

    def _item(self, img_path: str, **info) -> dict:
        return dict(img_path=img_path, source=self.SOURCE, **info)

    def _finish(self, data_list: List[dict]) -> List[dict]:
        """Optional stat of every image, log skips, refuse an empty split."""
        if self.check_files:
            kept = []
            for info in data_list:
                if osp.isfile(info['img_path']):
                    kept.append(info)
                else:
                    self.errors(
                        f'image {info["img_path"]} is listed but '
                        'does not exist', FileNotFoundError)
            data_list = kept
        self.errors.report()
        if not data_list:
            raise DatasetFormatError(
                f'{type(self).__name__}: the {self.split!r} split of '
                f'{self.root} is empty ({len(self.errors.skipped)} item(s) '
                'skipped); expected at least one image')
        return data_list

    def _read_split(self) -> List[str]:
        return read_split(self.root, self.split, self.SOURCE, self.split_root,
                          self.protocol)


def rel_to(path: str, root: str) -> str:
    return osp.relpath(path, root).replace(os.sep, '/')


def stem(name: str) -> str:
    return osp.splitext(osp.basename(name))[0]
