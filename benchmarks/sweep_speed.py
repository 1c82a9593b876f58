"""Speed of the exact-mode stability sweep: 64×64 (kp, ki) loops × 100-arm bandit × 2000 steps.

Prints the wall time of the project's sweep path (`sim.BanditPlant` on the compiled torch
backend driven by one `pic.PIController` holding the whole gain grid; best and median of
``--repeats``, compilation excluded and printed separately) and of a straightforward numpy
float64 loop measured in the same run, their ratio, and how well the two agree: the largest
entropy difference over the first 100 steps, and the share of cells where both reach the same
verdict (settled within 1e-3 nats of the target, or not). The load average is printed before
and after, since the timings mean little on a busy machine.

    python benchmarks/sweep_speed.py                 # full comparison (~1 min)
    python benchmarks/sweep_speed.py --naive-steps 200   # extrapolate the naive loop from 200 steps

Goal: ≤ 2 s for the sweep on a 2-core CPU. Measured there (torch 2.13 CPU, 2 threads, 1-min
load 0.7 at the start): compile 4.7 s, sweep best 1.55 s / median 1.56 s, naive loop 20.8 s
(17–26 s over several runs, depending on the load), speed-up 13×; agreement 9.9e-07 nats over
the first 100 steps, same verdict in 98.7 % of cells. Repeats hit by other jobs on the cores
take 15–50 s: read the load line.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from math import comb

import numpy as np

from pic import PIController
from pic.actuator import entropic_weights
from sim._perf import keep_freed_memory
from sim.bandit import standard_problem
from sim.plant import BanditPlant, PlantConfig


def naive_sweep(p, z0, kp, ki, target, steps, cfg: PlantConfig):
    """The obvious numpy float64 implementation of the same exact on-policy loop."""
    g = cfg.group_size
    z = np.tile(z0, (kp.size, 1))  # (B, K)
    ctrl = PIController(kp, ki, target)
    hist = np.empty((steps, kp.size))
    for t in range(steps):
        pi = np.exp(z - z.max(1, keepdims=True))
        pi /= pi.sum(1, keepdims=True)
        h = -(pi * np.log(pi)).sum(1)
        hist[t] = h
        alpha = ctrl.update(h)[:, None]
        mu = (pi * p).sum(1, keepdims=True)
        p1 = np.zeros_like(mu)
        n0 = np.zeros_like(mu)
        for j in range(g):  # j successes among the other G − 1 group members
            pj = comb(g - 1, j) * mu**j * (1 - mu) ** (g - 1 - j)
            for r in (0, 1):
                m = j + r
                std = np.sqrt(m * (g - m) / (g * (g - 1)))
                a = (r - m / g) / (std + cfg.adv_eps)
                if r:
                    p1 += pj * a
                else:
                    n0 += pj * a
        w_pos = entropic_weights(pi, 1.0, alpha, cfg.tau)
        w_neg = entropic_weights(pi, -1.0, alpha, cfg.tau)
        m = w_pos * p * p1 + w_neg * (1 - p) * n0
        z = z + cfg.lr * pi * (m - (pi * m).sum(1, keepdims=True))
    return hist


def fast_sweep(bandit, z0, kp, ki, target, steps, cfg):
    plant = BanditPlant(bandit, z0, loops=kp.size, config=cfg, backend="torch", compile=True)
    ctrl = PIController(kp, ki, target)
    hist = np.empty((steps, kp.size), dtype=np.float32)
    t0 = time.perf_counter()
    for t in range(steps):
        h = plant.entropy()
        hist[t] = h
        plant.step(ctrl.update(h))
    return hist, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", type=int, default=64)
    ap.add_argument("--arms", type=int, default=100)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--naive-steps", type=int, default=None, help="steps of the naive loop (default: --steps)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats of the fast sweep (best is reported)")
    args = ap.parse_args()

    import torch

    keep_freed_memory()
    bandit, z_start = standard_problem(1, arms=args.arms)
    cfg = PlantConfig(lr=1.0)
    # start where GRPO has brought the entropy to 0.2 nats; target 0.1
    warm = BanditPlant(bandit, z_start, config=cfg)
    while warm.entropy()[0] > 0.2:
        warm.step(0.0)
    z0 = warm.logits()[0]
    k = 2e-3  # order of the plant gain there; the grid spans stable and unstable cells
    kp_n, ki_n = np.meshgrid(np.linspace(0, 3.5, args.grid), np.linspace(0, 2.0, args.grid))
    kp, ki = (kp_n / k).ravel(), (ki_n / k).ravel()
    print(f"sweep: {kp.size} loops x {args.arms} arms x {args.steps} steps, exact on-policy GRPO + EntroPIC")
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print("load average (1, 5, 15 min) at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    t0 = time.perf_counter()
    BanditPlant(bandit, z0, loops=kp.size, config=cfg, backend="torch", compile=True).step(np.zeros(kp.size))
    print(f"compile (first call, cached on disk afterwards): {time.perf_counter() - t0:.1f} s")
    times = []
    for _ in range(args.repeats):
        fast, dt = fast_sweep(bandit, z0, kp, ki, 0.1, args.steps, cfg)
        times.append(dt)
    best = min(times)
    print(
        f"fast sweep (torch compiled, float32): best {best:.2f} s, median {np.median(times):.2f} s, "
        f"all {', '.join(f'{t:.2f}' for t in times)} s (compile excluded)"
    )

    n_naive = args.naive_steps or args.steps
    t0 = time.perf_counter()
    naive = naive_sweep(bandit.success[0], z0[0], kp, ki, 0.1, n_naive, cfg)
    t_naive = (time.perf_counter() - t0) * args.steps / n_naive
    note = "" if n_naive == args.steps else f" (extrapolated from {n_naive} steps)"
    print(f"naive numpy float64 loop: {t_naive:.1f} s{note}")
    print(f"speed-up: {t_naive / best:.1f}x (best fast sweep against the naive loop)")
    # Agreement of the two implementations. The actuator switches on where π > τ, so the map
    # is discontinuous: once rounding puts an arm on the other side of τ, two trajectories part
    # (float64 against float64 with another order of operations does it too), and a max over
    # the whole run measures that chaos, not the implementation. Compare (1) the first 100
    # steps of every loop, before any divergence is amplified, and (2) the verdict the sweep
    # cares about: settled within 1e-3 nats of the target over the last 100 steps.
    head = min(100, n_naive)
    diff = np.abs(fast[:head].astype(float) - naive[:head]).max()
    print(f"max |H_fast - H_naive| over the first {head} steps, all {kp.size} loops: {diff:.2e} nats")
    if n_naive == args.steps:
        tail = min(100, n_naive)
        settled_fast = (np.abs(fast[-tail:].astype(float) - 0.1) <= 1e-3).all(0)
        settled_naive = (np.abs(naive[-tail:] - 0.1) <= 1e-3).all(0)
        same = 100 * np.mean(settled_fast == settled_naive)
        print(
            f"settled (|e| <= 1e-3 over the last {tail} steps): fast {settled_fast.sum()}, naive "
            f"{settled_naive.sum()} loops; same verdict in {same:.2f} % of cells"
        )
    print("load average (1, 5, 15 min) at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
