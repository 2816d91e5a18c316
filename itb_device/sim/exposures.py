"""Exposures and faults, each scheduled on a :class:`SimulatedPump` at a time with parameters.

Each function only schedules state changes; the pump's physics does the rest, so a fault's
effect on the log is whatever the modelled device would record.
"""

from __future__ import annotations

from .pump import SimulatedPump

MRI_RECOVERY = ("minutes", "hours", "never", "telemetry")


def mri(
    pump: SimulatedPump,
    start: int,
    duration_s: int,
    recovery: str = "minutes",
    delay_s: int | None = None,
    late_log: bool = False,
    logged: bool = True,
) -> None:
    """The MRI field stops the rotor from ``start`` for ``duration_s``.

    recovery: ``minutes`` (resumes 1-20 min after the scan), ``hours`` (2-24 h after),
    ``never`` (the motor does not recover), ``telemetry`` (the pump was left alarming in
    telemetry mode: infusion resumes only when it is next interrogated).  ``delay_s``
    fixes the delay.  ``late_log``: the recovery record is only written at the next
    interrogation, although the rotor turns again.  ``logged`` False: a firmware fault leaves
    the stall unrecorded (no stall records, no stalled seconds, the motor reported running):
    only the rotor count in the delivery rows shows it (recovery ``never`` or after the delay).
    """
    if recovery not in MRI_RECOVERY:
        raise ValueError(f"MRI recovery must be one of {MRI_RECOVERY}, not {recovery!r}")
    end = start + duration_s
    if delay_s is None:
        lo, hi = {"minutes": (60, 1200), "hours": (2 * 3600, 24 * 3600)}.get(recovery, (0, 0))
        delay_s = pump.rng.randint(lo, hi) if hi else 0
    pump.truth.add_event("mri", start, end, recovery=recovery, delay_s=delay_s, late_log=late_log)
    if not logged:
        _silent_stall(pump, start, None if recovery == "never" else end + delay_s, "mri")
        return

    def begin() -> None:
        pump.late_recovery_log = late_log
        pump.add_stall("mri")

    pump.at(start, begin)
    if recovery == "telemetry":
        pump.at(end, lambda: pump.wait_for_telemetry.add("mri"))
    elif recovery != "never":
        pump.at(end + delay_s, lambda: pump.remove_stall("mri"))


def diathermy(pump: SimulatedPump, start: int, duration_s: int, factor: float = 1.6) -> None:
    """Monopolar diathermy near the pump heats it and drives the rotor faster than commanded
    (``factor`` times) for the duration of the exposure."""
    pump.truth.add_event("diathermy", start, start + duration_s, factor=factor)

    def on() -> None:
        pump.rotor_factor = factor

    def off() -> None:
        pump.rotor_factor = 1.0

    pump.at(start, on)
    pump.at(start + duration_s, off)


def intermittent_stalls(
    pump: SimulatedPump, windows: list[tuple[int, int]], failure_at: int | None = None
) -> None:
    """Short stalls (start, duration) as a worn motor gives, then a permanent failure."""
    for start, dur in windows:
        pump.at(start, lambda: pump.add_stall("intermittent"))
        pump.at(start + dur, lambda: pump.remove_stall("intermittent"))
    pump.truth.add_event(
        "intermittent_stalls",
        windows[0][0] if windows else failure_at,
        failure_at,
        count=len(windows),
    )
    if failure_at is not None:
        pump.at(failure_at, lambda: pump.add_stall("motor_failure"))


def over_infusion(pump: SimulatedPump, start: int, factor: float = 1.25) -> None:
    """From ``start`` the pump delivers ``factor`` times what its rotor count says."""
    pump.truth.add_event("over_infusion", start, None, factor=factor)

    def on() -> None:
        pump.over_factor = factor

    pump.at(start, on)


def catheter_kink(pump: SimulatedPump, start: int, end: int, surge_s: int = 1800) -> None:
    """The catheter is occluded from ``start``: drug is pumped but held back; when it frees
    at ``end`` the held drug reaches the intrathecal space over ``surge_s`` seconds."""
    ev = pump.truth.add_event("catheter_kink", start, end, surge_s=surge_s)

    def kink() -> None:
        pump.kinked = True

    def free() -> None:
        pump.kinked = False
        pump.surge_rate = pump.kink_store_mcg / max(surge_s, 1)
        ev["surge_mcg"] = pump.kink_store_mcg

    def surge_over() -> None:  # splits the step so the surge lands in its own window
        pump.surge_rate = 0.0 if pump.kink_store_mcg < 1e-9 else pump.surge_rate

    pump.at(start, kink)
    pump.at(end, free)
    pump.at(end + surge_s, surge_over)


def catheter_leak(pump: SimulatedPump, start: int, fraction: float = 1.0) -> None:
    """From ``start`` a share of the drug leaks out of the catheter (1.0: disconnection)."""
    pump.truth.add_event("catheter_leak", start, None, fraction=fraction)

    def on() -> None:
        pump.leak_fraction = fraction

    pump.at(start, on)


def clock_reset(pump: SimulatedPump, at: int, reason: str = "watchdog") -> None:
    """The pump resets and its clock restarts from zero."""
    pump.at(at, lambda: pump.reset(reason))


def _silent_stall(pump: SimulatedPump, start: int, end: int | None, cause: str) -> None:
    """The rotor stands still from ``start`` to ``end`` (None: to the end) and nothing is
    logged: a firmware fault the analysis must find from the rotor count alone."""
    event: dict = {}

    def on() -> None:
        pump.silent_stalls.add(cause)
        event.update(pump.truth.add_event("motor_stall", pump.now, None, cause=cause, logged=False))

    def off() -> None:
        pump.silent_stalls.discard(cause)
        for ev in pump.truth.events:
            if ev.get("cause") == cause and ev["kind"] == "motor_stall" and ev["end"] is None:
                ev["end"] = pump.now

    pump.at(start, on)
    if end is not None:
        pump.at(end, off)


def halt(pump: SimulatedPump, start: int, duration_s: int | None = None) -> None:
    """A firmware fault: from ``start`` the pump commands nothing (for ``duration_s``, or to the
    end) and logs nothing: no stop record, the row mode and the status keep the program."""

    def on() -> None:
        pump.halted = True

    def off() -> None:
        pump.halted = False

    pump.truth.add_event("pump_halt", start, None if duration_s is None else start + duration_s)
    pump.at(start, on)
    if duration_s is not None:
        pump.at(start + duration_s, off)
