"""Where the template analyses (``dimuon``, ``hzz``, ``ttbar``) live: :func:`template_root`, :func:`template_names`.

The templates are written in the top-level folder ``analyses/`` of the source
checkout; the wheel ships them as ``diffhep/templates/`` (pyproject.toml,
``[tool.hatch.build.targets.wheel.force-include]``), so ``diffhep new`` and
``diffhep bench agc`` work from a pip-installed diffhep too.

Example:
    >>> from diffhep.config.templates import template_names, template_root
    >>> (template_root() / "dimuon" / "config.yaml").is_file()
    True
    >>> "ttbar" in template_names()
    True
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["template_root", "template_names", "is_installed"]

#: The templates of the source checkout: ``analyses/`` beside ``src/`` (src/diffhep/config/templates.py -> parents[3]).
_CHECKOUT = Path(__file__).resolve().parents[3] / "analyses"


def template_root() -> Path:
    """The folder of the template analyses: the installed ``diffhep/templates``, else the checkout's ``analyses/``.

    A wheel holds ``diffhep/templates`` (copied from ``analyses/`` at build time).
    An editable install (``pip install -e .``) has no such folder: the package is
    the source tree, so the templates are read from ``analyses/`` of the checkout.
    The returned folder may not exist (neither is there); callers say so.
    """
    installed = resources.files("diffhep") / "templates"
    if installed.is_dir():
        return Path(str(installed))  # a wheel unpacks into site-packages: a real folder
    return _CHECKOUT


def template_names(root: Path | None = None) -> list[str]:
    """Names of the template analyses in ``root`` (default :func:`template_root`): sub-folders with a config.yaml."""
    folder = template_root() if root is None else Path(root)
    if not folder.is_dir():
        return []
    return sorted(d.name for d in folder.iterdir() if (d / "config.yaml").is_file())


def is_installed(folder: Path) -> bool:
    """Whether ``folder`` is the templates folder installed with the package (not a checkout's ``analyses/``)."""
    installed = resources.files("diffhep") / "templates"
    return installed.is_dir() and Path(folder).resolve() == Path(str(installed)).resolve()
