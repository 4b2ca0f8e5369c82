"""Joint counts of nested selections: "at least 4 jets, of which at least 1 b-tagged".

"At least ``a`` objects pass selection S, and at least ``b`` of *those* also
pass T" is not ``at_least(S, a) * at_least(S and T, b)``: the tagged objects
must be among the selected ones, so the two counts are not independent. With
per-object probabilities ``w_sel = P(S)`` and ``w_tag = P(S and T) <= w_sel``,
each object is either not selected, selected and untagged, or selected and
tagged, and the joint distribution of ``(N_sel, N_tag)`` is given by the
product of trinomials

    ``(1 - w_sel) + (w_sel - w_tag) x + w_tag x y``

truncated at ``x^a y^b`` (the last row and column collect "that many or
more"), computed with the same pairwise product tree as the one-count case
(:mod:`diffhep.select.polytree`). With hard weights it is exactly the hard
joint count. Typically ``w_tag = and_(w_sel, w_btag)``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from diffhep.errors import InputError
from diffhep.jagged import Jagged
from diffhep.select.polytree import dense_coefficients, tree_product

__all__ = ["joint_count_distribution", "at_least_joint"]


def joint_count_distribution(collection: Jagged, w_sel: Array, w_tag: Array, n_sel: int, n_tag: int) -> Array:
    """Joint distribution of (selected, selected-and-tagged) object counts per event.

    Args:
        collection: the jagged collection the weights belong to.
        w_sel: ``Float[Array, "objects"]``, ``P(object selected)``.
        w_tag: ``Float[Array, "objects"]``, ``P(object selected and tagged)``;
            must satisfy ``0 <= w_tag <= w_sel`` (not checked).
        n_sel: last count of selected objects tracked separately.
        n_tag: last count of tagged objects tracked separately.

    Returns:
        ``Float[Array, "events n_sel+1 n_tag+1"]``: entry ``[e, i, j]`` is
        ``P(N_sel = i, N_tag = j)``, with ``=`` read as ``>=`` at ``i = n_sel``
        or ``j = n_tag``. Each event's entries sum to 1.
    """
    for name, n in (("n_sel", n_sel), ("n_tag", n_tag)):
        if not isinstance(n, int) or n < 0:
            raise InputError(f"{name} must be an integer >= 0, got {n!r}")
    limits = (n_sel, n_tag)
    factors = {(0, 0): 1.0 - w_sel, (1, 0): w_sel - w_tag, (1, 1): w_tag}
    poly = tree_product(collection, factors, limits)
    return dense_coefficients(poly, limits, collection.n_events, jnp.result_type(w_sel, w_tag))


def at_least_joint(collection: Jagged, w_sel: Array, w_tag: Array, n_sel: int, n_tag: int) -> Array:
    """``P(N_sel >= n_sel and N_tag >= n_tag)`` per event, shape ``(events,)``.

    ``w_sel`` and ``w_tag`` as in :func:`joint_count_distribution`.

    Example: "at least 2 jets, at least 1 of them b-tagged". The first event
    has one selected untagged jet and one unselected tagged jet: it fails,
    although it has 2 jets and 1 b-tag (its tagged jet is not selected).

        >>> import awkward as ak
        >>> from diffhep.jagged import from_awkward
        >>> from diffhep.select import and_
        >>> jets = from_awkward(ak.Array([[{"sel": 1.0, "btag": 0.0}, {"sel": 0.0, "btag": 1.0}],
        ...                               [{"sel": 1.0, "btag": 0.0}, {"sel": 1.0, "btag": 1.0}]]))
        >>> at_least_joint(jets, jets.sel, and_(jets.sel, jets.btag), 2, 1).tolist()
        [0.0, 1.0]
    """
    return joint_count_distribution(collection, w_sel, w_tag, n_sel, n_tag)[:, n_sel, n_tag]
