# Copyright (c) muscle_mm contributors. All rights reserved.
"""The study as a library (its stages, report and preflight), and inference
on new radiographs."""
from .inference import XrayInferencer
from .paths import get_config_path, get_tool_path
from .report import build_report
from .study import MuscleStudy, StudySettings

__all__ = [
    'MuscleStudy', 'StudySettings', 'XrayInferencer', 'build_report',
    'get_config_path', 'get_tool_path'
]
