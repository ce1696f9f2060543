# Copyright (c) muscle_mm contributors. All rights reserved.
"""The continual-learning accuracy matrix and forgetting."""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np


class AccuracyMatrix:
    """Scores of every task (rows) after every evaluation point (columns).

    Forgetting of a task is the drop from its best earlier score to its
    latest one (Chaudhry et al., 2018); for a task whose score is better when
    lower (an error), the sign is flipped so forgetting is always "how much
    worse than its best it got". The MUSCLE paper does not report it.

    Args:
        tasks (Sequence[str]): Row names.
        lower_is_better (Sequence[str]): Tasks whose score is an error.
    """

    def __init__(
        self, tasks: Sequence[str],
        lower_is_better: Sequence[str] = ()) -> None:
        self.tasks = list(tasks)
        self.lower_is_better = set(lower_is_better)
        self.columns: List[str] = []
        self.scores: List[Dict[str, Optional[float]]] = []

    def add(self, column: str, scores: Dict[str, Optional[float]]) -> None:
        """Append one evaluation point (missing tasks are ``None``)."""
        self.columns.append(column)
        self.scores.append({t: scores.get(t) for t in self.tasks})

    @property
    def matrix(self) -> np.ndarray:
        """``len(tasks) x len(columns)`` array, NaN where not evaluated."""
        data = [[np.nan if col[t] is None else col[t] for col in self.scores]
                for t in self.tasks]
        return np.asarray(data, dtype=float).reshape(len(self.tasks), -1)

    def forgetting(self) -> Dict[str, Optional[float]]:
        """Best earlier score minus the latest, per task (None if < 2)."""
        result = {}
        for task, row in zip(self.tasks, self.matrix):
            row = row[~np.isnan(row)]
            if len(row) < 2:
                result[task] = None
                continue
            sign = -1.0 if task in self.lower_is_better else 1.0
            best = sign * np.max(sign * row[:-1])
            result[task] = float(sign * (best - row[-1]))
        return result

    def state_dict(self) -> dict:
        return dict(tasks=self.tasks, columns=self.columns, scores=self.scores)

    def load_state_dict(self, state: dict) -> None:
        self.columns = list(state['columns'])
        self.scores = [dict(s) for s in state['scores']]

    def dump(self, work_dir: str, name: str = 'cl_accuracy_matrix') -> None:
        """Write ``<name>.json`` and a heat-map ``<name>.png``."""
        forgetting = self.forgetting()
        with open(osp.join(work_dir, f'{name}.json'), 'w') as f:
            json.dump(
                dict(
                    tasks=self.tasks,
                    columns=self.columns,
                    matrix=[[None if np.isnan(v) else float(v) for v in row]
                            for row in self.matrix],
                    forgetting=forgetting,
                    lower_is_better=sorted(self.lower_is_better)),
                f,
                indent=2)
        from muscle_mm.visualization import plot_matrix_heatmap
        plot_matrix_heatmap(
            self.matrix,
            [t if forgetting[t] is None else f'{t} (fgt {forgetting[t]:.3g})'
             for t in self.tasks],
            self.columns,
            osp.join(work_dir, f'{name}.png'),
            xlabel='after task-iterate (round:task)',
            fmt='{:.2g}')
