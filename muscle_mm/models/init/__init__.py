# Copyright (c) muscle_mm contributors. All rights reserved.
from .local_pretrained import LocalPretrained

__all__ = ['LocalPretrained']
