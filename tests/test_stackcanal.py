"""The canal consistent across an axial stack (core/stackcanal.py): a look-alike far from the
neighbours' canal loses to the slice's true canal, a slice with only look-alikes is refused and
searched again near the course, a lone slice keeps its best match."""

from types import SimpleNamespace

import numpy as np

from tfesi_desktop.core.midline import Canal
from tfesi_desktop.core.stackcanal import consistent_canals

SPACING = 7.5  # mm between slices, as the real T2 series of docs/real-scans.md


def _canal(x, y, z, score):
    return Canal(0.0, 0.0, (float(x), float(y), float(z)), (1.0, 0.0, 0.0), 0.0, score)


def _geometries(n):
    return [SimpleNamespace(normal=np.array([0.0, 0.0, 1.0]), position=(0.0, 0.0, i * SPACING))
            for i in range(n)]


def _course(i):  # the canal drifts 1 mm per slice left-right and 1.5 mm anterior-posterior
    return 10.0 + i, -12.0 + 1.5 * i, i * SPACING


def test_a_look_alike_far_from_the_course_loses_to_the_true_canal():
    n = 7
    cands = [[_canal(*_course(i), 0.6)] for i in range(n)]
    # slice 3: the interspinous fat 22 mm behind scores more than the canal (real T2, slice 5)
    x, y, z = _course(3)
    cands[3] = [_canal(x, y + 22.0, z, 0.63), _canal(x, y, z, 0.55)]
    out = consistent_canals(cands, _geometries(n))
    assert out[3] is cands[3][1]
    assert [out[i] for i in range(n) if i != 3] == [cands[i][0] for i in range(n) if i != 3]


def test_a_slice_with_only_a_look_alike_is_refused_then_found_near_the_course():
    n = 7
    cands = [[_canal(*_course(i), 0.6)] for i in range(n)]
    x, y, z = _course(4)
    cands[4] = [_canal(x, y - 18.0, z, 0.47)]  # the vertebral body in front (real T2, slice 13)
    assert consistent_canals(cands, _geometries(n))[4] is None
    asked = []

    def refind(i, expected):
        asked.append((i, expected))
        return _canal(expected[0] + 1.0, expected[1] - 1.0, expected[2], 0.5)

    out = consistent_canals(cands, _geometries(n), refind)
    assert [i for i, _ in asked] == [4]
    assert np.allclose(asked[0][1], _course(4))  # between its neighbours' canals
    assert out[4] is not None and np.allclose(out[4].centre_mm, (x + 1.0, y - 1.0, z))
    far = consistent_canals(cands, _geometries(n),
                            lambda i, e: _canal(e[0], e[1] + 15.0, e[2], 0.9))
    assert far[4] is None  # a weak match off the course is not believed


def test_a_lone_slice_keeps_its_best_match_and_nothing_stays_nothing():
    best, other = _canal(0, 30, 0, 0.5), _canal(0, 0, 0, 0.49)
    assert consistent_canals([[best, other]], _geometries(1)) == [best]
    assert consistent_canals([[], [], []], _geometries(3), lambda i, e: best) == [None] * 3
    # two slices that disagree: each keeps its own canal (no majority to tell)
    a, b = _canal(0, 0, 0, 0.6), _canal(0, 25, SPACING, 0.6)
    assert consistent_canals([[a], [b]], _geometries(2)) in ([a, None], [None, b], [a, b])


def test_the_real_t2_case_where_the_true_canal_is_second_on_two_slices():
    """Every slice's candidates printed for the real T2 series, slices 4-7 (docs/real-scans.md):
    the old per-slice choice took the interspinous fat on slice 5."""
    rows = [[(14, -7, 0.67)], [(15, 10, 0.63), (14, -12, 0.62)],
            [(15, -12, 0.73), (15, 8, 0.66)], [(14, -14, 0.63)]]
    cands = [[_canal(x, y, i * SPACING, s) for x, y, s in row] for i, row in enumerate(rows)]
    out = consistent_canals(cands, _geometries(4))
    assert [c.centre_mm[1] for c in out] == [-7, -12, -12, -14]


def test_the_stack_search_uses_the_neighbours_within_reach(monkeypatch):
    """commands.find_anatomy_in_stack: slice 5 of 12 is judged with slices 2-8 (STACK_REACH
    3) and gets its true canal, the second candidate; a one-slice stack keeps the best."""
    from tfesi_desktop.core import commands

    geoms = _geometries(12)
    for g in geoms:
        g.is_axial = lambda: True
    stack = SimpleNamespace(slices=[SimpleNamespace(geometry=g) for g in geoms])
    cands = {i: [_canal(*_course(i), 0.6)] for i in range(12)}
    x, y, z = _course(5)
    cands[5] = [_canal(x, y + 22.0, z, 0.63), _canal(x, y, z, 0.55)]
    asked = []

    def candidates_of(i):
        asked.append(i)
        return cands[i]

    got = commands.find_anatomy_in_stack(stack, 5, values=np.zeros((8, 8)),
                                         candidates_of=candidates_of)
    assert got is cands[5][1] and sorted(asked) == [2, 3, 4, 5, 6, 7, 8]
    lone = SimpleNamespace(slices=[stack.slices[5]])
    assert commands.find_anatomy_in_stack(lone, 0, values=np.zeros((8, 8)),
                                          candidates_of=lambda i: cands[5]) is cands[5][0]
