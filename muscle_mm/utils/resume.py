# Copyright (c) muscle_mm contributors. All rights reserved.
"""Choose the checkpoint ``tools/train.py --resume`` continues from.

mmengine's auto-resume trusts ``work_dir/last_checkpoint``: an empty or dangling
pointer fails with "`` can not be found``" and a truncated file with torch's raw
zip error, neither naming the file. Here every candidate is checked first and a
broken newest one gives way, with a warning, to the newest intact one.
"""
import glob
import os.path as osp
import re
import zipfile
from typing import Optional

from mmengine.logging import print_log

#: Names of the checkpoints mmengine's ``CheckpointHook`` writes (its default
#: ``filename_tmpl``, which no muscle_mm config or loop changes; the CL loop
#: counts task-iterates as epochs). Only these hold a runner's whole state:
#: other ``*.pth`` in a work dir (an exported backbone, a ``best_*`` file
#: without the optimizer) cannot be resumed from.
RESUMABLE_NAME = re.compile(r'(epoch|iter)_\d+\.pth')


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be resumed from, or ``None`` when it is intact.

    ``torch.save`` writes a zip archive; its central directory comes last, so
    a truncated file fails to open, and the CRCs catch a damaged middle.
    """
    if not osp.isfile(path):
        return 'the file does not exist'
    if osp.getsize(path) == 0:
        return 'the file is empty'
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError) as e:
        return f'it is not a complete torch checkpoint ({e})'
    if bad is not None:
        return f'its member {bad!r} fails its CRC check'
    return None


def _pointer(work_dir: str) -> Optional[str]:
    """The path ``last_checkpoint`` names, or ``None`` when it is unusable."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        target = f.read().strip()
    if not target:
        print_log(f'{pointer} is empty; looking for the newest intact '
                  'checkpoint instead.', 'current', level=30)
        return None
    # mmengine writes the path as seen from where the run started; a work
    # dir that was moved still holds the file under the same name.
    if not osp.exists(target):
        moved = osp.join(work_dir, osp.basename(target))
        target = moved if osp.exists(moved) else target
    return target


def find_resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The newest intact checkpoint of ``work_dir``, ``None`` if it has none.

    ``last_checkpoint`` is preferred; when it is empty, dangling or points at
    a damaged file, the newest intact ``epoch_N.pth``/``iter_N.pth`` of
    ``work_dir`` (:data:`RESUMABLE_NAME`) is taken, with a warning naming
    what was skipped and why. Each file is tried once, however it is named
    (the pointer may hold an absolute path, the work dir a relative one).
    """
    candidates = []
    target = _pointer(work_dir)
    if target is not None:
        candidates.append(target)
    saved = [
        p for p in glob.glob(osp.join(work_dir, '*.pth'))
        if RESUMABLE_NAME.fullmatch(osp.basename(p))
    ]
    candidates += sorted(
        saved, key=lambda p: (osp.getmtime(p), p), reverse=True)
    seen = set()
    for path in candidates:
        if osp.realpath(path) in seen:
            continue
        seen.add(osp.realpath(path))
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        print_log(f'Cannot resume from {path}: {problem}. Trying an older '
                  'checkpoint.', 'current', level=30)
    return None


def check_resume_file(path: str) -> None:
    """Raise naming ``path`` when an explicit ``--resume PATH`` is unusable."""
    problem = checkpoint_problem(path)
    if problem is not None:
        raise FileNotFoundError(
            f'--resume {path}: cannot resume from this file: {problem}. '
            'Pass another checkpoint, or --resume without a path to take '
            'the newest intact one of the work dir.')
