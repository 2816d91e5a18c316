"""Nothing lost without a word (issue 14, items 1-5): every record a damaged log loses is
covered by a problem that names the damage, intact pages around it are recovered.

The fuzz below mutates valid logs (bit flips, erased markers and pages, pages overwritten by
copies, inserted, dropped or shuffled, truncation, trailing bytes, header and status fields
changed with and without their CRC) and checks, for every variant:

* no exception but :class:`LogFormatError`, and that only when the file is no readable log
  at all (too short for header and status, wrong magic, another major version);
* **no silent loss**: every record of the undamaged log that the damaged read lacks lies in
  the range of an error-level problem: its page ``seq`` in ``page_seq``..``last_seq``, or
  its bytes (where its page now sits in the file) in ``offset``..``offset + length``.  In a
  1.0 file (no ring position in the status) pages missing at either end of the sequence
  that left no damage in the file cannot be seen and are exempt, and warnings count;
* **no invention**: every record read is one of the undamaged log's, with its page;
* **intact pages are recovered**: every page byte-identical to one of the undamaged log's
  that the reader must examine (inside the header's page count, or, when the header fails
  its CRC, up to the last intact page at the real page size) is decoded whole;
* every problem with an offset names it, and the two decoders agree (on a share of cases).

``ITB_FUZZ_CASES=N`` runs N variants instead of the few hundred of a normal run.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections import Counter
from dataclasses import dataclass

import logfactory as lf
import pandas as pd
import pytest

from parsers import LogFormatError, RecordCode, Status, read_log, read_log_bytes, write_log
from parsers import format as fmt
from parsers.crc import crc32c
from parsers.records import DELIVERY_CODE

PS = lf.PAGES_START
FUZZ_CASES = int(os.environ.get("ITB_FUZZ_CASES", "300"))
OFFSET = -30  # programmer UTC minus pump clock in the base histories
T0 = 760_000_000
H = 3600


# ---------------------------------------------------------------------------------------------
# Histories as a pump writes them (docs/log-format.md section 12)


def pump_history(
    n_rows: int, *, interval: int = 900, reset_at: int | None = None, stall_at_end: bool = True
) -> list:
    """A session that programs the pump, rows tiling the time, a patient bolus, a refill in
    its own session, optionally a pump reset (its clock set again in a later session), a
    stall that runs to the end, and the interrogating session's start."""
    t, off, sid = T0, OFFSET, 1
    out = [
        lf.telemetry_start(t, t + off, session_id=sid),
        lf.prescription(t),
        lf.telemetry_end(t + 60, session_id=sid),
    ]
    stalled = False
    set_after_reset = None
    for k in range(n_rows):
        t += interval
        stall_now = stall_at_end and k >= n_rows - 4
        out.append(
            lf.delivery(
                t,
                interval_s=interval,
                rotor_nl=0 if stalled else None,
                stalled_s=interval if stalled else 0,
                reservoir_nl=15_000_000 - 781 * k,
            )
        )
        if k == n_rows // 3:
            out += [
                lf.rec(
                    RecordCode.PTM_REQUEST, t + 5, granted=1, reason="granted", count_today=1, dose_mcg=25.0
                ),
                *lf.bolus(t + 5, kind="patient", dose_mcg=25.0, volume_ml=0.0125, duration_s=600),
            ]
        if k == n_rows // 2:
            sid += 1
            out += [
                lf.telemetry_start(t + 100, t + 100 + off, session_id=sid),
                lf.refill(t + 150, reservoir_ml=18.0),
                lf.telemetry_end(t + 200, session_id=sid),
            ]
        if reset_at is not None and k == reset_at:
            out.append(lf.pump_reset(0, t + 300))
            off += t + 300  # UTC minus pump clock on the restarted clock
            t = -300
            set_after_reset = k + 25
        if set_after_reset is not None and k == set_after_reset:
            sid += 1
            out.append(lf.telemetry_start(t + 100, t + 100 + off, session_id=sid))
            new = t + 100 + off
            out.append(lf.clock_set(t + 100, new))
            t, off = new - 100, 0
            out.append(lf.telemetry_end(new + 60, session_id=sid))
            set_after_reset = None
        if stall_now and not stalled:
            out += [
                lf.rec(RecordCode.MOTOR_STALL, t + 30),
                lf.rec(RecordCode.ALARM_RAISED, t + 30, alarm="motor_stall"),
            ]
            stalled = True
    sid += 1
    out.append(lf.telemetry_start(t + 500, t + 500 + off, session_id=sid))
    return out


