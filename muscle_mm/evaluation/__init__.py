# Copyright (c) muscle_mm contributors. All rights reserved.
from .metrics import *  # noqa: F401,F403
from .tables import build_table2, build_table3, write_tables  # noqa: F401
