"""Tables small enough to compute scores by hand (shared by the replay and grid tests)."""

import numpy as np

from migcodec.selector.evaluation import Table


def tiny_table() -> Table:
    """3 windows x 2 arms of 1000 guest bytes. Arm 0 sends 500 B in 1 s of CPU; arm 1 sends
    250 B in 1 s, except in window 1 where it sends 1000 B in 4 s."""
    w, k = 3, 2
    out = np.array([[500.0, 250.0], [500.0, 1000.0], [500.0, 250.0]])
    cpu = np.array([[1.0, 1.0], [1.0, 4.0], [1.0, 1.0]])
    nan = np.full((w, k), np.nan)
    return Table(
        arms=[{"name": "raw"}, {"name": "lz4"}],
        input_bytes=np.full((w, k), 1000.0),
        output_bytes=out,
        wall_s=cpu.copy(),
        cpu_s=cpu,
        device_s=nan,
        context=np.tile([1.0, 0.0, 0.5, 1.0, 0.0], (w, 1)),
        predicted_ratio=nan.copy(),
        predicted_rate=nan.copy(),
        cheap_s=np.zeros(w),
        probe_s=np.zeros((w, k)),
        phases=["a", "b", "a"],
        meta={"kinds": ["raw", "compress"]},
    )