def header_for(recs: list, version_minor: int = 1) -> object:
    """A header whose clocks are the interrogating session's (the last record)."""
    last = recs[-1]
    return lf.make_header(
        pump_clock=last.clock, programmer_clock=last.values["programmer_clock"], version_minor=version_minor
    )


@dataclass(frozen=True)
class Base:
    """An undamaged log: its bytes, page size, whether its status has the ring position, and
    each stored page (file order) with its seq and records ``(clock, code)``."""

    name: str
    data: bytes
    ps: int
    ring: bool
    chunks: tuple[bytes, ...]
    seqs: tuple[int, ...]
    recs: tuple[tuple[tuple[int, int], ...], ...]

    @property
    def by_chunk(self) -> dict[bytes, int]:
        return {c: i for i, c in enumerate(self.chunks)}

    def keys(self, i: int) -> set[tuple[int, int, int, int]]:
        """The records of stored page ``i`` as ``(seq, index in page, clock, code)``."""
        return {(self.seqs[i], j, c, code) for j, (c, code) in enumerate(self.recs[i])}


def make_base(
    name: str, recs: list, *, page_size: int, ring_slots: int, first_seq: int = 0, version_minor: int = 1
) -> Base:
    image = lf.make_image(
        recs,
        page_size=page_size,
        ring_slots=ring_slots,
        first_seq=first_seq,
        header=header_for(recs, version_minor),
    )
    data = write_image_bytes(image)
    _, chunks = lf.split_pages(data, page_size)
    return Base(
        name,
        data,
        page_size,
        version_minor >= 1,
        tuple(chunks),
        tuple(p.seq for p in image.pages),
        tuple(tuple((r.clock, r.code) for r in p.records) for p in image.pages),
    )


def write_image_bytes(image) -> bytes:
    from parsers.writer import encode_log

    return encode_log(image)


@pytest.fixture(scope="module")
def bases() -> list[Base]:
    return [
        make_base("stall256", pump_history(70), page_size=256, ring_slots=8, first_seq=3),
        make_base("partial512", pump_history(60, interval=1800), page_size=512, ring_slots=16, first_seq=40),
        make_base("reset1024", pump_history(150, reset_at=60), page_size=1024, ring_slots=5, first_seq=1),
        make_base("v10_256", pump_history(70), page_size=256, ring_slots=8, first_seq=3, version_minor=0),
    ]


# ---------------------------------------------------------------------------------------------
# Mutations: each keeps, for every page position of the result, the stored page it came from


@dataclass
class Variant:
    op: str
    data: bytes
    origin: list[int | None]  # page position -> index of the base page whose bytes it holds


def _flip(b: bytearray, rng: random.Random, lo: int, hi: int) -> None:
    for _ in range(rng.randint(1, 3)):
        b[rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)


def _newest(base: Base) -> int:
    return max(range(len(base.seqs)), key=lambda i: base.seqs[i])


PAGE_OPS = (
    "flip",
    "flip",
    "erase_marker",
    "erase_marker",
    "erase_page",
    "overwrite_copy",
    "insert_copy",
    "insert_unrecorded",
    "drop",
    "drop_unrecorded",
    "truncate",
    "shuffle",
    "trailing",
)
HEADER_OPS = (
    "count_rewritten",
    "count_damaged",
    "size_rewritten",
    "size_damaged",
    "header_flip",
    "status_flip",
)
OPS = (*PAGE_OPS, *HEADER_OPS, "combo", "combo")


