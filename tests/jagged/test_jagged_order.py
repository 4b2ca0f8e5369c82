"""Static orderings and subsets, leading-k dense views, and the events container."""

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jagged_factory import random_collection, random_leptons

from diffhep.errors import InputError
from diffhep.jagged import (
    Events,
    dense_to_awkward,
    first,
    four_momenta,
    from_awkward,
    from_awkward_events,
    keep,
    leading,
    sort,
    to_awkward,
)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("ascending", [False, True])
def test_sort_matches_awkward(ascending):
    arr = random_collection(0)
    j = from_awkward(arr)
    for by in ("pt", np.asarray(j.eta), j.eta):
        key = arr.pt if isinstance(by, str) else arr.eta
        out = sort(j, by, ascending=ascending)
        expected = arr[ak.argsort(key, axis=1, ascending=ascending)]
        assert ak.to_list(to_awkward(out)) == ak.to_list(expected)
        np.testing.assert_array_equal(out.local_index, j.local_index)
        assert out.max_count == j.max_count


def test_sort_ties_are_stable_like_awkward():
    arr = ak.Array([[{"k": 1, "i": 0.0}, {"k": 2, "i": 1.0}, {"k": 1, "i": 2.0}, {"k": 2, "i": 3.0}], []])
    j = sort(from_awkward(arr), "k")
    assert ak.to_list(to_awkward(j, j.i)) == ak.to_list(arr.i[ak.argsort(arr.k, axis=1, ascending=False, stable=True)])


def test_sort_and_keep_need_host_values():
    j = from_awkward(random_collection(1))
    with pytest.raises(InputError, match="needs concrete host values"):
        jax.jit(lambda pt: sort(j, pt).pt)(j.pt)
    with pytest.raises(InputError, match="cannot sort by 'phi'.*(did you mean|expected one of)"):
        sort(j, "phi")
    with pytest.raises(InputError, match=r"shape \(objects,\)"):
        sort(j, np.zeros(3))


def test_keep_matches_awkward_mask():
    arr = random_collection(2)
    j = keep(from_awkward(arr), np.asarray(j_eta := from_awkward(arr).eta) > 0)
    expected = arr[arr.eta > 0]
    assert ak.to_list(to_awkward(j)) == ak.to_list(expected)
    assert j.n_objects == int(np.sum(np.asarray(j_eta) > 0))
    assert j.max_count == int(ak.max(ak.num(expected)))
    np.testing.assert_allclose(j.sum(j.pt), ak.sum(expected.pt, axis=1))  # structure rebuilt


@pytest.mark.parametrize("k", [1, 3])
def test_leading_matches_pad_none(k):
    arr = random_collection(3)
    j = sort(from_awkward(arr), "pt")
    lead = leading(j, j.pt, k, fill=-1.0)
    ordered = arr.pt[ak.argsort(arr.pt, axis=1, ascending=False)]
    padded = ak.pad_none(ordered, k, clip=True)
    np.testing.assert_array_equal(lead.values, ak.to_numpy(ak.fill_none(padded, -1.0)))
    np.testing.assert_array_equal(lead.mask, ak.to_numpy(~ak.is_none(padded, axis=1)))
    assert ak.to_list(dense_to_awkward(lead.values, lead.mask)) == ak.to_list(ak.drop_none(padded))
    np.testing.assert_array_equal(first(j, j.pt, fill=0.0), ak.fill_none(ak.firsts(ordered), 0.0))


def test_leading_of_a_pytree_and_gradient():
    j = sort(from_awkward(random_leptons(0)), "pt")
    p4 = leading(j, four_momenta(j), 2).values
    assert p4.px.shape == (j.n_events, 2)

    def lead_pair_mass(scale):
        lead = leading(j, four_momenta(j.with_field("pt", scale * j.pt)), 2)
        both = lead.mask[:, 0] & lead.mask[:, 1]
        pair = jax.tree.map(lambda v: v[:, 0] + v[:, 1], lead.values)
        return jnp.where(both, pair.mass, 0.0)

    g = jax.jit(jax.jacfwd(lead_pair_mass))(1.0)
    np.testing.assert_allclose(g, lead_pair_mass(1.0), rtol=1e-3)  # ~ m, up to lepton masses


def test_events_container_reads_like_awkward():
    raw = ak.zip(
        {"Jet": random_collection(4), "Muon": random_leptons(4), "MET_pt": np.linspace(1, 40, 40)},
        depth_limit=1,
    )
    ev = from_awkward_events(raw, {"Jet": ["pt"], "Muon": None}, ["MET_pt"], sort_by={"Muon": "pt"})
    assert isinstance(ev, Events) and ev.n_events == 40
    assert ak.to_list(to_awkward(ev.Jet, ev.Jet.pt)) == ak.to_list(raw.Jet.pt)
    assert set(ev.Muon.fields) == {"pt", "eta", "phi", "mass", "charge"}
    np.testing.assert_array_equal(ev.MET_pt, raw.MET_pt)
    assert ev["Jet"] is ev.Jet

    @jax.jit
    def soft_ht(ev, cut):
        w = jax.nn.sigmoid(ev.Jet.pt - cut)
        return ev.Jet.sum(w * ev.Jet.pt) + ev.MET_pt

    np.testing.assert_allclose(soft_ht(ev, 20.0), ev.Jet.sum(jax.nn.sigmoid(ev.Jet.pt - 20.0) * ev.Jet.pt) + ev.MET_pt)
    ev2 = ev.with_field("HT", ev.Jet.sum(ev.Jet.pt)).with_collection("Lead", sort(ev.Jet, "pt"))
    assert ev2.HT.shape == (40,) and ev2.Lead.n_objects == ev.Jet.n_objects
    with pytest.raises(InputError, match="no collection or field 'Jets'.*did you mean 'Jet"):
        _ = ev.Jets
    with pytest.raises(InputError, match="events have no field 'Electron'"):
        from_awkward_events(raw, ["Electron"])
    with pytest.raises(InputError, match="one number per event"):
        from_awkward_events(raw, [], ["Jet"])
