"""``itb pump-sim``: serve a simulated pump, or a saved log, over a pseudo-terminal or TCP."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from itb_device.cli.errors import UserError

if TYPE_CHECKING:
    from itb_device.wire.server import PumpService


def register(p: argparse.ArgumentParser) -> None:
    """Add the pump-sim options."""
    p.add_argument(
        "--listen",
        required=True,
        metavar="URL",
        help="'pty' (prints the device path) or socket://127.0.0.1:PORT, the URL itb interrogate "
        "takes (PORT 0: any free port; tcp://127.0.0.1:PORT is the same)",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--scenario", type=Path, help="run this scenario up to its last interrogation, then serve"
    )
    src.add_argument("--replay", type=Path, help="serve this saved log read-only")
    p.add_argument("--seed", type=int, help="scenario seed")
    p.add_argument(
        "--speed", type=float, help="simulated seconds per wall-clock second (default: time stands still)"
    )
    p.add_argument("--tick", type=float, default=0.0, help="simulated seconds that pass after each command")
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        metavar="S",
        help="disconnect a TCP client that sends nothing for S seconds (default 120; 0: never); "
        "several clients are served at once, so an idle or slow one never holds up the others",
    )
    p.add_argument(
        "--no-page-map", action="store_true",
        help="serve as a pump from before PAGE_MAP (it answers that request as an unknown opcode), so "
        "programmers read its log whole",
    )
    p.add_argument(
        "--faults",
        default="",
        metavar="SPEC",
        help="inject link faults, e.g. drop=0.001,corrupt=0.001,split=0.2,delay=0.002,seed=3: "
        "drop and corrupt are probabilities PER BYTE (0 to 1; 0.001 already hits most 1 kB blocks), "
        "split the probability per write that it is sent in two pieces, delay the seconds between "
        "them, seed the random seed",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C."""
    from itb_device.wire.faults import FaultSpec, FaultyTransport
    from itb_device.wire.server import IDLE_TIMEOUT_S, open_transport, serve

    try:
        faults = FaultSpec.parse(args.faults) if args.faults else None
    except ValueError as exc:
        raise UserError(f"--faults: {exc}") from exc
    timing = (("--speed", args.speed), ("--tick", args.tick), ("--idle-timeout", args.idle_timeout))
    for option, value in timing:
        if value is not None and not (math.isfinite(value) and 0 <= value <= 1e9):
            raise UserError(f"{option} {value:g}: give a number of seconds from 0 to 1e9")
    idle = IDLE_TIMEOUT_S if args.idle_timeout is None else (args.idle_timeout or None)
    try:
        service = _service(args)
        transport = open_transport(args.listen)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if faults is not None:
        transport = FaultyTransport(transport, faults)
    # stop cleanly on Ctrl-C and on SIGTERM, even if started with SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"pump simulator listening on {transport.name}", flush=True)
    try:
        serve(service, transport, idle_timeout_s=idle)
    except KeyboardInterrupt:
        print("pump simulator stopped", file=sys.stderr)
    finally:
        transport.close()
    return 0


def _service(args: argparse.Namespace) -> PumpService:
    from itb_device.sim.pump import PumpConfig, SimulatedPump
    from itb_device.sim.scenario import ScenarioError, load_scenario, run_scenario
    from itb_device.wire.server import PumpService
    from parsers import read_log

    if args.replay is not None:
        read_log(args.replay)  # refuse what is not a log before serving it
        return PumpService(replay=args.replay.read_bytes(), page_map=not args.no_page_map)
    if args.scenario is not None:
        try:
            result = run_scenario(load_scenario(args.scenario), seed=args.seed, final_session=False)
        except ScenarioError as exc:
            raise ValueError(exc.naming(args.scenario)) from exc
        pump = result.pump
    else:
        pump = SimulatedPump(PumpConfig(), start=836_000_000, seed=args.seed or 0, reservoir_ml=20.0)
    return PumpService(pump, speed=args.speed, tick=args.tick, page_map=not args.no_page_map)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
