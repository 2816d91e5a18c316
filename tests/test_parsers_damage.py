"""A corpus of damaged logs: each gives a clear message naming the file and the byte offset,
intact pages around the damage are still decoded, both decoders agree, and strict mode
raises ``LogFormatError`` (and does not for a clean file)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import logfactory as lf
import pandas as pd
import pytest

from parsers import LogFormatError, LogImage, Page, RecordCode, read_log
from parsers.crc import crc32c
from parsers.model import clock_to_datetime

PS = 256  # page size of the corpus logs
OFFSET_S = -30  # UTC minus pump clock everywhere in base_history + make_header


def in_session(recs: list) -> list:
    """``recs`` with a refill outside a session moved into one: its alarm records become the
    session's start and end (a pump refills only in a session, docs/log-format.md 12.8; the
    reader warns otherwise).  A refill already in a session is left alone."""
    out = list(recs)
    for i, r in enumerate(out):
        if r.code == RecordCode.REFILL:
            session = (RecordCode.TELEMETRY_START, RecordCode.TELEMETRY_END)
            marks = [x.code for x in out[:i] if x.code in session]
            if marks and marks[-1] == RecordCode.TELEMETRY_START:
                continue
            t0, t1 = out[i - 1].clock, out[i + 1].clock
            out[i - 1] = lf.telemetry_start(t0, t0 + OFFSET_S, session_id=8)
            out[i + 1] = lf.rec(RecordCode.TELEMETRY_END, t1, session_id=8)
    return out


@pytest.fixture
def image() -> LogImage:
    """7 pages of 256 bytes (6 full, the last with 6 records), one clock offset throughout."""
    recs = in_session(lf.base_history(n_delivery=40))[:48]  # ends with delivery rows: trim to 48
    img = lf.make_image(recs, page_size=PS, ring_slots=16)
    assert [len(p.records) for p in img.pages] == [7, 7, 7, 7, 7, 7, 6]
    return img


@pytest.fixture
def clean(tmp_path, image) -> tuple[Path, bytes]:
    path = tmp_path / "clean.itblog"
    return path, lf.write_image(path, image)


def _only(log, kind: str):
    found = [p for p in log.problems if p.kind == kind]
    assert len(found) == 1, [str(p) for p in log.problems]
    return found[0]


def assert_names_place(text: str, path: Path, offset: int) -> None:
    assert str(path) in text, text
    assert f"byte {offset}:" in text, text
    assert "\n" not in text


def assert_strict_raises_first_problem(path: Path, log) -> None:
    """strict=True raises on the first problem the lenient read lists, with the same text."""
    assert log.problems, "nothing to be strict about"
    for decoder in ("fast", "construct"):
        with pytest.raises(LogFormatError) as info:
            read_log(path, strict=True, decoder=decoder)
        assert str(info.value) == str(log.problems[0])
        assert info.value.offset == log.problems[0].offset
        assert info.value.path == str(path)


def read_both(path: Path):
    """Read with both decoders, check they agree, return the fast result."""
    fast = read_log(path, decoder="fast")
    lf.assert_same_decoding(fast, read_log(path, decoder="construct"))
    return fast


# --- files that are not readable logs at all --------------------------------------------------

FATAL: dict[str, tuple[Callable[[bytes], bytes], int, str]] = {
    # name: (make the bytes from a clean file, byte offset named, message fragment)
    "empty": (lambda d: b"", 0, "file is empty"),
    "wrong_magic": (lambda d: b"\x89ITX" + d[4:], 0, "not an ITB interrogation log"),
    "zip_file": (lambda d: b"PK\x03\x04" + bytes(200), 0, "expected the magic"),
    "text_file": (lambda d: b"hello, this is not a pump log\n", 0, "starts with 68 65 6c"),
    "shorter_than_magic": (lambda d: d[:5], 0, "not an ITB interrogation log"),
    "major_version_2": (
        lambda d: lf.patch_header(d, 8, b"\x02\x07"),
        8,
        "format version 2.7 is not supported",
    ),
    "major_version_0_bad_crc": (lambda d: d[:8] + b"\x00" + d[9:], 8, "format version 0.1"),
    "truncated_after_magic": (lambda d: d[:8], 8, "truncated inside the header: the file has 8"),
    "truncated_in_header": (lambda d: d[:100], 100, "truncated inside the header"),
    "truncated_at_header_end": (lambda d: d[:128], 128, "truncated inside the status snapshot"),
    "truncated_in_status": (lambda d: d[:300], 300, "truncated inside the status snapshot"),
    "header_size_wrong": (
        lambda d: lf.patch_header(d, 10, (64).to_bytes(2, "little")),
        10,
        "header_size is 64, expected 128",
    ),
    "status_size_wrong": (
        lambda d: lf.patch_header(d, 12, (128).to_bytes(2, "little")),
        12,
        "status_size is 128",
    ),
    "record_size_wrong": (
        lambda d: lf.patch_header(d, 16, (16).to_bytes(2, "little")),
        16,
        "record_size is 16",
    ),
    "page_size_not_allowed": (
        lambda d: lf.patch_header(d, 14, (300).to_bytes(2, "little")),
        14,
        "page size 300 is not one of",
    ),
}


@pytest.mark.parametrize("case", list(FATAL))
def test_unreadable_file_raises_clear_error(tmp_path, clean, case):
    make, offset, fragment = FATAL[case]
    path = lf.write_bytes(tmp_path / f"{case}.itblog", make(clean[1]))
    for strict in (False, True):
        for decoder in ("fast", "construct"):
            with pytest.raises(LogFormatError) as info:
                read_log(path, strict=strict, decoder=decoder)
            assert_names_place(str(info.value), path, offset)
            assert fragment in str(info.value)
            assert info.value.offset == offset


def test_missing_file_and_directory_raise_log_format_error(tmp_path):
    for path in (tmp_path / "nope.itblog", tmp_path):
        with pytest.raises(LogFormatError) as info:
            read_log(path)
        assert str(path) in str(info.value) and "cannot open" in str(info.value)


# --- damage the reader recovers from ---------------------------------------------------------


def test_clean_file_has_no_problems_and_strict_accepts_it(clean, image):
    path, _ = clean
    log = read_both(path)
    assert log.problems == [] and not log.damaged
    strict = read_log(path, strict=True)
    assert strict.problems == []
    assert strict.records() == log.records() == lf.stored_records(image)
    pd.testing.assert_frame_equal(strict.events, log.events)
    assert not log.events["time_uncertain"].any() and not log.delivery["time_uncertain"].any()
    # one clock offset throughout: every UTC time is the pump clock - 30 s
    for table in (log.events, log.delivery):
        want = [clock_to_datetime(c + OFFSET_S) for c in table["pump_clock"].astype("int64")]
        assert list(table["time_utc"]) == want


@pytest.mark.parametrize("cut", [lf.page_offset(3, PS) + 100, lf.page_offset(3, PS)])
def test_truncated_mid_file_keeps_full_pages(tmp_path, clean, image, cut):
    data = clean[1][:cut]
    path = lf.write_bytes(tmp_path / "trunc.itblog", data)
    log = read_both(path)
    p = _only(log, "truncated")
    assert p.offset == lf.page_offset(3, PS)
    assert_names_place(str(p), path, p.offset)
    assert f"file ends at byte {cut}" in p.message
    assert "4 pages missing" in p.message
    assert ("partial page" in p.message) == (cut % PS != lf.PAGES_START % PS)
    assert log.pages["seq"].tolist() == [0, 1, 2]
    assert log.records() == lf.stored_records(image)[:21]
    # the status says the ring holds seq 0..6: the newest four are a gap at the end, found
    # past the end of the file
    gap = _only(log, "page_gap")
    assert (gap.page_seq, gap.last_seq, gap.offset) == (3, 6, lf.page_offset(3, PS))
    assert "the newest the status says the ring holds" in gap.message
    assert f"seq 3 at byte {lf.page_offset(3, PS)} (a page past the end of the file)" in gap.message
    assert log.gaps[["first_missing_seq", "last_missing_seq", "next_page_offset"]].values.tolist() == [
        [3, 6, lf.page_offset(3, PS)]
    ]
    assert pd.notna(log.gaps["start_utc"].iloc[0]) and pd.isna(log.gaps["end_utc"].iloc[0])
    assert p.length == lf.page_offset(7, PS) - p.offset  # to the promised end
    assert log.damaged
    assert_strict_raises_first_problem(path, log)


def test_bad_crc_in_a_middle_page(tmp_path, clean, image):
    bad_at = lf.page_offset(3, PS)
    path = lf.write_bytes(tmp_path / "crc.itblog", lf.flip_bit(clean[1], bad_at + 100, 2))
    log = read_both(path)
    crc = _only(log, "bad_page_crc")
    assert crc.offset == bad_at and crc.severity == "error"
    assert_names_place(str(crc), path, bad_at)
    assert "seq 3" in crc.message
    # pages before and after are decoded
    assert log.pages["seq"].tolist() == [0, 1, 2, 4, 5, 6]
    stored = lf.stored_records(image)
    assert log.records() == stored[:21] + stored[28:]
    # the gap, with the time span it leaves without history
    gap = _only(log, "page_gap")
    assert gap.offset == lf.page_offset(4, PS) and gap.page_seq == 3
    assert_names_place(str(gap), path, gap.offset)
    start = clock_to_datetime(image.pages[2].records[-1].clock + OFFSET_S)
    end = clock_to_datetime(image.pages[4].records[0].clock + OFFSET_S)
    assert f"history from {start:%Y-%m-%d %H:%M:%S} to {end:%Y-%m-%d %H:%M:%S} UTC" in gap.message
    assert log.gaps.to_dict("records") == [
        dict(
            first_missing_seq=3,
            last_missing_seq=3,
            start_utc=pd.Timestamp(start),
            end_utc=pd.Timestamp(end),
            next_page_offset=lf.page_offset(4, PS),
        )
    ]
    assert log.damaged
    assert_strict_raises_first_problem(path, log)


def test_several_bad_pages_make_one_gap_per_run(tmp_path, clean):
    data = clean[1]
    for i in (1, 2, 4):
        data = lf.flip_bit(data, lf.page_offset(i, PS) + 30)
    log = read_both(lf.write_bytes(tmp_path / "crc3.itblog", data))
    assert [p.offset for p in log.problems if p.kind == "bad_page_crc"] == [
        lf.page_offset(i, PS) for i in (1, 2, 4)
    ]
    assert log.gaps[["first_missing_seq", "last_missing_seq"]].values.tolist() == [[1, 2], [4, 4]]
    assert log.pages["seq"].tolist() == [0, 3, 5, 6]


def test_bad_page_marker(tmp_path, clean):
    at = lf.page_offset(1, PS)
    path = lf.write_bytes(tmp_path / "marker.itblog", lf.flip_bit(clean[1], at, 0))
    log = read_both(path)
    p = _only(log, "bad_page_marker")
    assert p.offset == at and "0x4751" in p.message
    assert_names_place(str(p), path, at)
    assert 1 not in log.pages["seq"].tolist()
    assert_strict_raises_first_problem(path, log)


def test_unknown_record_type_is_kept_with_its_bytes(tmp_path, image):
    payload = bytes(range(100, 124))
    recs = lf.stored_records(image)
    recs.insert(10, lf.unknown(recs[9].clock + 1, code=0x4A1, payload=payload, aux=0xBEEF))
    img = lf.make_image(recs, page_size=PS, ring_slots=16)
    path = tmp_path / "unknown.itblog"
    lf.write_image(path, img)
    log = read_both(path)
    row = log.events[log.events["code"] == 0x4A1]
    assert len(row) == 1
    r = row.iloc[0]
    assert r["event"] == "unknown_0x04a1"
    assert r["payload_hex"] == payload.hex()
    assert tuple(int(r[k]) for k in ("aux", "pump_clock", "offset", "page_seq")) == (
        0xBEEF,
        recs[9].clock + 1,
        lf.record_offset(1, 3, PS),
        1,
    )
    # the walker does not lose its alignment after it: every later record decodes as written
    assert log.records() == recs
    # unknown types are legal (docs/log-format.md 11.4): not a problem, strict mode accepts them
    assert log.problems == []
    assert read_log(path, strict=True).records() == recs


def test_page_in_the_wrong_slot(tmp_path, image):
    pages = list(image.pages)
    pages[3] = dataclasses.replace(pages[3], slot=9)
    path = tmp_path / "slot.itblog"
    lf.write_image(path, lf.with_pages(image, pages))
    log = read_both(path)
    p = _only(log, "page_out_of_place")
    assert p.offset == lf.page_offset(3, PS) and p.page_seq == 3 and p.severity == "warning"
    assert "sits in slot 9, expected slot 3" in p.message
    assert_names_place(str(p), path, p.offset)
    assert log.records() == lf.stored_records(image)  # kept, in sequence order
    assert_strict_raises_first_problem(path, log)


def test_slot_outside_the_ring(tmp_path, image):
    pages = list(image.pages)
    pages[3] = dataclasses.replace(pages[3], slot=16)
    path = tmp_path / "ring.itblog"
    lf.write_image(path, lf.with_pages(image, pages))
    log = read_both(path)
    p = _only(log, "bad_slot")
    assert p.offset == lf.page_offset(3, PS) and "ring has 16 slots" in p.message
    assert _only(log, "page_gap").page_seq == 3
    assert_strict_raises_first_problem(path, log)


def test_pages_stored_out_of_order_are_put_in_sequence(tmp_path, image):
    shuffled = [image.pages[i] for i in (5, 2, 6, 0, 3, 1, 4)]
    img = lf.with_pages(image, shuffled)
    path = tmp_path / "shuffled.itblog"
    lf.write_image(path, img)
    log = read_both(path)
    assert log.problems == []
    assert log.pages["seq"].tolist() == list(range(7))
    assert log.pages["offset"].tolist() == [lf.page_offset(shuffled.index(p), PS) for p in image.pages]
    assert log.records() == lf.stored_records(img)  # storage (file) order
    assert log.delivery["time_utc"].is_monotonic_increasing
    assert log.delivery["pump_clock"].is_monotonic_increasing


def test_identical_duplicate_page(tmp_path, image):
    img = lf.with_pages(image, [*image.pages, image.pages[2]])
    path = tmp_path / "dup.itblog"
    lf.write_image(path, img)
    log = read_both(path)
    p = _only(log, "duplicate_page")
    copy_at = lf.page_offset(7, PS)
    assert p.offset == copy_at and p.page_seq == 2 and p.severity == "warning"
    assert f"bytes {lf.page_offset(2, PS)} and {copy_at}" in p.message
    assert "identical copy" in p.message
    assert_names_place(str(p), path, copy_at)
    assert log.records() == lf.stored_records(image)  # not doubled
    assert log.pages["seq"].tolist() == list(range(7))
    assert_strict_raises_first_problem(path, log)


def test_different_page_with_the_same_sequence_number(tmp_path, image):
    impostor = Page(2, 2, tuple(lf.delivery(1_000 + i) for i in range(3)))
    img = lf.with_pages(image, [*image.pages, impostor])
    path = tmp_path / "dup2.itblog"
    lf.write_image(path, img)
    log = read_both(path)
    p = _only(log, "duplicate_page")
    assert p.severity == "error" and "a different page with the same number" in p.message
    assert p.offset == lf.page_offset(7, PS)
    assert log.records() == lf.stored_records(image)  # the first copy is kept
    assert_strict_raises_first_problem(path, log)


def test_trailing_bytes(tmp_path, clean, image):
    data = clean[1] + b"\x00" * 10
    path = lf.write_bytes(tmp_path / "trailing.itblog", data)
    log = read_both(path)
    p = _only(log, "trailing_bytes")
    assert p.offset == len(clean[1]) and p.severity == "warning"
    assert "10 bytes after the last page" in p.message
    assert_names_place(str(p), path, len(clean[1]))
    assert log.records() == lf.stored_records(image)
    assert not log.damaged  # a warning only
    assert_strict_raises_first_problem(path, log)


def test_bad_header_crc(tmp_path, clean, image):
    path = lf.write_bytes(tmp_path / "hcrc.itblog", lf.flip_bit(clean[1], 100))  # reserved byte
    log = read_both(path)
    p = _only(log, "bad_header_crc")
    assert p.offset == 124 and not log.header_ok and log.status_ok
    assert_names_place(str(p), path, 124)
    assert log.header == image.header
    assert log.records() == lf.stored_records(image)
    assert_strict_raises_first_problem(path, log)


def test_bad_status_crc(tmp_path, clean, image):
    path = lf.write_bytes(tmp_path / "scrc.itblog", lf.flip_bit(clean[1], 128 + 4, 3))
    log = read_both(path)
    p = _only(log, "bad_status_crc")
    assert p.offset == 380 and log.header_ok and not log.status_ok
    assert_names_place(str(p), path, 380)
    assert log.status.low_reservoir_alarm_ml != image.status.low_reservoir_alarm_ml
    assert log.records() == lf.stored_records(image)
    assert_strict_raises_first_problem(path, log)


@pytest.mark.parametrize(("where", "field"), [(28, "serial"), (44, "firmware"), (128 + 8, "drug_name")])
def test_damaged_text_decodes_with_replacement_characters(tmp_path, clean, image, where, field):
    """A text byte damaged into non-ASCII is no construct error: the text shows U+FFFD and the
    block's CRC reports the damage."""
    path = lf.write_bytes(tmp_path / "text.itblog", lf.flip_bit(clean[1], where, 7))
    log = read_both(path)
    in_header = where < 128
    value = getattr(log.header if in_header else log.status, field)
    assert "\ufffd" in value
    assert [p.kind for p in log.problems] == ["bad_header_crc" if in_header else "bad_status_crc"]
    assert (log.header_ok, log.status_ok) == (not in_header, in_header)
    assert log.records() == lf.stored_records(image)


