# Copyright (c) muscle_mm contributors. All rights reserved.
import re
from typing import Optional, Tuple

from mmengine.runner import LogProcessor

from muscle_mm.engine.loops.utils import unwrap_model
from muscle_mm.registry import LOG_PROCESSORS


@LOG_PROCESSORS.register_module()
class MultiTaskLogProcessor(LogProcessor):
    """mmengine's ``LogProcessor`` that logs the active task's losses only.

    :class:`MultiTaskModel` names losses ``<task>.<loss>``. A line (and the
    visualizer's scalars) keeps those of the ``cl_task`` that
    :class:`MultiTaskCLLoop` puts in the message hub, smoothed over the
    iterations since that task took over; the other tasks' would repeat
    their last values on every line. Without ``cl_task`` it is a plain
    ``LogProcessor``. Args are ``LogProcessor``'s.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # (active task, the iteration it took over at)
        self._stretch: Tuple[Optional[str], int] = (None, 0)

    def get_log_after_iter(self, runner, batch_idx: int, mode: str):
        task = runner.message_hub.get_info('cl_task')
        if mode == 'train' and task != self._stretch[0]:
            # the first line of a task-iterate is in its first epoch
            self._stretch = (task, runner.iter - batch_idx)
        return super().get_log_after_iter(runner, batch_idx, mode)

    def _collect_scalars(self, custom_cfg, runner, mode, *args, **kwargs):
        tag = super()._collect_scalars(custom_cfg, runner, mode, *args,
                                       **kwargs)
        active = runner.message_hub.get_info('cl_task')
        tasks = getattr(unwrap_model(runner.model), 'tasks', None)
        if mode != 'train' or active is None or not tasks:
            return tag
        custom = {c.get('log_name', c['data_src']) for c in custom_cfg}
        result = type(tag)()
        for key, value in tag.items():
            name = key[len('train/'):] if key.startswith('train/') else key
            task = name.split('.')[0] if '.' in name else None
            if task in tasks and task != active:
                continue
            if (task == active and name not in custom
                    and re.search(self.mean_pattern, name) is not None):
                value = self._since_takeover(runner, f'train/{name}', value)
            result[key] = value
        return result

    def _since_takeover(self, runner, key: str, value):
        """The window mean (as mmengine's) over the values since the task
        took over; with the buffers of the other tasks dropped at every
        switch, the logged numbers were these."""
        buffer = runner.message_hub.log_scalars.get(key)
        count = runner.iter - self._stretch[1] + 1
        if buffer is None or not isinstance(self.window_size, int) \
                or count < 1:
            return value
        window = min(self.window_size, count)
        logs, counts = buffer.data
        return logs[-window:].sum() / counts[-window:].sum()
