"""One source for the names of infusion modes and bolus kinds: the log's enums (issue 16).

The device layer, the simulated pump and the wire protocol derive their names and codes from
``parsers.records.Mode`` and ``BolusKind``; these tests check every derived copy against them,
and the wire's mappings in both directions."""

from __future__ import annotations

from itb_device import prescription, programmer, safety
from itb_device.wire import messages
from parsers.records import BolusKind, Mode, enum_name, enum_value


def test_modes_are_the_log_modes_in_code_order():
    assert tuple(enum_name(Mode, m) for m in sorted(Mode)) == prescription.MODES
    assert prescription.MODES == ("stopped", "simple_continuous", "flex", "minimum_rate")


def test_bolus_kinds_are_the_log_kinds():
    assert tuple(enum_name(BolusKind, k) for k in sorted(BolusKind)) == prescription.PUMP_BOLUS_KINDS
    # a programmer gives every kind but a patient's (that comes from the myPTM)
    assert prescription.BOLUS_KINDS == ("clinician", "priming", "bridge")
    assert set(prescription.PUMP_BOLUS_KINDS) - set(prescription.BOLUS_KINDS) == {"patient"}
    assert safety.BOLUS_KINDS is prescription.BOLUS_KINDS
    assert programmer.BOLUS_KINDS is prescription.BOLUS_KINDS


def test_wire_mode_codes_both_ways():
    assert set(messages.MODE_CODES) == set(prescription.MODES)
    for name, code in messages.MODE_CODES.items():
        assert messages.MODE_NAMES[code] == name
        assert enum_name(Mode, code) == name  # the log reads the wire's code as the same mode
    for code, name in messages.MODE_NAMES.items():
        assert messages.MODE_CODES[name] == code
        assert enum_value(Mode, name) == code


def test_wire_bolus_kind_codes_both_ways():
    assert set(messages.BOLUS_KINDS) == set(prescription.BOLUS_KINDS)
    for name, code in messages.BOLUS_KINDS.items():
        assert messages.BOLUS_KIND_NAMES[code] == name
        assert enum_name(BolusKind, code) == name
    for code, name in messages.BOLUS_KIND_NAMES.items():
        assert messages.BOLUS_KINDS[name] == code
        assert enum_value(BolusKind, name) == code
    assert int(BolusKind.PATIENT) not in messages.BOLUS_KIND_NAMES  # refused on the wire
