"""Reports of an optimisation job: figures (mplhep style), ``report.md``, ``histograms.root`` and ``cabinetry_config.yml``.

- :mod:`diffhep.report.plots` — ``history.png``, ``region_<name>.png``, ``network_<name>.png``,
  ``cutflow.png``, ``landscape.png``: each ``plot_*`` returns its Matplotlib
  ``Figure`` (built without pyplot; importing this package never changes the
  Matplotlib backend) and writes it when given a path;
- :mod:`diffhep.report.markdown` — :func:`render_report`, the Markdown summary linking them;
- :mod:`diffhep.report.root` — :func:`write_histograms`, hard-cut histograms as ``TH1D`` with uproot,
  named ``{region}_{sample}{variation}`` as in the AGC;
- :mod:`diffhep.report.cabinetry_config` — :func:`cabinetry_config`, the cabinetry config (and
  :func:`workspace_templates`, its input histograms) from which cabinetry builds ``workspace.json``.

Every writer goes through :mod:`diffhep.outputs`, so each file appears whole or
not at all. Inputs are plain numbers and dicts (this package does not import
the optimiser).
"""

from diffhep.report.cabinetry_config import cabinetry_config, workspace_templates, write_cabinetry_config
from diffhep.report.markdown import render_report
from diffhep.report.plots import plot_cutflow, plot_history, plot_landscape, plot_region, plot_shapes
from diffhep.report.root import to_weighted_hist, write_histograms

__all__ = [
    "cabinetry_config",
    "workspace_templates",
    "write_cabinetry_config",
    "plot_history",
    "plot_region",
    "plot_shapes",
    "plot_cutflow",
    "plot_landscape",
    "render_report",
    "to_weighted_hist",
    "write_histograms",
]
