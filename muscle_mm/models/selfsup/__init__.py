# Copyright (c) muscle_mm contributors. All rights reserved.
from .xray_moco import XrayMoCo, check_queue_len

__all__ = ['XrayMoCo', 'check_queue_len']
