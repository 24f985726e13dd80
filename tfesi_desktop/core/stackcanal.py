"""The spinal canal on each slice of an axial stack, consistent from slice to slice.

The canal moves little between neighbouring axial slices (a few mm at 3-7.5 mm spacing): a
slice's best match far from where its neighbours' canals are is a look-alike (the interspinous
fat behind the canal, a vertebral body in front), and the canal is often another of the slice's
candidates (:func:`.midline.canal_candidates`). :func:`consistent_canals` picks, per slice, the
candidate (or none) that best fits a smooth course: each found slice scores
:data:`FOUND_BONUS` plus its match's score, each jump between consecutive found slices costs
:data:`JUMP_COST` per mm beyond :data:`JUMP_FREE_MM` + :data:`JUMP_PER_MM` per mm between their
planes (dynamic programming over the candidates; slices left out break no chain). A slice left
without a canal between found slices is searched again near the course through them, where a
weaker match (the close templates' symmetry rule relaxed, core/midline.py) is believed if it lies
on the course. A lone slice keeps its best candidate. docs/architecture.md ("Side from anatomy").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .midline import Canal

FOUND_BONUS = 0.5  # what a slice's canal is worth beyond its match's score
JUMP_FREE_MM = 4.0  # in-plane shift between consecutive found slices that costs nothing ...
JUMP_PER_MM = 0.3  # ... plus this much per mm between their planes
JUMP_COST = 0.1  # per mm of shift beyond that
REFIND_MM = 8.0  # a slice searched again near the course: its canal is kept this near it
REFIND_GAP = 2  # ... between found slices at most this many slices away on each side


def _jump_cost(a: Canal, b: Canal, normal: np.ndarray) -> float:
    d = np.subtract(b.centre_mm, a.centre_mm)
    dz = abs(float(np.dot(d, normal)))
    shift = float(np.linalg.norm(d - np.dot(d, normal) * normal))
    return JUMP_COST * max(0.0, shift - JUMP_FREE_MM - JUMP_PER_MM * dz)


def choose(candidates: Sequence[Sequence[Canal]], normal) -> list[int | None]:
    """Per slice (in stack order), the index of the chosen candidate or None: the choice of
    least cost (module docstring)."""
    n = np.asarray(normal, float)
    n = n / np.linalg.norm(n)
    nodes = [(i, k) for i, cs in enumerate(candidates) for k in range(len(cs))]
    best: dict[tuple[int, int], tuple[float, tuple[int, int] | None]] = {}
    for i, k in nodes:  # in stack order: every predecessor is done
        c = candidates[i][k]
        cost, prev = 0.0, None
        for j, m in best:
            if j < i:
                through = best[(j, m)][0] + _jump_cost(candidates[j][m], c, n)
                if through < cost:
                    cost, prev = through, (j, m)
        best[(i, k)] = (cost - FOUND_BONUS - c.score, prev)
    out: list[int | None] = [None] * len(candidates)
    if not best:
        return out
    node = min(best, key=lambda x: best[x][0])
    if best[node][0] >= 0.0:
        return out
    while node is not None:
        out[node[0]] = node[1]
        node = best[node][1]
    return out


def consistent_canals(candidates: Sequence[Sequence[Canal]], geometries: Sequence,
                      refind: Callable[[int, tuple[float, float, float]], Canal | None]
                      | None = None) -> list[Canal | None]:
    """The canal per slice (module docstring). ``candidates``: each slice's, best first;
    ``geometries``: the slices' :class:`~.geometry.SliceGeometry`, in stack order;
    ``refind(i, expected_mm)``: slice i searched again near ``expected_mm`` (weak matches
    allowed), or None."""
    if not geometries:
        return []
    normal = np.asarray(geometries[0].normal, float)
    picks = choose(candidates, normal)
    out = [None if k is None else candidates[i][k] for i, k in enumerate(picks)]
    if refind is None:
        return out
    found = [i for i, c in enumerate(out) if c is not None]
    for i in range(len(out)):
        if out[i] is not None:
            continue
        before = [j for j in found if i - REFIND_GAP <= j < i]
        after = [j for j in found if i < j <= i + REFIND_GAP]
        if not before or not after:
            continue
        j, k = before[-1], after[0]
        zj, zi, zk = (float(np.dot(geometries[x].position, normal)) for x in (j, i, k))
        t = (zi - zj) / (zk - zj) if zk != zj else 0.5
        expected = np.add(out[j].centre_mm, t * np.subtract(out[k].centre_mm, out[j].centre_mm))
        canal = refind(i, tuple(float(v) for v in expected))
        if canal is None:
            continue
        d = np.subtract(canal.centre_mm, expected)
        if np.linalg.norm(d - np.dot(d, normal) * normal) <= REFIND_MM:
            out[i] = canal
    return out
