"""Loaded at start-up by a Python whose PYTHONPATH names this directory: `import plotly` then
fails as if the charts extra were not installed. The one fake of the report's tests: the
suite's venv has the extra (it is a dev dependency), and uninstalling it would touch the
environment every other test runs in."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


class _NoPlotly:
    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name == "plotly" or name.startswith("plotly."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoPlotly())
