# Copyright (c) muscle_mm contributors. All rights reserved.
"""TensorBoard logging switched on from the command line (``--tensorboard``
of ``tools/train.py`` and ``tools/run_muscle.py``)."""
from mmengine.config import Config

TENSORBOARD_BACKEND = 'TensorboardVisBackend'


def check_tensorboard() -> None:
    """Raise ImportError, saying what to install, unless TensorBoard
    logging can work (mmengine's backend writes through
    ``torch.utils.tensorboard``, which needs the ``tensorboard`` package)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f'--tensorboard needs the tensorboard package ({e}); install it '
            'with `pip install tensorboard` (requirements/optional.txt) or '
            'train without --tensorboard.') from e


def enable_tensorboard(cfg: Config) -> None:
    """Add mmengine's ``TensorboardVisBackend`` to ``cfg.visualizer``.

    The scalars the loggers write (losses, LR, validation metrics) then also
    go to ``<work_dir>/<timestamp>/vis_data/`` as TensorBoard event files;
    ``tensorboard --logdir <work_dir>`` shows them.

    Raises:
        ImportError: if the ``tensorboard`` package is missing.
    """
    check_tensorboard()
    visualizer = cfg.get('visualizer') or dict(type='Visualizer')
    backends = list(visualizer.get('vis_backends') or [])
    if not any(
            str(b.get('type', '')).endswith(TENSORBOARD_BACKEND)
            for b in backends):
        backends.append(dict(type=TENSORBOARD_BACKEND))
    visualizer['vis_backends'] = backends
    cfg.visualizer = visualizer
