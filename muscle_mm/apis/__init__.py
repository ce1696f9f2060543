# Copyright (c) muscle_mm contributors. All rights reserved.
"""The study as a library: its stages, its report and its preflight."""
from .paths import get_config_path, get_tool_path
from .report import build_report
from .study import MuscleStudy, StudySettings

__all__ = [
    'MuscleStudy', 'StudySettings', 'build_report', 'get_config_path',
    'get_tool_path'
]
