"""Scenarios: plain TOML files describing a patient, a pump and a timeline, run on the model.

The timeline holds programmer visits (program, refill, bolus, clock, interrogation) that go
through the same :class:`~itb_device.programmer.PumpProgrammer` checks a clinician meets,
patient bolus requests, and exposures and faults.  The result is the log an interrogation
reads at the end and a ground-truth record of what really happened.  See docs/scenarios.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinical.rules import RulesError
from parsers.model import LogImage, datetime_to_clock

from ..errors import DeviceError
from ..prescription import FlexDose, Prescription
from . import exposures
from .pump import PtmSettings, PumpConfig, SimulatedPump
from .session import SimSession

_REL = re.compile(r"^\+\s*((?:\d+(?:\.\d+)?\s*(?:d|h|min|s)\s*)+)$")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|min|s)")
_UNIT_S = {"d": 86400, "h": 3600, "min": 60, "s": 1}

PROGRAMMER_ACTIONS = {"program", "refill", "bolus", "set_clock", "interrogate"}
EVENT_ACTIONS = {
    "visit",
    "ptm",
    "mri",
    "diathermy",
    "intermittent_stalls",
    "over_infusion",
    "kink",
    "halt",
    "leak",
    "clock_reset",
    *PROGRAMMER_ACTIONS,
}


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the file and the entry."""

    def naming(self, path: object) -> str:
        """The message, starting with the scenario file's name (added when it lacks it)."""
        msg = str(self)
        return msg if msg.startswith(str(path)) else f"{path}: {msg}"


@dataclass
class Scenario:
    """A parsed scenario file."""

    path: Path | None
    name: str
    description: str
    seed: int
    start: int
    data: dict[str, Any]
    timeline: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ScenarioResult:
    """What a scenario run produced."""

    scenario: Scenario
    seed: int
    pump: SimulatedPump
    image: LogImage
    interrogated_at: int
    procedures: list[dict[str, Any]]
    programming: list[dict[str, Any]]


def parse_time(value: Any, start: int, where: str) -> int:
    """An ISO 8601 time with offset, or ``+N d/h/min/s`` after the scenario start."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ScenarioError(f"{where}: time {value} needs a UTC offset (e.g. Z)")
        return datetime_to_clock(value)
    if isinstance(value, str):
        m = _REL.match(value.strip())
        if m:
            return start + int(sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(m.group(1))))
        try:
            return parse_time(dt.datetime.fromisoformat(value.replace("Z", "+00:00")), start, where)
        except ValueError:
            pass
    raise ScenarioError(f"{where}: cannot read time {value!r} (ISO 8601 with offset, or +3d, +2h30min)")


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"{path}: byte {exc.start}: not a scenario file (a scenario is UTF-8 TOML text, "
            "see docs/scenarios.md)"
        ) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc
    return scenario_from_dict(data, path)


def scenario_from_dict(data: dict[str, Any], path: Path | None = None) -> Scenario:
    """Check a scenario given as a dict (as TOML would parse it)."""
    where = str(path or "<scenario>")
    for key in ("name", "start"):
        if key not in data:
            raise ScenarioError(f"{where}: missing {key!r}")
    start = parse_time(data["start"], 0, f"{where}: start")
    timeline = []
    items = data.get("timeline", [])
    if not isinstance(items, list):
        raise ScenarioError(f"{where}: 'timeline' must be a list of [[timeline]] tables")
    for i, item in enumerate(items):
        w = f"{where}: timeline[{i}]"
        if not isinstance(item, dict):
            raise ScenarioError(f"{w}: must be a table with 'at' and 'action'")
        action = item.get("action")
        if action not in EVENT_ACTIONS:
            raise ScenarioError(f"{w}: unknown action {action!r} (one of {', '.join(sorted(EVENT_ACTIONS))})")
        if "at" not in item:
            raise ScenarioError(f"{w}: missing 'at'")
        timeline.append({**item, "_t": parse_time(item["at"], start, w), "_where": w})
    timeline.sort(key=lambda it: it["_t"])
    return Scenario(
        path,
        data["name"],
        data.get("description", ""),
        int(data.get("seed", 0)),
        start,
        data,
        timeline,
    )


def _text(value: object, where: str, size: int) -> str:
    """A scenario's text field, refused (``ScenarioError``) when the log cannot hold it."""
    from parsers.header import check_text

    try:
        check_text(where, str(value), size)
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None
    return str(value)


