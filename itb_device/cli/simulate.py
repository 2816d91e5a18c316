"""``itb simulate``: run a scenario on the simulated pump, write its log and ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from itb_device.cli.errors import UserError


def register(p: argparse.ArgumentParser) -> None:
    """Add the simulate options."""
    p.add_argument("scenario", type=Path, help="scenario file (.toml), see docs/scenarios.md")
    p.add_argument("-o", "--output", type=Path, required=True, help="log to write (.itblog)")
    p.add_argument("--truth", type=Path, help="ground-truth JSON to write")
    p.add_argument("--seed", type=int, help="random seed (default: the scenario's)")


def run(args: argparse.Namespace) -> int:
    """Run the scenario and write the outputs."""
    from itb_device.cli.options import check_output_file
    from itb_device.sim.output import write_outputs
    from itb_device.sim.scenario import ScenarioError, load_scenario, run_scenario

    check_output_file(args.output, "-o")
    if args.truth is not None:
        check_output_file(args.truth, "--truth")
    try:
        result = run_scenario(load_scenario(args.scenario), seed=args.seed)
        truth = write_outputs(result, args.output, args.truth)
    except ScenarioError as exc:
        raise UserError(exc.naming(args.scenario)) from exc
    kinds = sorted({f["kind"] for f in truth["expected_findings"]})
    print(
        f"{args.output}: {result.scenario.name} (seed {result.seed}), interrogated "
        f"{truth['interrogated_at_utc']}; missed {truth['missed_mcg']:.0f} mcg, excess "
        f"{truth['excess_mcg']:.0f} mcg; expected findings: {', '.join(kinds) or 'none'}"
    )
    return 0
