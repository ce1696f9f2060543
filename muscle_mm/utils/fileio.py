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
import secrets
import stat
from pathlib import Path
from typing import Union

import mmengine
from mmengine.fileio import LocalBackend, register_backend


def _create_temp(filepath: str) -> tuple:
    """Open a new temporary file beside ``filepath``, as ``open`` would.

    ``tempfile.mkstemp`` creates files with mode 0600 whatever the umask, so
    a checkpoint or config would be private to its writer. ``os.open`` with
    0666 lets the kernel apply the umask; an existing target keeps its mode.
    """
    folder, name = osp.split(osp.abspath(filepath))
    try:
        mode = stat.S_IMODE(os.stat(filepath).st_mode)
    except FileNotFoundError:
        mode = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_BINARY', 0)
    for _ in range(100):
        tmp = osp.join(folder, f'.{name}.{secrets.token_hex(4)}.tmp')
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        if mode is not None:
            try:
                os.chmod(tmp, mode)
            except BaseException:
                os.close(fd)
                os.remove(tmp)
                raise
        return fd, tmp
    raise FileExistsError(f'Could not create a temporary file for {filepath} '
                          f'in {folder}: 100 random names were taken.')


def atomic_write(data: Union[bytes, str],
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``filepath`` so that readers never see it partial.

    The file gets the mode a plain ``open(filepath, 'wb')`` would give it:
    0666 less the umask when new, its old mode when replaced.
    """
    filepath = str(filepath)
    mmengine.mkdir_or_exist(osp.dirname(osp.abspath(filepath)))
    fd, tmp = _create_temp(filepath)
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
