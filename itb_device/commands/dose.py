"""``itb dose``: the guideline's calculators (test dose, starting dose, titration, refill,
oral baclofen for withdrawal), each citing its section."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(p: argparse.ArgumentParser) -> None:
    """Add the dose sub-commands."""
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--rules", type=Path, help="a hospital's clinical rules file (TOML)")
    sub = p.add_subparsers(dest="calc", metavar="CALCULATOR", required=True)
    t = sub.add_parser("test", help="intrathecal test dose by age, weight and indication (3.1.5)")
    t.add_argument("--age", type=float, required=True, help="years")
    t.add_argument("--weight-kg", type=float, required=True)
    t.add_argument("--indication", choices=("spasticity", "dystonia"), default="spasticity")
    s = sub.add_parser("start", help="starting continuous dose from the effective test dose (4.1.2)")
    s.add_argument("--test-dose", type=float, required=True, help="effective test dose, mcg")
    ti = sub.add_parser("titrate", help="next allowed daily dose (4.1.3-4.1.5)")
    ti.add_argument("--current", type=float, required=True, help="current daily dose, mcg/day")
    ti.add_argument("--inpatient", action="store_true", help="in hospital in the 3 days after implant")
    r = sub.add_parser("refill", help="refill interval and volume (4.1.6)")
    r.add_argument("--model", type=int, choices=(20, 40), required=True, help="reservoir, mL")
    r.add_argument("--daily", type=float, required=True, help="daily dose, mcg/day")
    r.add_argument("--concentration", type=float, default=2000.0, help="mcg/mL (default 2000)")
    r.add_argument("--residual", type=float, help="volume in the reservoir now, mL (default: just filled)")
    r.add_argument(
        "--days-since-fill",
        type=float,
        help="days since the reservoir was filled (default: estimated from the volume used)",
    )
    o = sub.add_parser("oral", help="oral baclofen for withdrawal by weight (5.1.4)")
    o.add_argument("--weight-kg", type=float, help="the child's weight")


def run(args: argparse.Namespace) -> int:
    """Compute and print."""
    from analysis import calculators as c
    from analysis.rules import get_rules
    from itb_device.cli import UserError

    try:
        rules = get_rules(args.rules)
        if args.calc == "test":
            res = c.test_dose(args.age, args.weight_kg, args.indication, rules)
        elif args.calc == "start":
            res = c.starting_dose(args.test_dose, rules)
        elif args.calc == "titrate":
            res = c.titration(args.current, args.inpatient, rules)
        elif args.calc == "refill":
            res = c.refill(
                args.model, args.daily, args.concentration, args.residual, rules, args.days_since_fill
            )
        else:
            res = c.oral_baclofen(args.weight_kg, rules)
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from exc
    if args.json:
        print(json.dumps(res.to_dict(), indent=1))
        return 0
    print(f"[guideline {res.section}] {res.text}")
    for w in res.warnings:
        print(f"  warning: {w}", file=sys.stderr)
    print("This calculator supports, and does not replace, clinical judgement.")
    return 0
