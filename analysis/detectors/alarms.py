"""Alarms the pump reports active at interrogation that no other finding explains.

An active critical alarm in the status snapshot is evidence in its own right (the pump's own
view now): a motor-stall, empty-reservoir or end-of-service alarm with a motor that reports
running and a history that shows delivery means the sources disagree, and a clinician must
confirm with the programmer.  A memory error means the log itself may be unreliable.
"""

from __future__ import annotations

from ..context import Context
from ..findings import Finding, FindingDetails

# alarm -> finding kinds that already explain it when present
_EXPLAINED_BY = {
    "motor_stall": ("stall_ongoing", "stall_recovery_unlogged"),
    "empty_reservoir": ("empty_reservoir",),
    "eos": ("battery_eos",),
    "low_battery_reset": ("pump_stopped",),
    "memory_error": (),
}
_WHAT = {
    "motor_stall": "motor-stall",
    "empty_reservoir": "empty-reservoir",
    "eos": "battery end-of-service",
    "low_battery_reset": "low-battery-reset",
    "memory_error": "memory-error",
}


def detect(ctx: Context, found: list[Finding]) -> list[Finding]:
    """alarm_active: one finding per unexplained active alarm (reads the other findings)."""
    st = ctx.status
    if not st.known:
        return []
    kinds = {f.kind for f in found if f.ongoing or f.end_s is None}
    out = []
    for alarm in st.alarms:
        if alarm not in _EXPLAINED_BY or kinds & set(_EXPLAINED_BY[alarm]):
            continue
        spans = [a for a in ctx.ep.alarms if a.alarm == alarm]
        raised = spans[-1].raised_s if spans else None
        ev = spans[-1].offsets[:1] if spans else ()
        since = (f" (raised {ctx.clock.time(raised)})" if raised is not None
                 else " (its raising is not in the log)")
        if alarm == "memory_error":
            text = (f"The pump reports a memory-error alarm active{since}: the log it gave may be "
                    "incomplete or wrong, and a pump after a memory fault most plausibly stops "
                    "infusing until it is reprogrammed (docs/log-format.md 12.7). Confirm with the "
                    "programmer and the manufacturer that it is delivering.")
            direction = "withdrawal"
        else:
            state = "running" if not st.motor_stalled else "stalled"
            text = (f"The pump reports the {_WHAT[alarm]} alarm active at interrogation{since}, "
                    f"while its motor reports {state} and the history does not show the pump "
                    "failing to deliver: the sources disagree. Confirm with the programmer that "
                    "the pump is delivering, and interrogate again.")
            direction = "withdrawal"
        out.append(Finding("alarm_active", "warning", raised, None, text, ongoing=True,
                           evidence=tuple(ev), direction=direction,  # type: ignore[arg-type]
                           details=FindingDetails(alarm=alarm, source="status")))
    return out