def test_unknown_pump_model_is_a_warning(tmp_path, image):
    img = dataclasses.replace(image, header=dataclasses.replace(image.header, model_ml=30))
    path = tmp_path / "model.itblog"
    lf.write_image(path, img)
    log = read_both(path)
    p = _only(log, "unknown_model")
    assert p.offset == 18 and p.severity == "warning" and "30 mL" in p.message
    assert_strict_raises_first_problem(path, log)


def _with_record_count(data: bytes, page: int, count: int) -> bytes:
    b = bytearray(data)
    at = lf.page_offset(page, PS)
    b[at + 2 : at + 4] = count.to_bytes(2, "little")
    b[at + PS - 4 : at + PS] = crc32c(bytes(b[at : at + PS - 4])).to_bytes(4, "little")
    return bytes(b)


def test_page_claiming_too_many_records(tmp_path, clean):
    path = lf.write_bytes(tmp_path / "count.itblog", _with_record_count(clean[1], 2, 9))
    log = read_log(path)
    p = _only(log, "bad_record_count")
    assert p.offset == lf.page_offset(2, PS) and "claims 9 records; at most 7 fit" in p.message
    assert_names_place(str(p), path, p.offset)
    assert 2 not in log.pages["seq"].tolist()
    with pytest.raises(LogFormatError, match="claims 9 records"):
        read_log(path, strict=True)


