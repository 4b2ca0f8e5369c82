"""Brute force around the optimum: did the optimiser find what a scan finds?

The hard-cut significance is pyhf's likelihood (NumPy backend, float64, ``q0`` on
Asimov data) of the analysis's own workspace at each point, its background-only
point fitted by pyhf from diffhep's fit (:func:`workspace_significance` with
``pyhf_start=False``; the optimiser's cuts keep the value of the report, which
also fits from pyhf's own start). The points: a grid of ``points`` values per parameter for one or two
parameters, a seeded uniform random search of ``points**2`` samples for more.
The window around the optimum is ``width`` times each parameter's range,
clipped to its bounds.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from jax._src import config as jax_config

from diffhep.engine.protocol import Analysis
from diffhep.infer import fixed_poi_fit
from diffhep.infer.significance import asimov_data
from diffhep.likelihood import from_workspace
from diffhep.optimize.settings import OptimizerSettings

__all__ = [
    "ScanResult",
    "workspace_significance",
    "pyhf_hypotest_significance",
    "significances",
    "PoiUncertainty",
    "workspace_poi_uncertainty",
    "hard_significance",
    "hard_poi_uncertainty",
    "compare_with_scan",
]


class ScanResult(NamedTuple):
    """The hard-cut figure of merit around the optimum: pyhf's Z0, or the expected POI uncertainty.

    Attributes:
        kind: ``"grid"`` (<= 2 parameters) or ``"random"``.
        parameters: the cut names, in order.
        axes: for a grid, the values of each parameter (``points`` each); for a
            random search, the window ``[low, high]`` of each parameter.
        points: ``Float[ndarray, "n params"]`` every point evaluated.
        values: ``Float[ndarray, "n"]`` the figure at each point (NaN where a fit failed).
        best: cut values of the best point.
        best_value: its figure.
        optimum: the optimiser's cut values.
        optimum_value: the figure at the optimiser's cuts.
        figure: ``"Z0"`` (pyhf's expected discovery significance, larger is better) or ``"sigma(mu)"``
            (the expected uncertainty on the POI, smaller is better: :func:`hard_poi_uncertainty`),
            the one the analysis's objective optimises.
    """

    kind: str
    parameters: tuple[str, ...]
    axes: dict[str, list[float]]
    points: np.ndarray
    values: np.ndarray
    best: dict[str, float]
    best_value: float
    optimum: dict[str, float]
    optimum_value: float
    figure: str = "Z0"

    @property
    def larger_is_better(self) -> bool:
        return self.figure == "Z0"

    @property
    def gain(self) -> float:
        """How much better the best scanned point is than the optimiser's cuts (``<= 0``: nowhere better)."""
        gain = self.best_value - self.optimum_value
        return gain if self.larger_is_better else -gain

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (every point included); for Z0 also under the names of before the POI uncertainty."""
        out = {
            "kind": self.kind,
            "parameters": list(self.parameters),
            "axes": self.axes,
            "points": [[float(v) for v in p] for p in self.points],
            "figure": self.figure,
            "larger_is_better": self.larger_is_better,
            "values": [_float_or_none(z) for z in self.values],
            "best": self.best,
            "best_value": _float_or_none(self.best_value),
            "optimum": self.optimum,
            "optimum_value": _float_or_none(self.optimum_value),
            "gain": _float_or_none(self.gain),
        }
        if self.figure == "Z0":
            out |= {
                "significance": out["values"],
                "best_significance": out["best_value"],
                "optimum_significance": out["optimum_value"],
            }
        return out


def _float_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


#: ``2 * NLL`` differences below this are within the fits' tolerance (pyhf's SLSQP at its default tolerance
#: ends ~1e-5 above the minimum on the dimuon template; ``q0`` moves Z0 by ``dq0 / (2 Z0)``): the fit named as
#: the background-only point is the first (pyhf's own, diffhep's, pyhf's from diffhep's) within it of the lowest.
#: Z0 itself is always at the lowest.
NLL_TOL = 1e-3


def workspace_significance(workspace: Mapping[str, Any], *, pyhf_start: bool = True) -> float:
    """Expected discovery significance ``Z0 = sqrt(q0)`` of a pyhf workspace on Asimov data (POI = 1).

    The report's "hard cuts, pyhf Z0": pyhf's likelihood, at the better of two
    background-only fits. Uses the workspace's first measurement (POI, bounds,
    fixed parameters) and pyhf's likelihood on the NumPy backend in float64.
    ``q0`` is twice pyhf's negative log-likelihood at the best background-only
    point (POI = 0) minus that at the Asimov point (POI = 1, nominal nuisance
    parameters: the exact unconditional minimum of Asimov data). The
    background-only point is the best, by pyhf's likelihood, of pyhf's own fit
    (``pyhf.infer.mle.fixed_poi_fit`` from pyhf's suggested start) and of a pyhf
    fit started from diffhep's fit of the same workspace: where signal dwarfs
    the background (the AGC's ttbar) every nuisance parameter runs to its bound
    in that fit and scipy's SLSQP often stops at the start or fails; the second
    start makes the number reliable. Where pyhf's fit converges this is pyhf's
    own number, :func:`pyhf_hypotest_significance` (the report shows both);
    where it does not, this one is at the lower background-only likelihood.

    Args:
        workspace: a pyhf workspace (dict).
        pyhf_start: also fit from pyhf's suggested start (the default). ``False``
            (the scan's points) fits only from diffhep's fit, which converges in a
            few SLSQP iterations where pyhf's own start takes ~30 times as many
            likelihood calls (946 against 30 on the dimuon template, 21
            parameters); pyhf's start is used anyway where diffhep's fit fails.

    Returns:
        Z0; NaN if no fit gives a finite likelihood. pyhf's global backend is restored afterwards.
    """
    with _numpy_backend():
        model, data = _model_and_asimov(workspace)
        return _significance(workspace, model, data, pyhf_start=pyhf_start)


def pyhf_hypotest_significance(workspace: Mapping[str, Any]) -> float:
    """pyhf's own expected discovery significance of a workspace: plain pyhf, nothing of diffhep.

    ``Z0 = norm.isf(p0)`` of ``pyhf.infer.hypotest(0.0, asimov, model, test_stat="q0")``
    with pyhf's default optimizer (a fresh ``scipy_optimizer()``, whatever is set
    globally), the NumPy backend in float64, and
    Asimov data at POI = 1 (``model.expected_data`` at the suggested init), the
    workspace's first measurement; where ``p0`` is below the float range (Z0 above ~37.5)
    ``sqrt(q0)`` of pyhf's own fits, which that ``p0`` is ``norm.sf`` of. NaN where pyhf's fit fails
    (scipy's RuntimeWarnings are silenced). pyhf's global backend and optimizer are
    restored afterwards.
    """
    with _numpy_backend():
        model, data = _model_and_asimov(workspace)
        return _plain_hypotest(model, data)[0]


class Significances(NamedTuple):
    """The report's two hard-cut significances of one workspace and how their fits ended.

    Attributes:
        hard: :func:`workspace_significance` (NaN if no background-only fit gave a finite likelihood).
        plain: :func:`pyhf_hypotest_significance` (NaN if one of pyhf's fits failed).
        fits: JSON-ready record of the fits: ``{"hard_pyhf": {"converged", "background_fit", "starts"},
            "pyhf_hypotest": {"converged", "error", "note"}}``; ``background_fit`` names the fit whose
            background-only point gave ``hard`` (``"pyhf's fit from pyhf's start"``, ``"pyhf's fit
            from diffhep's fit"`` or ``"diffhep's fit"``, ``None`` if none), ``starts`` says for each of
            these fits whether it converged or failed (with pyhf's message); a fit not run is not listed.
    """

    hard: float
    plain: float
    fits: dict[str, Any]


def significances(workspace: Mapping[str, Any]) -> Significances:
    """:func:`workspace_significance` and :func:`pyhf_hypotest_significance` from one set of pyhf fits.

    The two numbers of the report, with the record of their fits (:class:`Significances`). pyhf's
    hypotest fits the background-only point of the same Asimov data from pyhf's suggested start
    (``fitted_pars.fixed_poi_fit_to_data`` of its calculator); that fit is
    :func:`workspace_significance`'s first candidate, so it is not repeated (it is where that fit
    fails inside the hypotest).
    """
    with _numpy_backend():
        model, data = _model_and_asimov(workspace)
        plain, fixed_fit, error, note = _plain_hypotest(model, data)
        record: dict[str, Any] = {}
        candidates = [] if fixed_fit is None else [("pyhf's fit from pyhf's start", fixed_fit)]
        hard = _significance(workspace, model, data, pyhf_start=fixed_fit is None, candidates=candidates, record=record)
    if fixed_fit is not None:
        record["starts"] = {"pyhf's fit from pyhf's start": "converged (pyhf's hypotest)", **record["starts"]}
    if error is None and not np.isfinite(plain):
        error = "pyhf's hypotest gave no finite Z0"
    fits = {
        "hard_pyhf": {"converged": bool(np.isfinite(hard)), **record},
        "pyhf_hypotest": {"converged": error is None and bool(np.isfinite(plain)), "error": error, "note": note},
    }
    return Significances(hard, plain, fits)


class PoiUncertainty(NamedTuple):
    """pyhf's expected uncertainty on the POI of a workspace (:func:`workspace_poi_uncertainty`).

    Attributes:
        value: ``sigma_mu`` (NaN where the Hessian is not positive definite).
        mu_hat: the POI at pyhf's best fit to the Asimov data (1 up to the fit's tolerance; NaN where it failed).
        record: JSON-ready ``{"method", "converged", "mu_hat", "error"}``: ``converged`` whether pyhf's
            fit converged (where it did not, the Hessian is taken at the Asimov point, said in ``error``).
    """

    value: float
    mu_hat: float
    record: dict[str, Any]


def workspace_poi_uncertainty(workspace: Mapping[str, Any]) -> PoiUncertainty:
    """Expected uncertainty on the POI of a pyhf workspace, by pyhf alone: nothing of diffhep.

    pyhf's maximum-likelihood fit (``pyhf.infer.mle.fit``, ``scipy_optimizer(tolerance=1e-12)``,
    the NumPy backend in float64, the workspace's bounds and fixed parameters) to its Asimov data
    at POI = 1 and nominal nuisance parameters (``model.expected_data`` at the suggested init with
    the POI at 1); then ``sigma_mu = sqrt([H^-1]_mu,mu)``, ``H`` the Hessian of pyhf's ``-logpdf``
    (pyhf's JAX backend in float64, ``jax.hessian``) at that best fit in the free parameters: the
    expected uncertainty of a measurement of the signal strength with every nuisance parameter
    profiled, the quantity that the ``poi_uncertainty`` objective computes from diffhep's likelihood
    of the soft histograms (:func:`diffhep.infer.poi_uncertainty`). An exact Hessian, not finite
    differences: ``sigma_mu`` is the small difference of large correlated curvatures where systematics
    mimic the POI (the AGC's b-tag weights: ``sigma_mu`` 100 times ``1 / sqrt(H_mu,mu)``), so central
    differences of step 1e-3 are 1% off. ``H`` is taken at the Asimov point, the likelihood's exact maximum
    by construction, unless pyhf's best fit is lower in ``twice_nll`` by more than :data:`NLL_TOL` (then there:
    a bound excludes the nominal point); a fit of tolerance 1e-12 ends 1e-8 off it in the POI, at a
    ``twice_nll`` equal up to rounding, and its Hessian differs by up to 1e-4 in ``sigma_mu``. Where pyhf's
    fit fails, at the Asimov point, and the record says so. pyhf's global backend
    and JAX's ``jax_enable_x64`` are restored afterwards.
    """
    import pyhf

    previous = pyhf.get_backend()
    record: dict[str, Any] = {"method": "pyhf.infer.mle.fit (scipy, tolerance 1e-12) of the mu = 1 Asimov data, "
                              "jax.hessian of pyhf's -logpdf (JAX backend, float64) there"}  # fmt: skip
    try:
        pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-12), precision="64b")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="jsonschema.RefResolver", category=DeprecationWarning)
            model, data = _model_and_asimov(workspace)
            asimov = np.asarray(model.config.suggested_init(), dtype=np.float64)
            asimov[model.config.poi_index] = 1.0
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    best = pyhf.infer.mle.fit(
                        data,
                        model,
                        init_pars=list(asimov),
                        par_bounds=model.config.suggested_bounds(),
                        fixed_params=model.config.suggested_fixed(),
                    )
                best = np.asarray(best, dtype=np.float64)
                record.update(converged=True, error=None, mu_hat=float(best[model.config.poi_index]))
                if not _twice_nll(model, best, data) < _twice_nll(model, asimov, data) - NLL_TOL:
                    best = asimov  # the exact maximum, up to the rounding of the likelihood and the fit's tolerance
            except (pyhf.exceptions.FailedMinimization, ValueError, ArithmeticError) as error:
                best = asimov
                record.update(converged=False, mu_hat=None, error=f"pyhf's fit failed ({_one_line(error)}): Hessian at the "
                              "Asimov point")  # fmt: skip
            hessian = _pyhf_hessian(workspace, best, data)
    finally:
        pyhf.set_backend(*previous)
    mu_hat = float(record["mu_hat"]) if record["mu_hat"] is not None else float("nan")
    free = [i for i, fixed in enumerate(model.config.suggested_fixed()) if not fixed]
    poi = free.index(model.config.poi_index)
    try:
        variance = float(np.linalg.solve(hessian[np.ix_(free, free)], np.eye(len(free))[poi])[poi])
    except np.linalg.LinAlgError:
        variance = float("nan")
    if not (np.isfinite(variance) and variance > 0.0):
        record["error"] = "the Hessian is not positive definite"
        return PoiUncertainty(float("nan"), mu_hat, record)
    return PoiUncertainty(float(np.sqrt(variance)), mu_hat, record)


def _twice_nll(model: Any, pars: np.ndarray, data: np.ndarray) -> float:
    return -2.0 * float(np.asarray(model.logpdf(np.asarray(pars, dtype=np.float64), data)).reshape(()))


def _pyhf_hessian(workspace: Mapping[str, Any], pars: np.ndarray, data: np.ndarray) -> np.ndarray:
    """``jax.hessian`` of pyhf's ``-logpdf`` of the workspace's model at ``pars``, pyhf's JAX backend in float64
    (compiled once per call); ``jax_enable_x64`` as before (importing pyhf's JAX backend sets it globally)."""
    import pyhf

    # The global setting, not the innermost `with jax.enable_x64(...)`'s (no public API reads it): restoring the
    # value read inside such a context made it global, so every later test of the process ran in float64.
    x64 = jax_config.enable_x64.get_global()
    try:
        import pyhf.tensor.jax_backend  # noqa: F401  # turns jax_enable_x64 on for the whole process

        with jax.enable_x64(True):
            pyhf.set_backend("jax", precision="64b")
            model = pyhf.Workspace(dict(workspace)).model()
            observed = jax.numpy.asarray(data, dtype=jax.numpy.float64)
            hessian = jax.jit(jax.hessian(lambda p: -model.logpdf(p, observed)[0]))
            return np.asarray(hessian(jax.numpy.asarray(pars, dtype=jax.numpy.float64)), dtype=np.float64)
    finally:
        jax.config.update("jax_enable_x64", x64)


@contextlib.contextmanager
def _numpy_backend() -> Iterator[None]:
    """pyhf's NumPy backend in float64 with a fresh ``scipy_optimizer()``; the global backend is restored after."""
    import pyhf

    previous = pyhf.get_backend()
    try:
        pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(), precision="64b")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="jsonschema.RefResolver", category=DeprecationWarning)
            yield
    finally:
        pyhf.set_backend(*previous)


def _model_and_asimov(workspace: Mapping[str, Any]) -> tuple[Any, np.ndarray]:
    """pyhf's model of the workspace's first measurement and its Asimov data at POI = 1."""
    import pyhf

    model = pyhf.Workspace(dict(workspace)).model()
    pars = np.asarray(model.config.suggested_init(), dtype=np.float64)
    pars[model.config.poi_index] = 1.0
    return model, model.expected_data(pars)


def _plain_hypotest(model: Any, data: np.ndarray) -> tuple[float, np.ndarray | None, str | None, str | None]:
    """``norm.isf(p0)`` of pyhf's q0 hypotest, its background-only fit to ``data``, ``None`` and a note; or NaN,
    ``None``, pyhf's message and ``None`` where a fit fails.

    Above Z0 ~ 37.5, ``p0`` is below the smallest float and pyhf returns 0 (``norm.isf(0)`` is
    infinite): Z0 is then ``sqrt(q0)`` of pyhf's own two fits (its fixed-POI and free fits to
    ``data``, ``q0 = 0`` for a negative fitted POI), which is what pyhf's ``p0 = norm.sf(sqrt(q0))``
    inverts (equal to 15 digits where ``p0`` is a number: 3.518386172173057 on the dimuon demo), and
    the note says so. The AGC template's Z0 is ~200: its plain number was reported as a failed fit.
    """
    import pyhf
    import scipy.stats

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # scipy on a near-flat likelihood
            p0, calculator = pyhf.infer.hypotest(0.0, data, model, test_stat="q0", return_calculator=True)
    except (pyhf.exceptions.FailedMinimization, ValueError, ArithmeticError) as error:
        return float("nan"), None, _one_line(error), None
    fits = calculator.fitted_pars
    fixed_fit = np.asarray(fits.fixed_poi_fit_to_data, dtype=np.float64)
    p0 = float(np.asarray(p0))
    if p0 > 0.0:
        return float(scipy.stats.norm.isf(p0)), fixed_fit, None, None
    free_fit = np.asarray(fits.free_fit_to_data, dtype=np.float64)

    def log_likelihood(pars: np.ndarray) -> float:
        return float(np.asarray(model.logpdf(pars, data)).reshape(()))

    q0 = -2.0 * (log_likelihood(fixed_fit) - log_likelihood(free_fit))
    if free_fit[model.config.poi_index] < 0.0:
        q0 = 0.0
    if not np.isfinite(q0):
        return float("nan"), fixed_fit, "pyhf's p0 is 0 and its q0 is not finite", None
    return float(np.sqrt(max(q0, 0.0))), fixed_fit, None, "p0 below the float range: Z0 = sqrt(q0) of pyhf's fits"


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _significance(
    workspace: Mapping[str, Any],
    model: Any,
    data: np.ndarray,
    *,
    pyhf_start: bool,
    candidates: Sequence[tuple[str, np.ndarray]] = (),
    record: dict[str, Any] | None = None,
) -> float:
    """``sqrt(q0)`` at the best background-only point of ``candidates`` (label, parameters) and of pyhf's
    fits (see :func:`workspace_significance`), under the backend of the caller. ``record`` receives
    ``background_fit`` (the label of the best point) and ``starts`` (how each fit ended)."""
    import pyhf

    asimov = np.asarray(model.config.suggested_init(), dtype=np.float64)
    asimov[model.config.poi_index] = 1.0

    def twice_nll(pars: Any) -> float:
        value = -2.0 * float(np.asarray(model.logpdf(np.asarray(pars, dtype=np.float64), data)).reshape(()))
        return value if np.isfinite(value) else np.inf

    best, best_label = np.inf, None

    def consider(label: str, pars: Any) -> None:  # the label: the first fit within NLL_TOL of the best
        nonlocal best, best_label
        value = twice_nll(pars)
        if value < best - NLL_TOL:
            best_label = label
        best = min(best, value)

    for label, pars in candidates:
        consider(label, pars)
    diffhep_start = _diffhep_background_fit(workspace, model)
    starts: dict[str, str] = {"diffhep's fit": "converged" if diffhep_start is not None else "failed or not built"}
    if diffhep_start is not None:
        consider("diffhep's fit", diffhep_start)
    fits = [("pyhf's fit from pyhf's start", None)] if pyhf_start or diffhep_start is None else []
    if diffhep_start is not None:
        fits.append(("pyhf's fit from diffhep's fit", diffhep_start))
    for name, start in fits:
        try:
            pars = pyhf.infer.mle.fixed_poi_fit(
                0.0,
                data,
                model,
                init_pars=None if start is None else list(start),
                par_bounds=model.config.suggested_bounds(),
                fixed_params=model.config.suggested_fixed(),
            )
        except (pyhf.exceptions.FailedMinimization, ValueError, ArithmeticError) as error:
            starts[name] = f"failed: {_one_line(error)}"
            continue
        starts[name] = "converged"
        consider(name, pars)
    q0 = best - twice_nll(asimov)
    if record is not None:
        record.update(background_fit=best_label if np.isfinite(q0) else None, starts=starts)
    return float(np.sqrt(max(q0, 0.0))) if np.isfinite(q0) else float("nan")


def _diffhep_background_fit(workspace: Mapping[str, Any], model: Any) -> np.ndarray | None:
    """diffhep's best background-only fit (POI = 0) of ``workspace`` on its Asimov data, in pyhf's parameter
    order, or ``None`` if it cannot be built."""
    try:
        with jax.enable_x64(True):
            ours = from_workspace(dict(workspace), validate=False)
            bestfit = np.asarray(fixed_poi_fit(ours, asimov_data(ours, 1.0), 0.0).bestfit, dtype=np.float64)
    except Exception:  # a model diffhep cannot build: pyhf's own fit alone
        return None
    out = np.asarray(model.config.suggested_init(), dtype=np.float64)
    for name in model.config.par_order:
        out[model.config.par_slice(name)] = bestfit[ours.config.par_slice(name)]
    bounds = np.asarray(model.config.suggested_bounds(), dtype=np.float64)
    return np.clip(out, bounds[:, 0], bounds[:, 1])


def hard_significance(analysis: Analysis, cuts: Mapping[str, float], *, pyhf_start: bool = True) -> float:
    """pyhf Z0 of ``analysis.workspace(analysis.hard_histograms(cuts))`` (:func:`workspace_significance`)."""
    return workspace_significance(analysis.workspace(analysis.hard_histograms(dict(cuts))), pyhf_start=pyhf_start)


def _safe_significance(analysis: Analysis, cuts: Mapping[str, float]) -> float:
    """As :func:`hard_significance` fitted from diffhep's background-only fit only (``pyhf_start=False``: pyhf's own
    start costs ~30 times the likelihood calls), NaN where pyhf's fit fails (an extreme corner of the window)."""
    import pyhf

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # scipy on near-empty bins
            return hard_significance(analysis, cuts, pyhf_start=False)
    except (pyhf.exceptions.FailedMinimization, ValueError, ArithmeticError):
        return float("nan")


def compare_with_scan(
    analysis: Analysis,
    best_cuts: Mapping[str, float],
    settings: OptimizerSettings,
    *,
    optimum_significance: float | None = None,
    figure: str = "Z0",
) -> ScanResult:
    """Scan a hard-cut figure of merit around ``best_cuts``.

    Args:
        analysis: the analysis.
        best_cuts: the optimiser's cut values.
        settings: ``settings.scan`` (points, width) and ``settings.seed`` (random search).
        optimum_significance: pyhf Z0 at ``best_cuts`` if already computed (``figure="Z0"``).
        figure: ``"Z0"``, pyhf's expected discovery significance of each point
            (:func:`hard_significance`), or ``"sigma(mu)"``, the expected uncertainty on
            the POI (:func:`hard_poi_uncertainty`), what an analysis whose objective is
            ``poi_uncertainty`` optimises: a scan of Z0 would judge the optimiser on a figure it
            did not optimise.

    Returns:
        :class:`ScanResult`; its ``gain`` is how much better the best scanned
        point is than the optimiser's cuts (<= 0 when the optimiser found the
        best point the scan sees).
    """
    if figure not in ("Z0", "sigma(mu)"):
        raise ValueError(f"figure must be 'Z0' or 'sigma(mu)', not {figure!r}")
    params = list(analysis.parameters)
    names = tuple(p.name for p in params)
    optimum = {p.name: float(best_cuts[p.name]) for p in params}
    n, width = settings.scan.points, settings.scan.width
    windows = []
    for p in params:
        half = 0.5 * width * (p.high - p.low)
        windows.append((max(p.low, optimum[p.name] - half), min(p.high, optimum[p.name] + half)))
    if len(params) <= 2:
        kind = "grid"
        axes = {p.name: [float(v) for v in np.linspace(lo, hi, n)] for p, (lo, hi) in zip(params, windows)}
        mesh = np.meshgrid(*[axes[k] for k in names], indexing="ij")
        points = np.stack([m.ravel() for m in mesh], axis=-1)
    else:
        kind = "random"
        axes = {p.name: [lo, hi] for p, (lo, hi) in zip(params, windows)}
        rng = np.random.default_rng(settings.seed)
        lows, highs = np.array(windows).T
        points = rng.uniform(lows, highs, size=(n * n, len(params)))
    if figure == "Z0":
        z = np.array([_safe_significance(analysis, dict(zip(names, pt))) for pt in points])
        optimum_value = _safe_significance(analysis, optimum) if optimum_significance is None else optimum_significance
    else:
        sigma = _poi_uncertainty_of(analysis)
        z = np.array([sigma(dict(zip(names, pt))) for pt in points])
        optimum_value = sigma(optimum)
    if np.all(np.isnan(z)):
        best, best_z = dict(optimum), float("nan")
    else:
        i = int(np.nanargmax(z) if figure == "Z0" else np.nanargmin(z))
        best, best_z = {k: float(v) for k, v in zip(names, points[i])}, float(z[i])
    return ScanResult(
        kind=kind,
        parameters=names,
        axes=axes,
        points=points,
        values=z,
        best=best,
        best_value=best_z,
        optimum=optimum,
        optimum_value=float(optimum_value),
        figure=figure,
    )


def hard_poi_uncertainty(analysis: Analysis, cuts: Mapping[str, float]) -> float:
    """The expected uncertainty on the POI with hard cuts at ``cuts``: :func:`_poi_uncertainty_of` once."""
    return _poi_uncertainty_of(analysis)(cuts)


def _poi_uncertainty_of(analysis: Analysis) -> Callable[[Mapping[str, float]], float]:
    """``cuts -> sigma(mu)``: the analysis's ``poi_uncertainty`` objective of its hard-cut histograms, NaN if not finite.

    diffhep's likelihood of the workspace those histograms make (Asimov data at mu = 1, every
    nuisance parameter profiled, the exact Hessian), compiled once for all the points of a
    scan: pyhf's (:func:`workspace_poi_uncertainty`, the number the report gives before and
    after the optimisation) compiles its Hessian again for every workspace, seconds a point.
    The two agree to 1e-6 (tests/optimize/test_optimize_job.py).
    """
    value = jax.jit(analysis.figure_of_merit)

    def sigma(cuts: Mapping[str, float]) -> float:
        out = -float(value(analysis.hard_histograms(dict(cuts))))
        return out if np.isfinite(out) else float("nan")

    return sigma
