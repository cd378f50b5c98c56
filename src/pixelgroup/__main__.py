"""``python -m pixelgroup`` (and ``torchrun ... -m pixelgroup train``): the command line."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
