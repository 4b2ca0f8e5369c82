"""Relaxed selection: soft cuts on objects and events, differentiable counting.

One concept per module:

* :mod:`~diffhep.select.cuts`: soft (sigmoid) and hard cuts; slope or temperature per cut.
* :mod:`~diffhep.select.logic`: AND / OR / NOT of weights (independent cuts).
* :mod:`~diffhep.select.counts`: object weights -> event weights (Poisson-binomial counts).
* :mod:`~diffhep.select.joint_counts`: nested counts ("≥ 4 jets, ≥ 1 of them b-tagged").
* :mod:`~diffhep.select.ordered`: the first passing object in a static order (best candidate).
* :mod:`~diffhep.select.soft_count`: the cheaper ``sum(w)`` relaxation of counts.
* :mod:`~diffhep.select.cutflow`: soft and hard cutflows side by side.
* :mod:`~diffhep.select.anneal`: slope schedules (Optax) to sharpen cuts over time.
* :mod:`~diffhep.select.straight_through`: hard forward pass, soft gradient.
* :mod:`~diffhep.select.polytree`: the product tree behind the counts.
"""

from diffhep.select.anneal import geometric_slope, linear_slope, slopes_at
from diffhep.select.counts import (
    any_pass,
    at_least,
    at_most,
    count_distribution,
    event_product,
    exactly,
    none_pass,
)
from diffhep.select.cutflow import Cutflow, Step, cutflow
from diffhep.select.cuts import (
    hard_above,
    hard_below,
    hard_window,
    resolve_slope,
    soft_above,
    soft_below,
    soft_window,
)
from diffhep.select.joint_counts import at_least_joint, joint_count_distribution
from diffhep.select.logic import all_of, and_, any_of, not_, or_
from diffhep.select.ordered import exclusive_product, first_pass
from diffhep.select.soft_count import (
    soft_count,
    soft_count_at_least,
    soft_count_at_most,
    soft_count_exactly,
)
from diffhep.select.straight_through import st_above, st_below, st_window, straight_through

__all__ = [
    # cuts
    "soft_above",
    "soft_below",
    "soft_window",
    "hard_above",
    "hard_below",
    "hard_window",
    "resolve_slope",
    # logic
    "and_",
    "or_",
    "not_",
    "all_of",
    "any_of",
    # counts
    "count_distribution",
    "at_least",
    "at_most",
    "exactly",
    "none_pass",
    "any_pass",
    "event_product",
    "joint_count_distribution",
    "at_least_joint",
    "soft_count",
    "soft_count_at_least",
    "soft_count_at_most",
    "soft_count_exactly",
    # ordered choice
    "first_pass",
    "exclusive_product",
    # cutflow
    "Step",
    "Cutflow",
    "cutflow",
    # annealing
    "geometric_slope",
    "linear_slope",
    "slopes_at",
    # straight-through
    "straight_through",
    "st_above",
    "st_below",
    "st_window",
]
