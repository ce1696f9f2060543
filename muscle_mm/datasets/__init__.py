# Copyright (c) muscle_mm contributors. All rights reserved.
