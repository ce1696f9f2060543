# Copyright (c) muscle_mm contributors. All rights reserved.
"""A local file backend whose writes are atomic.

mmengine's ``LocalBackend.put`` opens the target and writes into it, so a run
killed while saving leaves a truncated ``epoch_N.pth``. Writing to a temporary
file in the same folder and ``os.replace``-ing it makes every checkpoint either
complete or absent. Select it with
``CheckpointHook(backend_args=dict(backend='muscle_atomic_local'))`` (the
default in ``configs/_base_/default_runtime.py``).
"""
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import Union

import mmengine
from mmengine.fileio import LocalBackend, register_backend


def atomic_write(data: Union[bytes, str],
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``filepath`` so that readers never see it partial."""
    filepath = str(filepath)
    mmengine.mkdir_or_exist(osp.dirname(osp.abspath(filepath)))
    fd, tmp = tempfile.mkstemp(
        dir=osp.dirname(osp.abspath(filepath)),
        prefix=f'.{osp.basename(filepath)}.',
        suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data.encode(encoding) if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


@register_backend('muscle_atomic_local')
class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` with atomic ``put`` and ``put_text``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write(obj, filepath, encoding)
