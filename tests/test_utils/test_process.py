# Copyright (c) muscle_mm contributors. All rights reserved.
"""Children die with the study runner; a folder has one run at a time."""
import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from muscle_mm.utils.process import FolderInUseError, FolderLock


def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(') ')[1][0] != 'Z'
    except FileNotFoundError:
        return False


def _wait_for(path, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.1)
    raise TimeoutError(f'{path} was not written in {timeout} s')


def _parent(tmp_path, body: str) -> subprocess.Popen:
    script = tmp_path / 'parent.py'
    script.write_text(textwrap.dedent(body))
    return subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)


CHILD = ("import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid()))"
         "; time.sleep(120)")


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='prctl')
@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGTERM])
def test_run_logged_child_dies_with_its_parent(tmp_path, sig):
    parent = _parent(
        tmp_path, f'''
        import sys
        from muscle_mm.utils.process import run_logged
        run_logged([sys.executable, '-c', {CHILD!r}, 'child.pid'],
                   'child.log')
        ''')
    child = int(_wait_for(tmp_path / 'child.pid'))
    assert _alive(child)
    parent.send_signal(sig)
    parent.wait(timeout=30)
    end = time.time() + 10
    while _alive(child) and time.time() < end:
        time.sleep(0.1)
    assert not _alive(child), 'the child outlived the runner'


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='prctl')
def test_the_child_only_calls_prctl_looked_up_in_the_parent(
        tmp_path, monkeypatch):
    """No dlopen between fork and exec (it can deadlock when the runner
    has threads); the child still gets the parent-death signal."""
    real, parent = ctypes.CDLL, os.getpid()

    def parent_only(*args, **kwargs):
        if os.getpid() != parent:
            raise RuntimeError('dlopen in the forked child')
        return real(*args, **kwargs)

    monkeypatch.setattr(ctypes, 'CDLL', parent_only)
    from muscle_mm.utils.process import run_logged
    log = tmp_path / 'child.log'
    get_pdeathsig = ('import ctypes; s = ctypes.c_int(); '
                     'ctypes.CDLL(None).prctl(2, ctypes.byref(s)); '
                     'print(s.value)')  # PR_GET_PDEATHSIG, after exec
    assert run_logged([sys.executable, '-c', get_pdeathsig], str(log)) == 0
    assert log.read_text().strip() == str(int(signal.SIGTERM))


def test_run_logged_returns_the_code_and_appends_the_log(tmp_path):
    from muscle_mm.utils.process import run_logged
    log = tmp_path / 'run.log'
    log.write_text('before\n')
    code = run_logged(
        [sys.executable, '-c', 'print("out"); raise SystemExit(3)'], str(log))
    assert code == 3
    assert log.read_text() == 'before\nout\n'


def test_folder_lock_names_its_holder_and_dies_with_it(tmp_path):
    folder = tmp_path / 'work'
    holder = _parent(
        tmp_path, f'''
        import time
        from muscle_mm.utils.process import FolderLock
        with FolderLock({str(folder)!r}):
            open('locked', 'w').write('yes')
            time.sleep(120)
        ''')
    _wait_for(tmp_path / 'locked')
    with pytest.raises(FolderInUseError) as e:
        with FolderLock(str(folder)):
            pass
    assert str(folder) in str(e.value)
    assert f'"pid": {holder.pid}' in str(e.value)
    holder.kill()  # SIGKILL: no clean-up runs, the kernel drops the flock
    holder.wait(timeout=30)
    with FolderLock(str(folder)):
        with FolderLock(str(folder)):  # re-entrant in one process
            pass
    with FolderLock(str(folder)):  # and released after the outer exit
        pass
