# Copyright (c) muscle_mm contributors. All rights reserved.
"""Checks on what a model predicted, before a metric uses it."""
from typing import Sequence

import numpy as np


def _head(values, num: int = 4) -> str:
    values = np.asarray(values, dtype=np.float64).ravel()
    shown = ', '.join(str(v) for v in values[:num].tolist())
    return f'[{shown}{", ..." if values.size > num else ""}]'


def check_finite_scores(scores: Sequence,
                        names: Sequence[str],
                        what: str = 'the metric') -> None:
    """Raise when a score is NaN or infinite, naming the samples.

    A model that diverged (or a checkpoint with NaN weights) gives NaN
    scores; sklearn would stop with a bare "Input contains NaN".

    Args:
        scores (Sequence): The score (or the scores) of each sample.
        names (Sequence[str]): The samples' image paths, in the same order.
        what (str): Who checks, for the message.
    """
    bad = [i for i, s in enumerate(scores) if not np.isfinite(s).all()]
    if bad:
        shown = '; '.join(f'{names[i]}: {_head(scores[i])}' for i in bad[:5])
        raise ValueError(
            f'{what}: the model produced NaN or infinite scores for '
            f'{len(bad)} of {len(scores)} samples (first {min(len(bad), 5)}: '
            f'{shown}). No figure is defined for them. Its training probably '
            'diverged (look for a NaN loss in the log) or the checkpoint '
            'holds NaN weights; evaluate another checkpoint or retrain with '
            'a lower learning rate.')
