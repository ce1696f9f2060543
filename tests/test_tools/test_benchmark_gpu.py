# Copyright (c) muscle_mm contributors. All rights reserved.
"""``tools/analysis_tools/benchmark_gpu.py``: exits 0 without CUDA; its
timing path runs (on the CPU when asked) and prints one table row."""
import os.path as osp
import subprocess
import sys
from pathlib import Path

import pytest

REPO = str(Path(__file__).resolve().parents[2])
TOOL = osp.join(REPO, 'tools/analysis_tools/benchmark_gpu.py')


def test_without_cuda_it_says_so_and_exits_0():
    proc = subprocess.run([sys.executable, TOOL], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'needs a CUDA device (none is visible); nothing measured' in \
        proc.stdout


@pytest.mark.slow
def test_cpu_run_of_one_stage_prints_its_row():
    proc = subprocess.run([
        sys.executable, TOOL, '--device', 'cpu', '--stages', 'pneumonia',
        '--steps', '1', '--warmup', '0'
    ], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [ln for ln in proc.stdout.splitlines()
            if ln.startswith('| pneumonia |')]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip('|').split('|')]
    assert cells[2] == '16'  # the config's batch, at 800x500
    fp32, amp, ratio = float(cells[3]), float(cells[5]), float(cells[7])
    assert fp32 > 0 and amp > 0
    assert ratio == pytest.approx(amp / fp32, abs=0.01)
