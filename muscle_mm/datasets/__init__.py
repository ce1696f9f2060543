# Copyright (c) muscle_mm contributors. All rights reserved.
from .multi_source import *  # noqa: F401,F403
from .readers import *  # noqa: F401,F403
from .transforms import *  # noqa: F401,F403
