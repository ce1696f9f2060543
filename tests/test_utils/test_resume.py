"""Which checkpoint ``--resume`` continues from (muscle_mm.utils.resume)."""
import os

import pytest
import torch


@pytest.mark.parametrize('pointer', ['', 'moved', 'dangling', None])
def test_find_resumable_checkpoint_pointer_cases(tmp_path, pointer):
    """An empty, moved or dangling ``last_checkpoint`` (or none) still finds
    the newest intact checkpoint; an empty work dir finds none."""
    from muscle_mm.utils.resume import find_resumable_checkpoint
    assert find_resumable_checkpoint(str(tmp_path)) is None
    for i, name in enumerate(['epoch_1.pth', 'epoch_2.pth']):
        torch.save({'epoch': i}, tmp_path / name)
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    (tmp_path / 'epoch_3.pth').write_bytes(b'')  # newest, empty
    target = {
        '': '',
        'moved': '/elsewhere/run/epoch_1.pth',
        'dangling': str(tmp_path / 'epoch_9.pth'),
        None: None
    }[pointer]
    if target is not None:
        (tmp_path / 'last_checkpoint').write_text(target)
    expected = 'epoch_1.pth' if pointer == 'moved' else 'epoch_2.pth'
    assert find_resumable_checkpoint(str(tmp_path)) == str(tmp_path /
                                                           expected)