def _pump_config(sc: Scenario) -> PumpConfig:
    p = sc.data.get("pump", {})
    ptm = p.get("ptm", {})
    eri = p.get("battery_eri")
    return PumpConfig(
        model_ml=int(p.get("model", 20)),
        serial=_text(p.get("serial", "NGP000001"), "pump.serial", 16),
        firmware=_text(p.get("firmware", "SIM-1.0"), "pump.firmware", 12),
        implant_date=dt.date.fromisoformat(str(p.get("implant_date", "2024-01-01"))),
        drug_name=_text(sc.data.get("drug", {}).get("name", "baclofen"), "drug.name", 16),
        history_interval_s=int(p.get("history_interval_s", 3600)),
        page_size=int(p.get("page_size", 1024)),
        ring_slots=int(p.get("ring_slots", 512)),
        accuracy_factor=p.get("accuracy_factor"),
        clock_offset_s=float(p.get("clock_offset_s", 0)),
        clock_drift_ppm=p.get("clock_drift_ppm"),
        low_reservoir_alarm_ml=p.get("low_reservoir_alarm_ml"),
        battery_eri_utc=parse_time(eri, sc.start, "pump.battery_eri") if eri is not None else None,
        ptm=PtmSettings(
            bool(ptm.get("enabled", False)),
            float(ptm.get("dose_mcg", 0)),
            int(ptm.get("lockout_min", 0)),
            int(ptm.get("max_per_day", 0)),
        ),
    )


def _prescription(item: dict[str, Any], conc_default: float) -> Prescription:
    steps = tuple(
        FlexDose(int(s["start_min"]), float(s["daily_dose_mcg"])) for s in item.get("flex_steps", [])
    )
    return Prescription(
        mode=item.get("mode", "flex" if steps else "simple_continuous"),
        daily_dose_mcg=float(item.get("daily_dose_mcg", 0.0)),
        concentration_mcg_ml=float(item.get("concentration_mcg_ml", conc_default)),
        flex_steps=steps,
    )


def run_scenario(sc: Scenario, seed: int | None = None, final_session: bool = True) -> ScenarioResult:
    """Run ``sc`` to its last interrogation.

    With ``final_session=False`` the run stops just before the last interrogation (so a
    live programmer session can take over there, as ``sim://?scenario=`` does).
    """
    try:
        return _run_scenario(sc, seed, final_session)
    except (ScenarioError, RulesError):
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # a missing key or a value of the wrong kind in the file: one line naming the entry
        where = getattr(exc, "_itb_where", None) or str(sc.path or sc.name)
        what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ScenarioError(f"{where}: cannot run the scenario: {what}") from exc


