"""Write/read round trips: every value in, every value out, with both decoders agreeing."""

from __future__ import annotations

import dataclasses
import uuid

import logfactory as lf
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers import LogImage, Page, RecordCode, read_log, write_log
from parsers.records import RECORD_TYPES
from parsers.writer import encode_log

ROUNDTRIP_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _write(tmp_path, image: LogImage):
    path = tmp_path / f"{uuid.uuid4().hex}.itblog"
    data = lf.write_image(path, image)
    return path, data


@ROUNDTRIP_SETTINGS
@given(image=lf.log_images())
def test_round_trip_both_decoders(tmp_path, image):
    path, data = _write(tmp_path, image)
    expected = lf.stored_records(image)
    logs = {}
    for decoder in ("fast", "construct"):
        log = read_log(path, decoder=decoder)
        assert log.decoder == decoder
        assert log.header == image.header
        assert log.status == image.status
        assert log.header_ok and log.status_ok
        assert log.records() == expected
        assert encode_log(log.to_image()) == data
        assert len(log.pages) == len(image.pages)
        # the pages table is in sequence order (the ring may have wrapped: slot order differs)
        by_seq = sorted(image.pages, key=lambda p: p.seq)
        assert log.pages["seq"].tolist() == [p.seq for p in by_seq]
        assert log.pages["slot"].tolist() == [p.slot for p in by_seq]
        assert log.pages["count"].tolist() == [len(p.records) for p in by_seq]
        assert log.gaps.empty
        logs[decoder] = log
    lf.assert_same_decoding(logs["fast"], logs["construct"])
    # A valid file carries no damage; random clocks may only add clock findings (clock sets
    # between random values can place records beyond any real date: implausible_time).
    clock_kinds = {"clock_reset", "clock_uncertain", "pump_reset", "implausible_time",
                   "stalled_beyond_interval", "delivery_overlap", "prescription_step_start",
                   "refill_outside_session"}  # random records may break the rules of 12
    assert {p.kind for p in logs["fast"].problems} <= clock_kinds


@settings(ROUNDTRIP_SETTINGS, max_examples=30)
@given(image=lf.log_images(max_records=40))
def test_decoded_tables_carry_every_record(tmp_path, image):
    """Events and delivery hold one row per record, each pointing at its page and byte."""
    path, _ = _write(tmp_path, image)
    log = read_log(path)
    rows = pd.concat(
        [
            log.events[["offset", "page_seq", "pump_clock", "code"]],
            log.delivery[["offset", "page_seq", "pump_clock"]].assign(code=0x10),
        ]
    )
    got = sorted(map(tuple, rows.astype("int64").to_numpy().tolist()))
    want = sorted(
        (lf.record_offset(i, j, image.header.page_size), p.seq, r.clock, r.code)
        for i, p in enumerate(image.pages)
        for j, r in enumerate(p.records)
    )
    assert got == want
    # time order; rows whose time cannot be represented (NaT) come last
    for table in (log.events, log.delivery):
        t = table["time_utc"]
        assert t.dropna().is_monotonic_increasing
        assert not t.isna().any() or t.isna().to_numpy().argmax() == len(t) - t.isna().sum()
    unknown = log.events[~log.events["code"].isin(lf.KNOWN_CODES)]
    assert all(ev == f"unknown_{c:#06x}" for ev, c in zip(unknown["event"], unknown["code"], strict=True))
    assert unknown["payload_hex"].notna().all()
    assert log.events.loc[log.events["code"].isin(lf.KNOWN_CODES), "payload_hex"].isna().all()


def test_decoders_give_identical_delivery_dtypes(tmp_path):
    """Regression: the fast decoder once kept uint8/uint16 for the reserved delivery words
    where the construct decoder gave int64."""
    path, _ = _write(tmp_path, lf.make_image([lf.delivery(1000 + 900 * i) for i in range(3)]))
    pd.testing.assert_frame_equal(
        read_log(path, decoder="fast").delivery, read_log(path, decoder="construct").delivery
    )


def test_round_trip_edge_layouts(tmp_path):
    """No pages; an empty page; a full ring that has wrapped; the largest page size."""
    h = lf.make_header()
    s = lf.make_status(
        flex_steps=tuple(lf.FlexStep(60 * i, 10.0 * i, 0.005 * i, i) for i in range(13)),
        mode="flex",
        active_alarms=("low_reservoir", "eri"),
        alarm_bits_unknown=1 << 20,
    )
    images = [
        LogImage(dataclasses.replace(h, page_count=0), s, ()),
        lf.with_pages(lf.make_image([], header=h, status=s), [Page(0, 0, ())]),
        lf.make_image(
            [lf.delivery(10 + 900 * i) for i in range(7 * 20)], ring_slots=8, first_seq=3, header=h, status=s
        ),
        lf.make_image(
            [lf.delivery(10 + 900 * i) for i in range(100)], page_size=32768, ring_slots=2, header=h, status=s
        ),
    ]
    for image in images:
        path, data = _write(tmp_path, image)
        for decoder in ("fast", "construct"):
            log = read_log(path, decoder=decoder)
            assert log.problems == []
            assert log.header == image.header and log.status == image.status
            assert log.records() == lf.stored_records(image)
            assert encode_log(log.to_image()) == data
    wrapped = images[2]
    assert [p.seq for p in wrapped.pages] == [16, 17, 18, 19, 20, 21, 22, 15]


@settings(max_examples=20, deadline=None)
@given(image=lf.log_images(max_records=30), data=st.data())
def test_to_image_write_log_round_trip(tmp_path_factory, image, data):
    """to_image() written back with write_log reads back to the same log."""
    d = tmp_path_factory.mktemp("rt")
    first = write_log(d / "a.itblog", image)
    log = read_log(first, decoder=data.draw(st.sampled_from(["fast", "construct"])))
    second = write_log(d / "b.itblog", log.to_image())
    assert second.read_bytes() == first.read_bytes()


def test_table_columns_follow_the_format_doc(tmp_path):
    """docs/log-format.md 11.3: the event and page tables' columns, in order."""
    path, _ = _write(tmp_path, lf.make_image(lf.base_history(n_delivery=10)))
    for decoder in ("fast", "construct"):
        log = read_log(path, decoder=decoder)
        meta = ["time_utc", "event", "code", "pump_clock", "time_uncertain", "page_seq", "offset", "aux"]
        fields = []
        for t in RECORD_TYPES:
            if t.code != RecordCode.DELIVERY:
                fields += [f.name for f in t.fields if f.name not in fields]
        assert list(log.events.columns) == [*meta, *fields, "payload_hex"]
        assert list(log.pages.columns) == ["seq", "slot", "offset", "count", "first_utc", "last_utc"]
        assert list(log.gaps.columns) == [
            "first_missing_seq",
            "last_missing_seq",
            "start_utc",
            "end_utc",
            "next_page_offset",
        ]
        assert log.events["time_utc"].dt.tz is not None and log.pages["first_utc"].dt.tz is not None
