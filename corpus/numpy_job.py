"""A numerical job for corpus/capture.py: runs until killed, printing "running" once ready.

It cycles through phases whose memory behaviour differs:

* a Jacobi stencil on a 2048 x 2048 float64 grid (two 32 MiB buffers) that relaxes only a
  moving 256-row band most steps (about a thousand pages per step), with a full sweep of
  the grid into the other buffer every 16 steps (every page of it, and the temporaries);
* a pandas table of 400k rows (ints, floats, short strings) whose rows are updated at
  random, then grouped by key with a mean, a sum and a count: new temporaries each time;
* a quiet stretch of a few seconds after every 40 steps, in which the job waits (as for its
  next input): windows of a handful of dirty pages between the busy ones.

The quiet stretches are what keep its trace small: a page of float64 results barely
compresses, so every busy window costs its full sample of pages.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

N = 2048
BAND = 256
STEPS = 40  # compute steps between quiet stretches
QUIET_S = 2.5  # length of a quiet stretch


def main() -> None:
    rng = np.random.default_rng(1)
    grid = rng.random((N, N))
    spare = grid.copy()
    table = pd.DataFrame(
        {
            "key": rng.integers(0, 5000, 400_000),
            "value": rng.standard_normal(400_000),
            "count": rng.integers(0, 100, 400_000),
            "label": rng.choice(np.array(["alpha", "beta", "gamma", "delta"]), 400_000),
        }
    )
    summaries: list[pd.DataFrame] = []
    print("running", flush=True)
    step = 0
    while True:
        step += 1
        if step % 16 == 0:  # full sweep
            spare[1:-1, 1:-1] = 0.25 * (
                grid[:-2, 1:-1] + grid[2:, 1:-1] + grid[1:-1, :-2] + grid[1:-1, 2:]
            )
            grid, spare = spare, grid
        else:  # a band that moves down the grid
            lo = 1 + (step * 37) % (N - BAND - 2)
            hi = lo + BAND
            grid[lo:hi, 1:-1] = 0.25 * (
                grid[lo - 1 : hi - 1, 1:-1]
                + grid[lo + 1 : hi + 1, 1:-1]
                + grid[lo:hi, :-2]
                + grid[lo:hi, 2:]
            )
        if step % 5 == 0:
            rows = rng.integers(0, len(table), 20_000)
            table.loc[rows, "value"] += rng.standard_normal(rows.size)
            table.loc[rows, "count"] += 1
            summary = table.groupby(["key", "label"]).agg(
                mean=("value", "mean"), total=("count", "sum"), n=("value", "size")
            )
            summaries.append(summary)
            del summaries[:-4]  # keep the last few: old ones become garbage
        if step % STEPS == 0:
            time.sleep(QUIET_S)  # a quiet stretch
        else:
            time.sleep(0.02)


if __name__ == "__main__":
    main()