def mutate(rng: random.Random, base: Base, op: str | None = None) -> Variant:
    """One damaged copy of ``base``."""
    op = op or rng.choice(OPS)
    head = bytearray(base.data[:PS])
    pages = [bytearray(c) for c in base.chunks]
    origin: list[int | None] = list(range(len(pages)))
    tail = b""
    count_fix = False  # rewrite the header's page count for the new number of pages
    ops = [rng.choice(PAGE_OPS), rng.choice(PAGE_OPS)] if op == "combo" else [op]
    cut = None
    for o in ops:
        n = len(pages)
        newest_pos = origin.index(_newest(base)) if _newest(base) in origin else rng.randrange(n)
        pick = newest_pos if rng.random() < 0.5 else rng.randrange(n)
        if o == "flip":
            i = rng.randrange(n)
            _flip(pages[i], rng, 0, base.ps)
        elif o == "erase_marker":
            pages[pick][0:2] = b"\xff\xff"
        elif o == "erase_page":
            pages[pick][:] = b"\xff" * base.ps
            origin[pick] = None  # nothing of the page is left there
        elif o == "overwrite_copy":
            i = rng.randrange(n)
            pages[pick] = bytearray(pages[i])
            origin[pick] = origin[i]
        elif o in ("insert_copy", "insert_unrecorded"):
            i = rng.randrange(n)
            at = newest_pos if rng.random() < 0.5 else rng.randrange(n + 1)
            pages.insert(at, bytearray(pages[i]))
            origin.insert(at, origin[i])
            count_fix |= o == "insert_copy"
        elif o in ("drop", "drop_unrecorded"):
            del pages[pick]
            del origin[pick]
            count_fix |= o == "drop"
        elif o == "truncate":
            cut = rng.randrange(PS, PS + n * base.ps)
        elif o == "shuffle":
            z = list(zip(pages, origin, strict=True))
            rng.shuffle(z)
            pages, origin = [p for p, _ in z], [q for _, q in z]
        elif o == "trailing":
            tail = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2 * base.ps)))
    if count_fix:
        head[24:28] = len(pages).to_bytes(4, "little")
        head[124:128] = crc32c(bytes(head[:124])).to_bytes(4, "little")
    if op in ("count_rewritten", "count_damaged"):
        count = int.from_bytes(head[24:28], "little")
        new = max(0, count + rng.choice([-3, -2, -1, 1, 2, 3, 50]))
        head[24:28] = new.to_bytes(4, "little")
    elif op in ("size_rewritten", "size_damaged"):
        head[14:16] = rng.choice([s for s in fmt.ALLOWED_PAGE_SIZES if s != base.ps]).to_bytes(2, "little")
    elif op == "header_flip":
        _flip(head, rng, 8, fmt.HEADER_SIZE)  # the magic is a file's identity, not damage to recover
    elif op == "status_flip":
        _flip(head, rng, fmt.HEADER_SIZE, PS)
        if rng.random() < 0.5:
            _flip(pages[rng.randrange(len(pages))], rng, 0, base.ps)
    if op in ("count_rewritten", "size_rewritten"):
        head[124:128] = crc32c(bytes(head[:124])).to_bytes(4, "little")
    data = bytes(head) + b"".join(bytes(p) for p in pages) + tail
    if cut is not None:
        data = data[:cut]
    return Variant(op, data, origin)


# ---------------------------------------------------------------------------------------------
# The rules


