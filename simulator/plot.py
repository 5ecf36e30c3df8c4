"""`--plot FILE.png`: the Tech Lead load by hour and the breach rates, candidate beside baseline."""

from __future__ import annotations

from pathlib import Path

from simulator.figures import Simulation

BASELINE_COLOUR, CANDIDATE_COLOUR = "#4C72B0", "#DD8452"


def plot(sim: Simulation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b, c = sim.baseline, sim.candidate
    fig, (load, breaches) = plt.subplots(2, 1, figsize=(12, 9), layout="constrained")
    fig.suptitle(f"What if: {sim.tickets} tickets, baseline {b.policy!r} vs candidate {c.policy!r}")

    hours = list(range(24))
    width = 0.4
    load.bar(
        [h - width / 2 for h in hours], b.tech_lead_by_hour, width, label=b.policy, color=BASELINE_COLOUR
    )
    load.bar(
        [h + width / 2 for h in hours], c.tech_lead_by_hour, width, label=c.policy, color=CANDIDATE_COLOUR
    )
    load.set_title("Tech Lead load: tickets raised by hour of day (the case calendar's zone)")
    load.set_xlabel("hour of day")
    load.set_ylabel("Tech Lead tickets")
    load.set_xticks(hours, [f"{h:02d}" for h in hours])
    load.legend()

    labels, rate_b, rate_c = [], [], []
    for pb, pc in zip(b.breaches, c.breaches, strict=True):
        for mb, mc in zip(pb.milestones, pc.milestones, strict=True):
            labels.append(f"{pb.priority}\n{mb.milestone.replace('_', ' ')}")
            rate_b.append((mb.rate or 0) * 100)
            rate_c.append((mc.rate or 0) * 100)
    xs = list(range(len(labels)))
    breaches.bar([x - width / 2 for x in xs], rate_b, width, label=b.policy, color=BASELINE_COLOUR)
    breaches.bar([x + width / 2 for x in xs], rate_c, width, label=c.policy, color=CANDIDATE_COLOUR)
    breaches.set_title("Breach rate per milestone and priority (met late counts as breached)")
    breaches.set_ylabel("% of cases")
    breaches.set_ylim(0, 100)
    breaches.set_xticks(xs, labels, fontsize=8)
    breaches.legend()

    fig.savefig(path, dpi=110)
    plt.close(fig)
