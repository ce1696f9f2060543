# Copyright (c) muscle_mm contributors. All rights reserved.
"""Child processes that die with their parent, and folders one run owns.

The study runs every stage as ``tools/train.py`` in a subprocess for days. If
the runner is killed, an orphaned child would go on writing into a stage
folder that the next run resumes from; two runners on one work dir would
interleave their files. Both are prevented here with what the kernel offers:
a parent-death signal and ``flock``, which die with the process that holds
them, so nothing stale is ever left to clean up.
"""
import ctypes
import fcntl
import functools
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@functools.lru_cache(maxsize=None)
def _prctl() -> Optional[Callable[..., int]]:
    """libc's ``prctl`` (None off Linux), looked up in the parent.

    A ``dlopen`` in the child between fork and exec can deadlock when the
    parent has other threads (the study starts children from a thread pool),
    so the child only calls what was resolved here.
    """
    if not sys.platform.startswith('linux'):
        return None
    return ctypes.CDLL(None, use_errno=True).prctl


def _die_with(parent: int):
    """A ``preexec_fn``: SIGTERM this child when ``parent`` exits."""
    prctl = _prctl()  # in the parent: see _prctl

    def set_signal() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl
            os._exit(1)

    return set_signal


def run_logged(cmd: List[str],
               log_file: str,
               env: Optional[Dict[str, str]] = None,
               grace: float = 30.0,
               on_start: Optional[Callable[[subprocess.Popen], None]] = None
               ) -> int:
    """Run ``cmd``, its output appended to ``log_file``; return its code.

    The child gets SIGTERM when this process dies, however it dies (Linux's
    parent-death signal; it follows the calling thread, which waits here for
    the child), and its process group is ended when this call is interrupted
    (Ctrl-C, an exception), SIGKILL after ``grace`` seconds.
    ``tools/dist_train.sh`` execs torchrun, which passes SIGTERM on to its
    workers. ``on_start(proc)`` lets a caller that runs several children from
    threads end them all with :func:`end_process_group` (an interrupt reaches
    only the main thread).
    """
    with open(log_file, 'a') as f:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with(os.getpid()))
        if on_start is not None:
            on_start(proc)
        try:
            return proc.wait()
        except BaseException:
            end_process_group(proc, grace)
            raise


def end_process_group(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM the process group of ``proc``; SIGKILL it after ``grace``
    seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


class FolderInUseError(RuntimeError):
    """Another live process holds the folder's lock."""


class FolderLock:
    """Hold ``folder/.lock`` exclusively while this process writes there.

    A second holder fails at once with :class:`FolderInUseError` naming the
    first one (pid, host, command, start time). The lock is an ``flock``: the
    kernel releases it when its holder exits, even by SIGKILL, so a stale
    ``.lock`` file never blocks a rerun. Re-entrant within a process.
    """

    _held: Dict[str, list] = {}  # real path -> [file, depth]

    def __init__(self, folder: str) -> None:
        self.folder = osp.realpath(folder)
        self.path = osp.join(self.folder, '.lock')

    def __enter__(self) -> 'FolderLock':
        held = self._held.get(self.folder)
        if held is not None:
            held[1] += 1
            return self
        os.makedirs(self.folder, exist_ok=True)
        f = open(self.path, 'a+')
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or 'a process that is starting'
            f.close()
            raise FolderInUseError(
                f'{self.folder} is in use by another run ({holder}). Wait '
                'for it to finish or stop it, or choose another folder; the '
                'lock is freed as soon as that process exits.') from None
        f.seek(0)
        f.truncate()
        f.write(
            json.dumps(
                dict(
                    pid=os.getpid(),
                    host=socket.gethostname(),
                    command=' '.join(sys.argv),
                    started=time.strftime('%Y-%m-%d %H:%M:%S'))) + '\n')
        f.flush()
        self._held[self.folder] = [f, 1]
        return self

    def __exit__(self, *exc) -> None:
        held = self._held[self.folder]
        held[1] -= 1
        if held[1] == 0:
            del self._held[self.folder]
            held[0].close()  # closing the file releases the flock