def read_keys(log) -> set[tuple[int, int, int, int]]:
    """Every record read, as ``(seq, index in its page, clock, code)``."""
    at = dict(zip(log.pages["seq"].tolist(), log.pages["offset"].tolist(), strict=True))
    out = set()
    for table, code in ((log.events, None), (log.delivery, DELIVERY_CODE)):
        for seq, off, clock, c in zip(
            table["page_seq"].tolist(),
            table["offset"].tolist(),
            table["pump_clock"].tolist(),
            table["code"].tolist() if code is None else [code] * len(table),
            strict=True,
        ):
            out.add((int(seq), (int(off) - at[int(seq)] - 16) // 32, int(clock), int(c)))
    return out


def _header_crc_ok(data: bytes) -> bool:
    return len(data) >= fmt.HEADER_SIZE and crc32c(data[:124]) == int.from_bytes(data[124:128], "little")


def must_recover(base: Base, data: bytes) -> set[tuple[int, int, int, int]]:
    """Records of the intact pages the reader must examine (docs/log-format.md 5.3, 5.5)."""
    complete = max(len(data) - PS, 0) // base.ps
    claimed = int.from_bytes(data[24:28], "little")
    intact = [i for i in range(complete) if data[PS + i * base.ps : PS + (i + 1) * base.ps] in base.by_chunk]
    if _header_crc_ok(data):
        if int.from_bytes(data[14:16], "little") != base.ps:
            return set()
        n = min(claimed, complete)
    else:
        n = max(min(claimed, complete), intact[-1] + 1 if intact else 0)
    out = set()
    for i in intact:
        if i < n:
            out |= base.keys(base.by_chunk[data[PS + i * base.ps : PS + (i + 1) * base.ps]])
    return out


def covered(base: Base, v: Variant, log, key: tuple[int, int, int, int]) -> bool:
    """Whether a lost record lies in the range of a problem (error-level for a 1.1 file)."""
    seq, j, _, _ = key
    k = base.seqs.index(seq)
    offsets = [PS + pos * base.ps + 16 + 32 * j for pos, o in enumerate(v.origin) if o == k]
    for p in log.problems:
        if base.ring and p.severity != "error":
            continue
        if p.page_seq is not None and p.page_seq <= seq <= (
            p.last_seq if p.last_seq is not None else p.page_seq
        ):
            return True
        if (
            p.offset is not None
            and p.length is not None
            and any(p.offset <= o < p.offset + p.length for o in offsets)
        ):
            return True
    examined = PS + min(log.header.page_count, max(len(v.data) - PS, 0) // base.ps) * base.ps
    if not base.ring and not any(o < examined for o in offsets):
        kept = log.pages["seq"]
        if not kept.size or seq < kept.min() or seq > kept.max():
            return True  # a 1.0 file cannot tell that pages it no longer holds are missing at the ends
    return False


def check_variant(base: Base, v: Variant, *, construct: bool = False) -> str | None:
    """The rules of the module docstring for one variant; a description of what broke."""
    data = v.data
    try:
        log = read_log_bytes(data, f"{base.name}-{v.op}")
    except LogFormatError as exc:
        if len(data) < PS or data[:8] != fmt.MAGIC or data[8] != 1:
            return None
        return f"LogFormatError on a readable log: {exc}"
    except Exception as exc:  # anything else is a bug
        return f"unexpected {type(exc).__name__}: {exc}"
    if construct:
        try:
            lf.assert_same_decoding(log, read_log_bytes(data, f"{base.name}-{v.op}", decoder="construct"))
        except AssertionError as exc:
            return f"decoders disagree: {str(exc)[:300]}"
    got = read_keys(log)
    every = set().union(*(base.keys(i) for i in range(len(base.chunks))))
    if got - every:
        return f"records that are not the base's: {sorted(got - every)[:3]}"
    missing = must_recover(base, data) - got
    if missing:
        return f"intact pages not recovered: {sorted(missing)[:3]}; problems {[str(p) for p in log.problems]}"
    silent = [key for key in sorted(every - got) if not covered(base, v, log, key)]
    if silent:
        return (
            f"{len(silent)} records lost without a problem covering them, e.g. {silent[:3]}; "
            f"problems {[(p.kind, p.offset, p.length, p.page_seq, p.last_seq) for p in log.problems]}"
        )
    for p in log.problems:
        if p.offset is not None and f"byte {p.offset}" not in str(p):
            return f"a problem does not name its offset: {p}"
    return None


def run(bases: list[Base], n: int, seed: int) -> tuple[list[str], Counter, Counter]:
    rng = random.Random(seed)
    bad: list[str] = []
    ops: Counter = Counter()
    figures: Counter = Counter()
    for k in range(n):
        base = bases[k % len(bases)]
        v = mutate(rng, base)
        ops[v.op] += 1
        t = time.perf_counter()
        why = check_variant(base, v, construct=k % 16 == 0)
        figures["max_ms"] = max(figures["max_ms"], int(1000 * (time.perf_counter() - t)))
        if why:
            bad.append(f"case {k} base {base.name} op {v.op}: {why}")
    return bad, ops, figures


# ---------------------------------------------------------------------------------------------
# Tests


def test_bases_read_clean(bases):
    for base in bases:
        log = read_log_bytes(base.data)
        assert [p.kind for p in log.problems if p.kind != "pump_reset"] == [], [str(p) for p in log.problems]
        assert read_keys(log) == set().union(*(base.keys(i) for i in range(len(base.chunks))))
        assert (log.status.ring_last_seq is not None) == base.ring
        assert check_variant(base, Variant("none", base.data, list(range(len(base.chunks))))) is None


def test_oracle_sees_silent_loss(bases):
    """The rule is not vacuous: the same variant judged as if the reader had said nothing, or
    against a base whose pages it does not hold, is a violation."""
    base = bases[0]
    v = mutate(random.Random(1), base, "erase_page")
    log = read_log_bytes(v.data)
    lost = set().union(*(base.keys(i) for i in range(len(base.chunks)))) - read_keys(log)
    assert lost and all(covered(base, v, log, key) for key in lost)
    mute = dataclasses.replace(log, problems=[])
    assert not any(covered(base, v, mute, key) for key in lost)
    assert check_variant(bases[1], Variant("other", base.data, [])) is not None


def test_fuzz_no_silent_loss(bases):
    """A few hundred variants here; ``ITB_FUZZ_CASES`` for a release check."""
    t = time.perf_counter()
    bad, ops, figures = run(bases, FUZZ_CASES, seed=14)
    elapsed = time.perf_counter() - t
    print(
        f"\nno-silent-loss fuzz: {FUZZ_CASES} variants in {elapsed:.1f} s, slowest {figures['max_ms']} ms, "
        f"{len(bad)} violations; ops {dict(sorted(ops.items()))}"
    )
    assert set(ops) == set(OPS), ops
    assert figures["max_ms"] < 10_000  # no hang
    assert not bad, f"{len(bad)} violations, first ones:\n" + "\n\n".join(bad[:5])


# --- the cases of the issue, one by one --------------------------------------------------------


def _read_both(data: bytes, name: str = "log"):
    fast = read_log_bytes(data, name)
    lf.assert_same_decoding(fast, read_log_bytes(data, name, decoder="construct"))
    return fast


def _kinds(log) -> list[str]:
    return [p.kind for p in log.problems]


def _one(log, kind: str):
    found = [p for p in log.problems if p.kind == kind]
    assert len(found) == 1, [str(p) for p in log.problems]
    return found[0]


def test_erased_marker_on_the_newest_page_is_reported_with_what_is_lost(bases):
    """Item 1: ``FF FF`` over the newest page's marker lost the last stall without a word."""
    base = bases[0]
    i = _newest(base)
    at = PS + i * base.ps
    data = bytearray(base.data)
    data[at : at + 2] = b"\xff\xff"
    log = _read_both(bytes(data))
    assert log.damaged
    marker = _one(log, "bad_page_marker")
    assert marker.offset == at and marker.length == base.ps and "marked erased" in marker.message
    gap = _one(log, "page_gap")
    seq = base.seqs[i]
    assert (gap.page_seq, gap.last_seq, gap.offset) == (seq, seq, at)
    assert "the newest the status says the ring holds" in gap.message
    assert f"seq {seq} at byte {at} (a damaged page marked erased)" in gap.message
    g = log.gaps.iloc[-1]
    assert (g.first_missing_seq, g.last_missing_seq, g.next_page_offset) == (seq, seq, at)
    assert pd.notna(g.start_utc) and pd.isna(g.end_utc)  # lost up to the interrogation


def test_erased_newest_slot_is_a_gap_at_the_end(bases):
    base = bases[0]
    i = _newest(base)
    at = PS + i * base.ps
    data = base.data[:at] + b"\xff" * base.ps + base.data[at + base.ps :]
    log = _read_both(data)
    assert _kinds(log) == ["page_gap"]  # an erased slot is no damage in itself
    assert log.problems[0].offset == at and "(an erased slot)" in log.problems[0].message


def test_a_1_0_file_reads_the_ring_as_before(bases):
    """A 1.0 file has no ring position: a missing newest page cannot be seen, but a page whose
    marker was erased over its records is still damage."""
    base = bases[3]
    i = _newest(base)
    at = PS + i * base.ps
    erased = base.data[:at] + b"\xff" * base.ps + base.data[at + base.ps :]
    assert _read_both(erased).problems == []
    data = bytearray(base.data)
    data[at : at + 2] = b"\xff\xff"
    assert _kinds(_read_both(bytes(data))) == ["bad_page_marker"]


def test_page_overwritten_by_a_copy_names_the_page_lost(bases):
    """Item 2: a copy standing where another page belonged is an error naming that page."""
    base = bases[0]
    head, pages = lf.split_pages(base.data, base.ps)
    j = 4
    pages[j] = pages[1]
    log = _read_both(head + b"".join(pages))
    dup = _one(log, "duplicate_page")
    lost = base.seqs[j]
    assert dup.severity == "error" and dup.offset == PS + j * base.ps
    assert (dup.page_seq, dup.last_seq) == (lost, lost)
    assert f"stands where page seq {lost} belonged" in dup.message
    gap = _one(log, "page_gap")
    assert (gap.page_seq, gap.last_seq) == (lost, lost)
    assert f"seq {lost} at byte {PS + j * base.ps} (a copy of page seq {base.seqs[1]})" in gap.message


def test_copy_inserted_before_the_newest_page_names_the_page_pushed_out(bases):
    """Item 2: the copy pushes the newest page past the header's page count."""
    base = bases[1]  # a ring that has not wrapped: the newest page is the last stored
    head, pages = lf.split_pages(base.data, base.ps)
    i = _newest(base)
    assert i == len(pages) - 1
    pages.insert(i, pages[0])
    log = _read_both(head + b"".join(pages))
    assert {"duplicate_page", "trailing_bytes", "page_gap"} <= set(_kinds(log))
    gap = _one(log, "page_gap")
    seq = base.seqs[i]
    pushed = PS + (i + 1) * base.ps
    assert (gap.page_seq, gap.last_seq, gap.offset) == (seq, seq, pushed)
    assert "an intact page after the header's page count (not read)" in gap.message


@pytest.mark.parametrize("count", [28, 29, 31, 100])
def test_damaged_page_count_does_not_lose_pages(tmp_path, count):
    """Item 3: a header whose CRC fails no longer decides how many pages there are."""
    base = make_base("thirty", pump_history(200), page_size=256, ring_slots=30)
    assert len(base.chunks) == 30
    data = bytearray(base.data)
    data[24:28] = count.to_bytes(4, "little")  # CRC not recomputed: damage
    log = _read_both(bytes(data))
    assert len(log.pages) == 30 and _kinds(log) == ["bad_header_crc", "layout_from_pages"]
    assert log.header.page_count == 30
    assert read_keys(log) == set().union(*(base.keys(i) for i in range(30)))


@pytest.mark.parametrize("size", [s for s in fmt.ALLOWED_PAGE_SIZES if s != 512] + [300, 0])
def test_damaged_page_size_does_not_lose_pages(size):
    """Item 3: a damaged page size (legal or not) is found from the pages."""
    base = make_base("thirty", pump_history(300), page_size=512, ring_slots=30)
    data = bytearray(base.data)
    data[14:16] = size.to_bytes(2, "little")
    log = _read_both(bytes(data))
    assert len(log.pages) == len(base.chunks)
    layout = _one(log, "layout_from_pages")
    assert layout.offset == 14 and f"page size {size}" in layout.message
    assert log.header.page_size == 512
    assert read_keys(log) == set().union(*(base.keys(i) for i in range(len(base.chunks))))


def test_rewritten_header_is_taken_at_its_word(bases):
    """A header that passes its CRC keeps its layout: pages past its count are not read, but
    the ring position says they are missing."""
    base = bases[0]
    data = lf.set_page_count(base.data, len(base.chunks) - 2)
    log = _read_both(data)
    assert "layout_from_pages" not in _kinds(log) and "trailing_bytes" in _kinds(log)
    lost = {base.seqs[-1], base.seqs[-2]}
    gaps = [(p.page_seq, p.last_seq) for p in log.problems if p.kind == "page_gap"]
    assert {s for a, b in gaps for s in range(a, b + 1)} == lost


def _reset_log(cut_before_set: bool) -> bytes:
    """A log with a pump reset, then a session that sets the clock again; with
    ``cut_before_set``, cut inside the page that holds the first session after the reset
    (its clock sync point and the clock set are lost; the reset's page is kept)."""
    recs = pump_history(80, reset_at=20)
    image = lf.make_image(recs, page_size=256, ring_slots=64, header=header_for(recs))
    data = write_image_bytes(image)
    if cut_before_set:
        stored = lf.stored_records(image)
        reset = next(i for i, r in enumerate(stored) if r.code == RecordCode.PUMP_RESET)
        k = next(i for i, r in enumerate(stored) if r.code == RecordCode.TELEMETRY_START and i > reset)
        rpp = fmt.records_per_page(256)
        assert k // rpp > reset // rpp
        data = data[: PS + (k // rpp) * 256 + 100]
    return data


def test_file_cut_before_the_clock_set_after_a_reset(tmp_path):
    """Item 4: records after a reset, with the clock set that followed it cut off, are dated
    through the reset (not in 2000) and marked uncertain, with a clock problem at the reset."""
    data = _reset_log(cut_before_set=True)
    log = _read_both(data)
    reset = log.events[log.events["event"] == "pump_reset"].iloc[0]
    after = log.delivery[log.delivery["offset"] > reset["offset"]]
    assert len(after) > 10
    assert after["time_uncertain"].all() and reset["time_uncertain"]
    assert (after["time_utc"].dt.year >= 2024).all()  # not 2000-01-01 plus a few days
    before = log.delivery[log.delivery["offset"] < reset["offset"]]
    assert not before["time_uncertain"].any()
    # dated through the reset: the rows go on one interval after another across it
    t_before = before["time_utc"].iloc[-1]
    assert pd.Timedelta(0) < after["time_utc"].iloc[0] - t_before <= pd.Timedelta(seconds=900 + 300)
    warn = [p for p in log.problems if p.kind == "clock_uncertain"]
    assert len(warn) == 1 and warn[0].offset == int(reset["offset"]) and "pump reset" in warn[0].message
    assert "truncated" in _kinds(log)


def test_reset_then_clock_set_in_the_file_is_certain(tmp_path):
    data = _reset_log(cut_before_set=False)
    log = _read_both(data)
    assert _kinds(log) == ["pump_reset"]
    assert not log.delivery["time_uncertain"].any()


def test_reset_never_set_again_is_dated_by_the_header(tmp_path):
    """A pump that reset and was never set again, read whole: the header is the sync point
    after the reset, and the times are certain."""
    recs = pump_history(60)
    k = 40
    t_reset = recs[k].clock - 10
    shifted = [dataclasses.replace(r, clock=r.clock - t_reset) for r in recs[k:]]
    last = shifted[-1]
    shifted[-1] = lf.telemetry_start(last.clock, recs[-1].values["programmer_clock"], session_id=9)
    recs = [*recs[:k], lf.pump_reset(0, t_reset), *shifted]
    image = lf.make_image(recs, page_size=512, ring_slots=16, header=header_for(recs))
    log = _read_both(write_image_bytes(image))
    assert _kinds(log) == ["pump_reset"] and not log.delivery["time_uncertain"].any()
    # cut inside the tail: the header still fits the reset's dating (no set was lost)
    data = write_image_bytes(image)
    log = _read_both(data[: len(data) - 700])
    assert "clock_uncertain" not in _kinds(log)
    assert not log.delivery["time_uncertain"].any()


def test_every_problem_names_the_damage(bases):
    """Item 5: the damage itself is named, not only the page after the gap."""
    base = bases[1]
    head, pages = lf.split_pages(base.data, base.ps)
    pages[2] = b"\xff\xff" + pages[2][2:]  # middle page: marker erased over its records
    log = _read_both(head + b"".join(pages))
    at = PS + 2 * base.ps
    assert [(p.kind, p.offset) for p in log.problems] == [
        ("bad_page_marker", at),
        ("page_gap", PS + 3 * base.ps),
    ]
    assert f"seq {base.seqs[2]} at byte {at}" in log.problems[1].message


# --- the ring position in the status --------------------------------------------------------


def test_writer_records_the_ring_position(tmp_path, bases):
    base = bases[0]
    log = read_log_bytes(base.data)
    i = _newest(base)
    s = log.status
    assert (s.ring_last_seq, s.ring_pages, s.ring_last_count) == (
        base.seqs[i],
        len(base.seqs),
        len(base.recs[i]),
    )
    assert s.ring_first_seq == min(base.seqs)
    raw = base.data[fmt.HEADER_SIZE + 216 : fmt.HEADER_SIZE + 252]
    assert raw[:4] == base.seqs[i].to_bytes(4, "little")
    assert raw[4:8] == len(base.seqs).to_bytes(4, "little")
    assert raw[8:10] == len(base.recs[i]).to_bytes(2, "little")
    assert raw[10] == 1 and raw[11:] == bytes(25)
    assert base.data[9] == 1  # version 1.1
    # a round trip keeps it, and a 1.0 file stays 1.0 (zeros there)
    path = write_log(tmp_path / "rt.itblog", read_log_bytes(base.data).to_image())
    assert path.read_bytes() == base.data
    v10 = bases[3].data
    assert v10[9] == 0 and v10[fmt.HEADER_SIZE + 216 : fmt.HEADER_SIZE + 252] == bytes(36)
    assert read_log_bytes(v10).status.ring_last_seq is None
    assert write_log(tmp_path / "v10.itblog", read_log_bytes(v10).to_image()).read_bytes() == v10


def test_status_can_give_its_own_ring_position(tmp_path):
    """A writer that knows the pump wrote more than it stores says so: the reader reports
    the newest pages missing."""
    recs = pump_history(40)
    image = lf.make_image(recs, page_size=256, ring_slots=16, header=header_for(recs))
    newest = max(p.seq for p in image.pages)
    status = dataclasses.replace(
        image.status, ring_last_seq=newest + 2, ring_pages=newest + 3, ring_last_count=3
    )
    assert status == image.status  # the ring position is not the pump's clinical state
    log = _read_both(write_image_bytes(dataclasses.replace(image, status=status)))
    gap = _one(log, "page_gap")
    assert (gap.page_seq, gap.last_seq) == (newest + 1, newest + 2)
    assert "(not found in the file)" in gap.message


def test_short_newest_page_and_bad_ring_position(tmp_path):
    recs = pump_history(40)
    image = lf.make_image(recs, page_size=256, ring_slots=16, header=header_for(recs))
    last = max(image.pages, key=lambda p: p.seq)
    short = dataclasses.replace(
        image.status,
        ring_last_seq=last.seq,
        ring_pages=len(image.pages),
        ring_last_count=len(last.records) + 2,
    )
    log = _read_both(write_image_bytes(dataclasses.replace(image, status=short)))
    p = _one(log, "ring_position")
    assert p.severity == "error" and "2 newest records are lost" in p.message and p.page_seq == last.seq
    wild = dataclasses.replace(image.status, ring_last_seq=3, ring_pages=99, ring_last_count=1)
    log = _read_both(write_image_bytes(dataclasses.replace(image, status=wild)))
    p = _one(log, "ring_position")
    assert p.severity == "warning" and p.offset == fmt.HEADER_SIZE + 216 and "not used" in p.message
    assert "page_gap" not in _kinds(log)


def test_status_ring_fields_default_to_none():
    s = lf.make_status()
    assert (
        isinstance(s, Status) and s.ring_last_seq is None and not s.ring_recorded and s.ring_first_seq is None
    )


def test_reading_a_file_does_not_write_it(tmp_path, bases):
    path = tmp_path / "ro.itblog"
    path.write_bytes(mutate(random.Random(3), bases[0], "erase_marker").data)
    before = path.read_bytes()
    read_log(path)
    assert path.read_bytes() == before
