"""``itb dose``: the guideline's calculators (test dose, observations after it, starting dose,
titration, refill, oral baclofen for withdrawal), each citing its section.

Warnings are printed with the answer on standard output (and kept in ``--json``).  A value no
answer can be given for (a test dose under 4 years, an implausible weight, a starting dose
above the maximum) is one line naming the option, exit status 2."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from itb_device.cli.errors import UserError

# the calculators' argument names -> this command's options, to name the option in an error
OPTIONS = {
    "age_years": "--age",
    "weight_kg": "--weight-kg",
    "indication": "--indication",
    "effective_test_dose_mcg": "--test-dose",
    "max_daily_dose_mcg": "--max-dose",
    "current_daily_mcg": "--current",
    "model_ml": "--model",
    "daily_dose_mcg": "--daily",
    "concentration_mcg_ml": "--concentration",
    "residual_ml": "--residual",
    "days_since_fill": "--days-since-fill",
    "given": "--given",
}


def _max_dose(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-dose",
        type=float,
        metavar="MCG_DAY",
        help="this child's maximum daily dose, mcg/day (default: the 1000 mcg/day upper limit "
        "reached in significant dystonia, guideline 4.1.5)",
    )


def register(p: argparse.ArgumentParser) -> None:
    """Add the dose sub-commands."""
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--rules", type=Path, help="a hospital's clinical rules file (TOML)")
    sub = p.add_subparsers(dest="calc", metavar="CALCULATOR", required=True)
    t = sub.add_parser("test", help="intrathecal test dose by age, weight and indication (3.1.5)")
    t.add_argument("--age", type=float, required=True,
                   help="age in completed years (a child of 7 and a half is 7); none under 4")
    t.add_argument("--weight-kg", type=float, required=True)
    t.add_argument("--indication", choices=("spasticity", "dystonia"), default="spasticity")
    ob = sub.add_parser("observe", help="observation times after a test dose (3.4.2-3.4.8)")
    ob.add_argument("--given", required=True, metavar="TIME",
                    help="when the test dose was given, e.g. '2026-03-10 09:00' (local) or with an offset")
    ob.add_argument("--tz", help="time zone for typed and shown times (default: the machine's)")
    s = sub.add_parser("start", help="starting continuous dose from the effective test dose (4.1.2)")
    s.add_argument("--test-dose", type=float, required=True, help="effective test dose, mcg")
    _max_dose(s)
    ti = sub.add_parser("titrate", help="next allowed daily dose (4.1.3-4.1.5)")
    ti.add_argument("--current", type=float, required=True, help="current daily dose, mcg/day")
    ti.add_argument("--inpatient", action="store_true", help="in hospital in the 3 days after implant")
    _max_dose(ti)
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
    _max_dose(r)
    o = sub.add_parser("oral", help="oral baclofen for withdrawal by weight (5.1.4)")
    o.add_argument("--weight-kg", type=float, help="the child's weight")


def run(args: argparse.Namespace) -> int:
    """Compute and print."""
    from analysis import calculators as c
    from clinical.rules import InputError, get_rules

    try:
        rules = get_rules(args.rules)
        if args.calc == "test":
            res = c.test_dose(args.age, args.weight_kg, args.indication, rules)
        elif args.calc == "observe":
            from itb_device.cli.options import local_zone, parse_user_time

            zone = local_zone(args.tz)
            res = c.observation_schedule(parse_user_time(args.given, zone, "--given").astimezone(zone), rules)
        elif args.calc == "start":
            res = c.starting_dose(args.test_dose, rules, max_daily_dose_mcg=args.max_dose)
        elif args.calc == "titrate":
            res = c.titration(args.current, args.inpatient, rules, max_daily_dose_mcg=args.max_dose)
        elif args.calc == "refill":
            res = c.refill(args.model, args.daily, args.concentration, args.residual, rules,
                           args.days_since_fill, max_daily_dose_mcg=args.max_dose)
        else:
            res = c.oral_baclofen(args.weight_kg, rules)
    except InputError as exc:
        option = OPTIONS.get(exc.field, exc.field)
        raise UserError(f"{option}: {exc}") from exc
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from exc
    if args.json:
        print(json.dumps(res.to_dict(), indent=1))
        return 0
    print(f"[guideline {res.section}] {res.text}")
    for w in res.warnings:
        print(f"  WARNING: {w}")
    print("This calculator supports, and does not replace, clinical judgement.")
    return 0
