"""Atomic writes (muscle_mm.utils.fileio): nothing partial, the umask kept."""
import os
import stat

import pytest

from muscle_mm.utils import atomic_write


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / 'ckpt.pth'
    atomic_write(b'complete', target)

    def interrupted(fd):  # the process dies after writing, before renaming
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'fsync', interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(b'partial', target)
    assert target.read_bytes() == b'complete'
    assert os.listdir(tmp_path) == ['ckpt.pth']  # no temp file left


@pytest.mark.parametrize('umask', [0o022, 0o077])
def test_atomic_write_honours_the_umask(tmp_path, umask):
    """Checkpoints written through the config's backend get 0666 less the
    umask, as a plain ``open`` gives (``mkstemp`` made every file 0600);
    a replaced file keeps its mode."""
    from mmengine.fileio import get_file_backend
    backend = get_file_backend(
        str(tmp_path), backend_args=dict(backend='muscle_atomic_local'))
    old = os.umask(umask)
    try:
        backend.put(b'weights', tmp_path / 'epoch_1.pth')
        backend.put_text('epoch_1.pth', tmp_path / 'last_checkpoint')
        with open(tmp_path / 'plain', 'wb'):
            pass
    finally:
        os.umask(old)
    mode = 0o666 & ~umask
    for name in ('epoch_1.pth', 'last_checkpoint', 'plain'):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name
    os.chmod(tmp_path / 'epoch_1.pth', 0o640)
    atomic_write(b'newer', tmp_path / 'epoch_1.pth')
    assert stat.S_IMODE(os.stat(tmp_path / 'epoch_1.pth').st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == [
        'epoch_1.pth', 'last_checkpoint', 'plain'
    ]
