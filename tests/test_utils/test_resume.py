"""Which checkpoint ``--resume`` continues from (muscle_mm.utils.resume)."""
import os
import os.path as osp

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


def test_only_checkpoint_hook_files_are_resume_candidates(tmp_path):
    """A newer state-dict file in the work dir (an exported backbone, a
    ``best_*`` file) is never taken for a checkpoint to resume from."""
    from muscle_mm.utils.resume import find_resumable_checkpoint
    for i, name in enumerate(['iter_4.pth', 'epoch_1.pth',
                              'backbone_export.pth', 'best_auc_epoch_1.pth',
                              'epoch_2.pth.tmp.pth']):
        torch.save({'state_dict': {}}, tmp_path / name)
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    assert find_resumable_checkpoint(str(tmp_path)) == str(tmp_path /
                                                           'epoch_1.pth')


def test_each_damaged_file_is_tried_once(tmp_path, monkeypatch):
    """``last_checkpoint`` holds the absolute path, the work dir is
    relative: the damaged newest file is warned about once."""
    from muscle_mm.utils import resume
    warned = []
    monkeypatch.setattr(resume, 'print_log',
                        lambda msg, *a, **k: warned.append(msg))
    work = tmp_path / 'work'
    work.mkdir()
    torch.save({'epoch': 1}, work / 'epoch_1.pth')
    os.utime(work / 'epoch_1.pth', (1000, 1000))
    (work / 'epoch_2.pth').write_bytes(b'PK\x03\x04 truncated')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    monkeypatch.chdir(tmp_path)
    found = resume.find_resumable_checkpoint('work')
    assert found == osp.join('work', 'epoch_1.pth')
    assert len(warned) == 1 and 'epoch_2.pth' in warned[0], warned
