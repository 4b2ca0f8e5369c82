"""The optimisation job's loop: checkpointed, resumable, with annealed slopes and early stopping.

``run_optimization`` minimises ``-analysis.objective(cuts, data, slope_scale)``
over the unconstrained cut variables (:func:`diffhep.optimize.bounds.from_unconstrained`)
with one compiled value-and-gradient program (:func:`objective_and_grad`, which
the job's evaluation shares). The event data are an argument of the
step (never a constant baked into the compiled code), and so is the slope
multiplier, so annealing never recompiles. Steps are cached per analysis and
optimiser, so runs of the same analysis (a resume, a rerun) compile once.

With network observables (:mod:`~diffhep.optimize.networks`) ``u`` is the pytree
``{"cuts": ..., "networks": ...}``: the cut variables and the networks' weights, each
group with its own Optax transform; everything below holds for it alike, and a
checkpoint stores the weights too.

Determinism: the step is a pure function of ``(u, opt_state, data, slope)``, the
slope is a function of the step number, and checkpoints store ``u`` and the
Optax state exactly, so a resumed run repeats the uninterrupted one bit for bit.
For that, a run resumes only with the settings the checkpoint was written with
(:func:`resume_settings`: the optimiser settings, the float type, the config and
its plugins); any other resume is refused with a line naming each difference.
(Another execution mode is allowed, with a note: it changes the sums by rounding.)
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffhep.engine.protocol import Analysis
from diffhep.errors import ConfigError
from diffhep.optimize.bounds import from_unconstrained, to_unconstrained
from diffhep.optimize.checkpoint import Checkpoint, resume_checkpoint, save_checkpoint
from diffhep.optimize.networks import has_networks, joint_optimizer, split_networks
from diffhep.optimize.progress import progress_bar
from diffhep.optimize.settings import OptimizerSettings
from diffhep.outputs import remove_temporaries

__all__ = [
    "OptimizationResult",
    "run_optimization",
    "resume_settings",
    "check_resume",
    "compiled_step",
    "chunked_step",
    "objective_and_grad",
    "objective_value",
]


class OptimizationResult(NamedTuple):
    """Outcome of :func:`run_optimization`.

    Attributes:
        initial: cut name -> starting value (physical units).
        values: cut name -> final value: after the last update, or the last
            values with a finite objective when the run stopped on a non-finite one.
        history: per step, ``{"step", "objective", <cut>: value, ..., "slope_scale",
            "grad_norm"}`` (and ``"objective_heldout"`` with ``heldout``) with the cut values
            at which the step was evaluated (before its update); a non-finite step is the last entry.
        stopped: ``None`` when every step ran, else one line saying why the run
            stopped early (early stopping, non-finite objective or gradient,
            ``max_steps`` reached).
        steps: steps completed (updates applied).
        resumed_from: the step the run was resumed from, or ``None``.
        checkpoint: the last checkpoint written (``None`` if none was).
        networks: region -> the trained network (``equinox.Module``) at ``values``; ``None``
            for an analysis without network observables.
    """

    initial: dict[str, float]
    values: dict[str, float]
    history: list[dict[str, float]]
    stopped: str | None
    steps: int
    resumed_from: int | None
    checkpoint: Path | None
    networks: dict[str, Any] | None = None


#: (id(analysis), settings.step_key()) -> (analysis, optimiser, jitted step); the analysis is
#: kept so that its id cannot be reused while the entry exists.
_STEPS: OrderedDict[tuple[int, str], tuple[Analysis, optax.GradientTransformation, Callable]] = OrderedDict()
#: id(analysis) -> (analysis, jitted value and gradient of its objective); as ``_STEPS``.
_GRADIENTS: OrderedDict[int, tuple[Analysis, Callable]] = OrderedDict()
_VALUES: OrderedDict[int, tuple[Analysis, Callable]] = OrderedDict()
_MAX_CACHED = 8


def _remember(cache: OrderedDict, key: Any, entry: tuple) -> None:
    cache[key] = entry
    if len(cache) > _MAX_CACHED:
        cache.popitem(last=False)


def objective_and_grad(analysis: Analysis) -> Callable:
    """``jax.jit(jax.value_and_grad(analysis.objective))``: ``(cuts, data, slope) -> (objective, d objective / d cuts)``.

    The one compiled program of an in-memory job: the optimisation steps call it,
    and so does the evaluation of the soft objective before and after
    (:func:`diffhep.workflow.job.evaluate`), which therefore compiles nothing
    more. Cached per analysis object.

    With network observables it is ``(cuts, data, slope, weights) -> (objective, (d/d cuts,
    d/d weights))``, ``weights`` the networks' arrays (:func:`~diffhep.optimize.networks.split_networks`).
    """
    if id(analysis) in _GRADIENTS:
        _GRADIENTS.move_to_end(id(analysis))
    elif has_networks(analysis):
        _, static = split_networks(analysis.networks)

        def objective(cuts, data, slope, weights):
            return analysis.objective(cuts, data, slope, networks=eqx.combine(weights, static))

        _remember(_GRADIENTS, id(analysis), (analysis, jax.jit(jax.value_and_grad(objective, argnums=(0, 3)))))
    else:
        _remember(_GRADIENTS, id(analysis), (analysis, jax.jit(jax.value_and_grad(analysis.objective))))
    return _GRADIENTS[id(analysis)][1]


def objective_value(analysis: Analysis) -> Callable:
    """``jax.jit(analysis.objective)``: ``(cuts, data, slope[, weights]) -> objective``, cached per analysis object.

    The soft objective without its gradient, for an evaluation that optimises nothing
    (``diffhep run``): half the program of :func:`objective_and_grad` to trace and compile
    (the dimuon template: 1.9 s of the 3.8 s of value and gradient). A job that optimises
    evaluates with :func:`objective_and_grad`, which its steps compile anyway.
    """
    if id(analysis) in _VALUES:
        _VALUES.move_to_end(id(analysis))
    elif has_networks(analysis):
        _, static = split_networks(analysis.networks)

        def objective(cuts, data, slope, weights):
            return analysis.objective(cuts, data, slope, networks=eqx.combine(weights, static))

        _remember(_VALUES, id(analysis), (analysis, jax.jit(objective)))
    else:
        _remember(_VALUES, id(analysis), (analysis, jax.jit(analysis.objective)))
    return _VALUES[id(analysis)][1]


def _build(analysis: Any, settings: OptimizerSettings) -> optax.GradientTransformation:
    """The optimiser: the config's, or with network observables the two groups' (:func:`joint_optimizer`)."""
    return joint_optimizer(settings) if has_networks(analysis) else settings.build()


def _start(analysis: Any, params: tuple) -> Any:
    """The unconstrained starting point: the cut variables, with networks ``{"cuts", "networks"}``."""
    u = to_unconstrained(params, {p.name: float(p.init) for p in params})
    return {"cuts": u, "networks": split_networks(analysis.networks)[0]} if has_networks(analysis) else u


def _update(params: tuple, optimizer: optax.GradientTransformation) -> Callable:
    """The jitted ``(u, opt_state, grad_cuts) -> (u', opt_state', grad_norm)`` of a step.

    ``grad_cuts`` is the gradient of the objective w.r.t. the cut values; one
    ``jax.vjp`` of the bounds transform carries it to the unconstrained
    variables, and ``grad_norm`` is the global norm of that of ``-objective``.
    """

    @jax.jit
    def update(u, opt_state, grad_cuts):
        nets = isinstance(grad_cuts, tuple)  # (d/d cuts, d/d weights): with network observables
        _, vjp = jax.vjp(lambda v: from_unconstrained(params, v), u["cuts"] if nets else u)
        (grad_u,) = vjp(grad_cuts[0] if nets else grad_cuts)
        grad_u = {"cuts": grad_u, "networks": grad_cuts[1]} if nets else grad_u
        grad = jax.tree.map(jnp.negative, grad_u)  # of the loss, -objective
        updates, new_state = optimizer.update(grad, opt_state, u)
        return optax.apply_updates(u, updates), new_state, optax.tree.norm(grad)

    return update


def compiled_step(analysis: Analysis, settings: OptimizerSettings) -> tuple[optax.GradientTransformation, Callable]:
    """The optimiser and its step ``(u, opt_state, data, slope) -> (u', opt_state', objective, grad_norm, cuts)``.

    ``objective`` and ``cuts`` are those at ``u`` (before the update); ``grad_norm``
    is the global norm of the gradient of ``-objective`` in the unconstrained
    variables. A step is three compiled programs: the cut values of ``u`` (the
    bounds transform), :func:`objective_and_grad` (the analysis, shared with the
    job's evaluation) and the Optax update. Cached per analysis object and
    :meth:`OptimizerSettings.step_key`, so that a rerun or a resume of the same
    analysis does not compile again.
    """
    key = (id(analysis), settings.step_key())
    if key in _STEPS:
        _STEPS.move_to_end(key)
        return _STEPS[key][1:]
    params = tuple(analysis.parameters)
    optimizer = _build(analysis, settings)
    value_and_grad = objective_and_grad(analysis)
    nets = has_networks(analysis)
    cuts_of = jax.jit(lambda u: from_unconstrained(params, u["cuts"] if nets else u))
    update = _update(params, optimizer)

    def step(u, opt_state, data, slope):
        cuts = cuts_of(u)
        value, grad = value_and_grad(cuts, data, slope, u["networks"]) if nets else value_and_grad(cuts, data, slope)
        new_u, new_state, gnorm = update(u, opt_state, grad)
        return new_u, new_state, value, gnorm, cuts

    _remember(_STEPS, key, (analysis, optimizer, step))
    return optimizer, step


def chunked_step(analysis: Any, settings: OptimizerSettings) -> tuple[optax.GradientTransformation, Callable]:
    """As :func:`compiled_step` for an analysis evaluated chunk by chunk (``analysis.value_and_grad``).

    The objective and its gradient w.r.t. the cuts come from
    ``data.value_and_grad(cuts, slope_scale)`` (``data`` is the analysis's
    ``load()`` handle, e.g. a :class:`~diffhep.engine.chunked.ChunkedAnalysis`)
    instead of :func:`objective_and_grad`; the update is the same.
    """
    if has_networks(analysis):
        raise ConfigError("network observables are trained in memory only (execution.mode: memory)")
    key = (id(analysis), "chunked:" + settings.step_key())
    if key in _STEPS:
        _STEPS.move_to_end(key)
        return _STEPS[key][1:]
    params = tuple(analysis.parameters)
    optimizer = settings.build()
    cuts_of = jax.jit(lambda u: from_unconstrained(params, u))
    update = _update(params, optimizer)

    def step(u, opt_state, data, slope):
        cuts = cuts_of(u)
        result = data.value_and_grad(jax.device_get(cuts), float(slope))
        dtype = jnp.result_type(float)
        grad = {p.name: jnp.asarray(result.grad[p.name], dtype=dtype) for p in params}
        new_u, new_state, gnorm = update(u, opt_state, grad)
        return new_u, new_state, result.value, gnorm, cuts

    _remember(_STEPS, key, (analysis, optimizer, step))
    return optimizer, step


def is_chunked(analysis: Any) -> bool:
    """Whether ``analysis`` is evaluated chunk by chunk (it has ``value_and_grad(cuts, slope_scale)``)."""
    return callable(getattr(analysis, "value_and_grad", None))


def _config_of(analysis: Any) -> Any:
    """The loaded :class:`~diffhep.config.Config` of an analysis built from one (also when chunked), else ``None``."""
    for holder in (analysis, getattr(analysis, "inner", None)):
        config = getattr(holder, "config", None)
        if config is not None and hasattr(config, "config_hash") and hasattr(config, "data"):
            return config
    return None


def _analysis_hash(config: Any) -> str:
    """SHA-256 of the config without its ``optimizer`` and ``execution`` sections, and of its plugins' contents."""
    data = {k: v for k, v in config.data.items() if k not in ("optimizer", "execution")}
    plugins = []
    for plugin in (getattr(config, "resolved", None) or {}).get("plugins") or []:
        try:
            plugins.append(hashlib.sha256(Path(plugin).read_bytes()).hexdigest())
        except OSError:
            plugins.append(None)
    text = json.dumps([data, plugins], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def resume_settings(analysis: Any, settings: OptimizerSettings, *, config_hash: str | None = None) -> dict[str, Any]:
    """What the numbers of an optimisation depend on besides the data: stored in every checkpoint.

    The optimiser settings (:meth:`OptimizerSettings.to_dict`: optimiser, learning
    rate, options, steps, slope schedule, early stopping, seed, checkpoints, scan),
    ``dtype`` (``float64`` when JAX's x64 mode is on), ``execution`` (in memory, or
    chunk by chunk: mode and chunk size change the order of the sums, so a resume
    in another one is noted), ``config`` (a hash of the analysis's config without
    its ``optimizer`` and ``execution`` sections, which are compared setting by
    setting, and of its plugin files; ``None`` for an analysis not built from a
    config) and ``config_hash`` (the whole config's, for the record). :func:`~diffhep.optimize.checkpoint.settings_differences` says
    which of them a resume may change.
    """
    config = _config_of(analysis)
    if is_chunked(analysis):
        execution = getattr(analysis, "settings", None)
        mode = getattr(execution, "mode", "chunked")
        execution = f"{mode}, chunks of {getattr(execution, 'chunk_size', '?')} events"
    else:
        execution = "memory"
    written = settings.to_dict()
    if not has_networks(analysis):
        written.pop("network")  # cuts only: the weights' optimiser changes nothing (and older checkpoints lack it)
    return {
        **written,
        "dtype": str(jnp.result_type(float)),
        "execution": execution,
        "config": None if config is None else _analysis_hash(config)[:16],
        "config_hash": config_hash if config_hash is not None else getattr(config, "config_hash", None),
    }


def check_resume(
    output: str | Path, analysis: Any, settings: OptimizerSettings, *, config_hash: str | None = None
) -> Checkpoint | None:
    """Refuse, before anything is computed, a resume from ``output/checkpoints`` with other settings.

    Returns the checkpoint a :func:`run_optimization` with ``resume=True`` would
    continue from (``None``: there is none, it starts from step 0). Raises the
    errors of :func:`~diffhep.optimize.checkpoint.resume_checkpoint`.
    """
    params = tuple(analysis.parameters)
    u = _start(analysis, params)
    template = _build(analysis, settings).init(u)
    wanted = resume_settings(analysis, settings, config_hash=config_hash)
    folder = Path(output) / "checkpoints"
    nets = u["networks"] if has_networks(analysis) else None
    ckpt, _ = resume_checkpoint(
        folder, [p.name for p in params], template, settings.name, settings=wanted, networks=nets
    )
    return ckpt


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _Patience:
    """Early-stopping bookkeeping, rebuilt from the history on resume.

    Only steps at one slope are compared: the soft objective at another slope is another
    function (steeper sigmoids usually lower it), so a step whose slope differs from the
    previous step's starts the count again. With slopes annealed over every step (the slope
    schedule spans ``steps``), early stopping therefore never fires: comparing across slopes
    stopped the full-size ttbar template at step 24 of 40 on the slopes' fall, not a stalled
    optimiser (its own random search then beat the optimiser's cuts by 25 in Z0).
    """

    def __init__(self, settings: OptimizerSettings, history: list[dict[str, float]]) -> None:
        self.rule = settings.early_stopping
        self.best, self.since, self.slope = -math.inf, 0, None
        for entry in history:
            self.update(entry["objective"], entry["slope_scale"])

    def update(self, objective: float, slope: float) -> None:
        if self.rule is None:
            return
        if self.slope is not None and not math.isclose(slope, self.slope, rel_tol=1e-9):
            self.best, self.since = -math.inf, 0  # another objective: compare from here
        self.slope = slope
        if objective > self.best + self.rule.min_delta:
            self.best, self.since = objective, 0
        else:
            self.since += 1

    def message(self) -> str | None:
        if self.rule is None or self.since < self.rule.patience:
            return None
        return (
            f"early stopping: the objective has not improved by {self.rule.min_delta:g} "
            f"for {self.rule.patience} steps (best {self.best:.6g})"
        )


def run_optimization(
    analysis: Analysis,
    data: Any,
    settings: OptimizerSettings,
    *,
    output: Path,
    resume: bool = False,
    progress: bool = True,
    max_steps: int | None = None,
    config_hash: str | None = None,
    heldout: Any = None,
) -> OptimizationResult:
    """Maximise ``analysis.objective`` over its cut parameters, checkpointing into ``output/checkpoints``.

    Args:
        analysis: the analysis (its ``parameters`` are optimised).
        data: ``analysis.load()``, passed to every step as an argument (for an
            analysis evaluated chunk by chunk, the handle whose ``value_and_grad``
            each step calls: see :func:`chunked_step`).
        settings: optimiser, learning rate, steps, slope schedule, checkpoints,
            early stopping and seed.
        output: the job's output folder; checkpoints go to ``output/checkpoints``.
            Temporary files that killed writes left in both folders are removed first
            (:func:`diffhep.outputs.remove_temporaries`).
        resume: continue from the latest checkpoint there (from the start if none):
            only with the settings it was written with (:func:`resume_settings`);
            a checkpoint that cannot be read is skipped for the previous one, with
            a note on stderr (:func:`~diffhep.optimize.checkpoint.resume_checkpoint`).
        progress: show a progress bar with the objective and the cut values.
        max_steps: stop after this many steps in total, as if interrupted (a
            time-limited batch slot); the schedules still span ``settings.steps``.
        config_hash: the config's hash, recorded in the checkpoints; default: that of
            the config the analysis was built from, if any.
        heldout: data of the same structure as ``data`` never trained on (the evaluation
            half of ``training.split``): each step also records the objective there,
            ``objective_heldout`` (overtraining shows as the two curves parting), with the
            same compiled program; ``None``: not recorded. In memory only.

    With network observables (``analysis.networks``) their weights are optimised with
    the cuts (:mod:`~diffhep.optimize.networks`), starting from ``analysis.networks``.

    Returns:
        :class:`OptimizationResult`. A non-finite objective or gradient stops the
        run with a message in ``stopped``; the last good state is checkpointed.

    Raises:
        ConfigError: ``resume`` and the checkpoint is of other cuts or other settings.
        CheckpointError: ``resume`` and no checkpoint file in the folder can be read.
    """
    params = tuple(analysis.parameters)
    names = [p.name for p in params]
    folder = Path(output) / "checkpoints"
    optimizer, step = (chunked_step if is_chunked(analysis) else compiled_step)(analysis, settings)
    slope_at = settings.slope_schedule()
    dtype = jnp.result_type(float)
    initial = {p.name: float(p.init) for p in params}

    nets = has_networks(analysis)
    u = _start(analysis, params)
    opt_state = optimizer.init(u)
    start, history, resumed_from = 0, [], None
    wanted = resume_settings(analysis, settings, config_hash=config_hash)
    for where in (Path(output), folder):
        remove_temporaries(where)
    found = None
    if resume:
        ckpt, found = resume_checkpoint(
            folder, names, opt_state, settings.name, settings=wanted, networks=u["networks"] if nets else None,
            note=_note,
        )  # fmt: skip
        if ckpt is not None:
            u, opt_state, start, history = ckpt.u, ckpt.opt_state, ckpt.step, list(ckpt.history)
            u = {"cuts": u, "networks": ckpt.networks} if nets else u
            resumed_from = start

    def save(at: int, u_at: Any, state_at: Any, hist: list[dict[str, float]]) -> Path:
        cuts_u, weights = (u_at["cuts"], u_at["networks"]) if nets else (u_at, None)
        record = Checkpoint(at, cuts_u, state_at, hist, settings.seed, settings.name, wanted, weights)
        return save_checkpoint(folder, record)

    patience = _Patience(settings, history)
    if settings.early_stopping is not None and settings.slope_start != settings.slope_end:
        _note(
            f"early stopping compares steps at one slope: with slopes annealed over all {settings.steps} steps "
            "it cannot stop early"
        )
    stopped, done = patience.message(), start
    last_ckpt, saved_at = found, (start if found is not None else None)
    end = settings.steps if max_steps is None else min(settings.steps, max_steps)
    slopes = np.asarray(slope_at(jnp.arange(settings.steps)), dtype=dtype)  # one evaluation, not one per step
    bar = progress_bar(total=settings.steps, initial=start, desc="optimising", disable=not progress, dynamic_ncols=True)
    prev = (u, opt_state)  # the state of the last step with a finite objective and gradient
    try:
        for i in range(start, end if stopped is None else start):
            new_u, new_state, objective, gnorm, cuts = step(u, opt_state, data, slopes[i])
            objective, gnorm, cuts = jax.device_get((objective, gnorm, cuts))
            if heldout is not None:  # the objective at the same point on the events never trained on
                args = (cuts, heldout, slopes[i]) + ((u["networks"],) if nets else ())
                held = {"objective_heldout": float(objective_and_grad(analysis)(*args)[0])}
            else:
                held = {}
            entry = {
                "step": i,
                "objective": float(objective),
                **held,
                **{k: float(cuts[k]) for k in names},
                "slope_scale": float(slopes[i]),
                "grad_norm": float(gnorm),
            }
            history.append(entry)
            if not (math.isfinite(entry["objective"]) and math.isfinite(entry["grad_norm"])):
                what = "objective" if not math.isfinite(entry["objective"]) else "gradient"
                (u, opt_state), done = prev, (i - 1 if i > start else i)
                last_ckpt, saved_at = save(done, u, opt_state, history[:done]), done
                cut_text = ", ".join(f"{k}={entry[k]:.6g}" for k in names)
                stopped = (
                    f"stopped at step {i}: non-finite {what} at cuts {cut_text}; "
                    f"kept the last good state (step {done}, checkpoint {last_ckpt.name})"
                )
                break
            prev = (u, opt_state)
            u, opt_state, done = new_u, new_state, i + 1
            patience.update(entry["objective"], entry["slope_scale"])
            if settings.checkpoint_every and done % settings.checkpoint_every == 0:
                last_ckpt, saved_at = save(done, u, opt_state, history), done
            bar.update(1)
            if progress:
                bar.set_postfix(
                    {"objective": f"{entry['objective']:.4g}", **{k: f"{entry[k]:.4g}" for k in names}}, refresh=False
                )
            stopped = patience.message()
            if stopped is not None:
                break
    finally:
        bar.close()
    if stopped is None and done < settings.steps:
        stopped = f"stopped after {done} of {settings.steps} steps (max_steps); resume to continue"
    if saved_at != done:
        last_ckpt = save(done, u, opt_state, history)
    values = {k: float(v) for k, v in jax.device_get(from_unconstrained(params, u["cuts"] if nets else u)).items()}
    trained = eqx.combine(u["networks"], split_networks(analysis.networks)[1]) if nets else None
    return OptimizationResult(
        initial=initial,
        values=values,
        history=history,
        stopped=stopped,
        steps=done,
        resumed_from=resumed_from,
        checkpoint=last_ckpt,
        networks=trained,
    )
