"""The optimisation progress bar: a notebook widget when ipywidgets is there, text otherwise.

``tqdm.auto`` picks the widget in Jupyter but, without ipywidgets installed,
warns ("IProgress not found") on every bar; diffhep does not depend on
ipywidgets, so the widget is used only when it can be shown.
"""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(*args: Any, **kwargs: Any) -> Any:
    """A ``tqdm`` bar (same arguments): ``tqdm.auto`` when ipywidgets is importable, plain ``tqdm`` otherwise."""
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm(*args, **kwargs)
