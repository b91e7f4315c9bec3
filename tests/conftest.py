"""No test reaches a model or dataset hub: loaders fail at once, offline, as on the CI machine."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