@contextlib.contextmanager
def _entry(item: dict[str, Any]) -> Iterator[None]:
    """Tag an error raised while running a timeline entry with the entry's place in the file."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if not isinstance(exc, ScenarioError) and not hasattr(exc, "_itb_where"):
            exc._itb_where = item["_where"]  # type: ignore[union-attr]  # a tag run_scenario reads back
        raise


def _run_scenario(sc: Scenario, seed: int | None, final_session: bool) -> ScenarioResult:
    seed = sc.seed if seed is None else seed
    drug = sc.data.get("drug", {})
    conc = float(drug.get("concentration_mcg_ml", 2000.0))
    cfg = _pump_config(sc)
    pump = SimulatedPump(
        cfg,
        sc.start,
        seed=seed,
        reservoir_ml=float(drug.get("reservoir_ml", cfg.model_ml)),
        concentration_mcg_ml=conc,
    )
    interrogations = [it for it in sc.timeline if it["action"] == "interrogate"]
    if not interrogations:
        raise ScenarioError(f"{sc.path or sc.name}: the timeline needs at least one 'interrogate'")
    final = next((it for it in interrogations if it.get("final")), interrogations[-1])
    procedures: list[dict[str, Any]] = []
    programming: list[dict[str, Any]] = []
    image: LogImage | None = None
    for item in sc.timeline:
        if item["_t"] > final["_t"]:
            break
        with _entry(item):
            _schedule_exposure(pump, item, procedures)
    for item in sc.timeline:
        t = item["_t"]
        if t > final["_t"]:
            break
        if item["action"] not in PROGRAMMER_ACTIONS | {"visit", "ptm"}:
            continue
        with _entry(item):
            pump.advance_to(t)
            if item is final and not final_session:
                break
            if item["action"] == "ptm":
                pump.ptm_request()
                continue
            steps = item.get("steps", []) if item["action"] == "visit" else [item]
            prog = SimSession(pump, rules=pump.rules)
            try:
                if item.get(
                    "set_clock",
                    item["action"] == "interrogate"
                    and abs(pump.pump_clock() - pump.now) > sc.data.get("clock_set_threshold_s", 60),
                ):
                    prog.set_clock(dt.datetime(2000, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=pump.now))
                for step in steps:
                    _programmer_step(prog, pump, step, conc, item["_where"], programming)
                if item is final:
                    image = pump.log_image()
            finally:
                prog.close()
    if image is None:
        image = pump.log_image()
    return ScenarioResult(sc, seed, pump, image, final["_t"], procedures, programming)


SCENARIO_OPERATOR = 1  # the staff number of a scenario's simulated clinician, unless it gives one


def _override_note(step: dict[str, Any]) -> dict[str, Any]:
    """A program step's override note: ``reason`` is an override reason's name
    (itb_device.safety.OVERRIDE_REASONS) or, in a scenario, free text (kept as the note, reason
    ``other``); ``operator`` the staff number (default :data:`SCENARIO_OPERATOR`)."""
    from ..safety import OVERRIDE_REASONS

    text = str(step.get("reason", "")).strip()
    code = text.lower().replace(" ", "_").replace("-", "_")
    if code in OVERRIDE_REASONS:
        return {"reason": code, "operator": step.get("operator", SCENARIO_OPERATOR), "note": ""}
    return {"reason": "other", "operator": step.get("operator", SCENARIO_OPERATOR), "note": text}


def _programmer_step(
    prog: SimSession,
    pump: SimulatedPump,
    step: dict[str, Any],
    conc: float,
    where: str,
    programming: list[dict[str, Any]],
) -> None:
    action = step.get("action")
    try:
        if action == "program":
            rx = _prescription(step, pump.drug_conc)
            override = bool(step.get("override", False))
            in_hospital = bool(step.get("in_hospital", False))
            max_dose = step.get("max_daily_dose_mcg")
            max_daily = None if max_dose is None else float(max_dose)
            problems = prog.check_prescription(rx, in_hospital=in_hospital, max_daily_dose_mcg=max_daily)
            prog.program(
                rx,
                override=override,
                in_hospital=in_hospital,
                max_daily_dose_mcg=max_daily,
                **_override_note(step),
                intended_daily_dose_mcg=step.get("intended_daily_dose_mcg"),
            )
            programming.append(
                {
                    "t": pump.now,
                    "problems": problems,
                    "override": override,
                    "concentration_mismatch": abs(rx.concentration_mcg_ml - pump.drug_conc) > 1e-6
                    and rx.mode != "stopped",
                    "daily_dose_mcg": 0.0 if rx.mode == "stopped" else float(rx.daily_dose_mcg),
                }
            )
        elif action == "refill":
            prog.refill(
                float(step["volume_ml"]),
                float(step.get("concentration_mcg_ml", conc)),
                pocket_fill=bool(step.get("pocket_fill", False)),
            )
        elif action == "bolus":
            prog.bolus(
                float(step["dose_mcg"]),
                kind=step.get("kind", "clinician"),
                duration_min=float(step.get("duration_min", 1.0)),
            )
        elif action == "set_clock":
            prog.set_clock()
        elif action == "interrogate":
            prog.interrogate()
        else:
            raise ScenarioError(f"{where}: a visit step cannot be {action!r}")
    except DeviceError as exc:
        raise ScenarioError(f"{where}: {action} refused: {exc}") from exc


def _schedule_exposure(pump: SimulatedPump, item: dict[str, Any], procedures: list) -> None:
    a, t, w = item["action"], item["_t"], item["_where"]
    try:
        if a == "mri":
            dur = int(float(item.get("duration_min", 45)) * 60)
            delay = item.get("recovery_delay_min")
            exposures.mri(
                pump,
                t,
                dur,
                item.get("recovery", "minutes"),
                None if delay is None else int(float(delay) * 60),
                bool(item.get("late_log", False)),
                bool(item.get("logged", True)),
            )
            procedures.append({"kind": "mri", "start": t, "end": t + dur})
        elif a == "diathermy":
            dur = int(float(item.get("duration_min", 60)) * 60)
            exposures.diathermy(pump, t, dur, float(item.get("factor", 1.6)))
            procedures.append({"kind": "diathermy", "start": t, "end": t + dur})
        elif a == "intermittent_stalls":
            wins = [
                (t + int(float(s.get("after_h", 0)) * 3600), int(float(s["duration_min"]) * 60))
                for s in item.get("stalls", [])
            ]
            fail = item.get("failure_after_h")
            exposures.intermittent_stalls(pump, wins, None if fail is None else t + int(float(fail) * 3600))
        elif a == "over_infusion":
            exposures.over_infusion(pump, t, float(item.get("factor", 1.25)))
        elif a == "kink":
            exposures.catheter_kink(
                pump,
                t,
                t + int(float(item["duration_h"]) * 3600),
                int(float(item.get("surge_min", 30)) * 60),
            )
        elif a == "leak":
            exposures.catheter_leak(pump, t, float(item.get("fraction", 1.0)))
        elif a == "clock_reset":
            exposures.clock_reset(pump, t, item.get("reason", "watchdog"))
        elif a == "halt":
            halt_min = item.get("duration_min")
            exposures.halt(pump, t, None if halt_min is None else int(float(halt_min) * 60))
    except (KeyError, ValueError, TypeError) as exc:
        raise ScenarioError(f"{w}: {a}: {exc}") from exc
