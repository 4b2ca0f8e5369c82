"""How chunks are grouped into padded shapes (:func:`diffhep.engine.chunk_padding.plan_shapes`).

Each class of chunks is one compiled program; padding a chunk to its class's shape costs run time in
every step. At the AGC's 1e7 events every chunk had 200k events, so one class held W+jets chunks of
~15k trijet candidates and ttbar chunks of ~3.1e6: each W+jets chunk was padded to 3.1e6 candidates
and the cached streaming step took 52.8 s, against 13.5 s with the classes split by the chunks'
numbers of objects (2 cores, side by side, 2026-12-08).
"""

from __future__ import annotations

from diffhep.engine.chunk_padding import SPLIT_OBJECTS, ShapePadder, plan_shapes

JETS, COMBOS = ("objects", "jets"), ("combos", "trijet")


def sizes(events: int, jets: int, combos: int, combo_cap: int = 256) -> dict:
    return {"events": events, JETS: (jets, 16), COMBOS: (combos, combo_cap)}


def test_chunks_of_one_size_with_little_padding_share_one_class():
    chunks = [sizes(1000, 6000, 20_000), sizes(1000, 5000, 15_000), sizes(1000, 400, 300)]
    (only,) = plan_shapes(chunks)
    assert only[:2] == (1000, 1000)
    assert only[2][COMBOS][0] >= 20_000 and only[2][JETS][0] >= 6000


def test_large_padding_splits_a_class_by_the_chunks_numbers_of_objects():
    ttbar = [sizes(200_000, 1_000_000, 3_000_000, 1024), sizes(200_000, 990_000, 2_900_000, 1024)]
    wjets = [sizes(200_000, 90_000, 15_000, 64), sizes(200_000, 95_000, 14_000, 64)]
    classes = plan_shapes(ttbar + wjets)
    assert len(classes) == 2
    small, large = (target for _, _, target in classes)  # smallest target first
    assert small[COMBOS] == (15_360, 64) and large[COMBOS][0] >= 3_000_000
    assert all(low == high == 200_000 for low, high, _ in classes)
    padder = ShapePadder(tuple(classes), {}, {}, {})
    assert padder.target(wjets[0]) == small and padder.target(ttbar[1]) == large  # each in its own class
    # the same chunks when the padding is allowed: one class, every chunk padded to the ttbar chunks' shape
    (one,) = plan_shapes(ttbar + wjets, split_objects=10 * 3_000_000)
    assert one[2][COMBOS][0] >= 3_000_000
    assert 2 * (3_000_000 - 15_000) > SPLIT_OBJECTS  # (why the default splits them)


def test_the_padder_names_its_classes_for_the_cache():
    chunks = [sizes(100, 600, 2000)]
    a = ShapePadder(tuple(plan_shapes(chunks)), {}, {}, {"sr": None})
    b = ShapePadder(tuple(plan_shapes(chunks, resolution=4)), {}, {}, {"sr": None}, resolution=4)
    assert a.cache_tag == ShapePadder(tuple(plan_shapes(chunks)), {}, {}, {"sr": None}).cache_tag
    assert a.cache_tag != b.cache_tag and a.cache_tag.startswith("padded-")