def test_decoders_agree_on_page_claiming_too_many_records(tmp_path, clean):
    path = lf.write_bytes(tmp_path / "count.itblog", _with_record_count(clean[1], 2, 9))
    assert read_log(path, decoder="construct").problems == read_log(path).problems


def test_erased_slot_is_skipped_silently(tmp_path, clean, image):
    _, pages = lf.split_pages(clean[1], PS)
    data = lf.set_page_count(clean[1][: lf.PAGES_START], 8) + b"".join(pages) + b"\xff" * PS
    log = read_both(lf.write_bytes(tmp_path / "erased.itblog", data))
    assert log.problems == []
    assert log.records() == lf.stored_records(image)


def test_erased_slot_in_the_middle_is_a_gap(tmp_path, clean, image):
    head, pages = lf.split_pages(clean[1], PS)
    pages[3] = b"\xff" * PS
    path = lf.write_bytes(tmp_path / "erased_mid.itblog", head + b"".join(pages))
    log = read_both(path)
    assert [p.kind for p in log.problems] == ["page_gap"]  # the erased slot itself is no problem
    assert log.problems[0].page_seq == 3 and log.problems[0].offset == lf.page_offset(4, PS)
    stored = lf.stored_records(image)
    assert log.records() == stored[:21] + stored[28:]


def test_no_intact_page_at_all(tmp_path, clean):
    data = clean[1]
    for i in range(7):
        data = lf.flip_bit(data, lf.page_offset(i, PS) + 20)
    log = read_both(lf.write_bytes(tmp_path / "allbad.itblog", data))
    assert log.events.empty and log.delivery.empty and log.pages.empty
    assert [p.kind for p in log.problems] == ["bad_page_crc"] * 7 + ["page_gap"]
    # the status says the ring holds seq 0..6: all of them are missing, each found damaged
    gap = log.problems[-1]
    assert (gap.page_seq, gap.last_seq, gap.offset) == (0, 6, lf.page_offset(0, PS))
    assert log.gaps[["first_missing_seq", "last_missing_seq"]].values.tolist() == [[0, 6]]
    assert log.gaps["start_utc"].isna().all() and log.gaps["end_utc"].isna().all()
    assert log.records() == []
