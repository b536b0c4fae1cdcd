"""How fast a power-capped GPU runs: speed by cap share, one curve per kind of work.

A GPU capped at ``cap_w`` runs at ``speed(cap_w / peak_w)`` of its uncapped speed. Decode-heavy
LLM serving is bound by memory bandwidth and rarely draws its full board power, so it loses
little at a moderate cap; compute-bound training loses more. The curves are linear between
their points and flat beyond them; their sources are in the README ("Power caps"). A new
curve is one more entry in ``CAP_CURVES``.
"""

from __future__ import annotations

from bisect import bisect_right

from sim.registry import Registry

CAP_CURVES: Registry[tuple[tuple[float, float], ...]] = Registry("power-cap curve")
"""Per kind of work, (cap share of peak power, relative speed) points, by increasing share."""

CAP_CURVES.register("inference")(
    ((0.30, 0.50), (0.40, 0.65), (0.55, 0.83), (0.70, 0.93), (0.85, 0.97), (1.00, 1.00))
)
CAP_CURVES.register("training")(
    (
        (0.30, 0.35),
        (0.40, 0.50),
        (0.50, 0.68),
        (0.60, 0.80),
        (0.70, 0.87),
        (0.80, 0.92),
        (0.90, 0.97),
        (1.00, 1.00),
    )
)


def capped_speed(kind: str, share: float) -> float:
    """Relative speed of work of ``kind`` on a GPU capped at ``share`` of its peak power."""
    points = CAP_CURVES[kind]
    if share >= points[-1][0]:
        return points[-1][1]
    if share <= points[0][0]:
        return points[0][1]
    i = bisect_right([x for x, _ in points], share)
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (share - x0) / (x1 - x0)
