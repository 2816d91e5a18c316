"""``read_log``: open an ``.itblog`` read-only, recover every intact page, report the rest."""

from __future__ import annotations

import contextlib
import dataclasses
import mmap
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np
import pandas as pd

from . import fast
from . import format as fmt
from .checks import check_rules
from .decoded import DecodedRecords, empty_records
from .errors import LogFormatError
from .header import decode_header, decode_status
from .layout import blank_erased, find_layout
from .model import Header, LogImage, Page, Problem, Record, Status
from .pages import Around, Gap, PageScan, RingRange, order_pages
from .records import BY_CODE, DELIVERY_CODE, RECORD_SIZE, RecordCode
from .tables import ITB_EPOCH_UNIX_S, MAX_UTC_S, build_delivery, build_events, representable, utc_times
from .timebase import ClockMarks, Timebase, correct_clocks

Decoder = Literal["fast", "construct"]
_T = TypeVar("_T")


@dataclass
class InterrogationLog:
    """A decoded interrogation: header, status, tidy tables and the problems found.

    ``events`` and ``delivery`` are in time order with UTC times corrected for clock drift
    and clock changes; each row keeps ``page_seq`` and the byte ``offset`` of its record.
    ``gaps`` lists missing stretches of the ring (damaged or absent pages) with the time span
    they leave without history; analysis must treat those spans as unknown.
    """

    path: Path
    header: Header
    status: Status
    header_ok: bool
    status_ok: bool
    events: pd.DataFrame
    delivery: pd.DataFrame
    pages: pd.DataFrame
    gaps: pd.DataFrame
    problems: list[Problem]
    decoder: str

    @property
    def damaged(self) -> bool:
        """True when anything was lost or could not be trusted (any error-level problem)."""
        return any(p.severity == "error" for p in self.problems)

    def records(self) -> list[Record]:
        """Every decoded record rebuilt from the tables, in storage order."""
        rows: list[tuple[int, Record]] = []
        ev_fields = [c for c in self.events.columns if c not in _EVENT_META]
        for r in self.events.itertuples(index=False):
            d = r._asdict()
            code = int(d["code"])
            t = BY_CODE.get(code)
            if t is None:
                rec = Record(int(d["pump_clock"]), code, {}, int(d["aux"]), bytes.fromhex(d["payload_hex"]))
            else:
                names = {f.name for f in t.fields}
                vals = {k: d[k] for k in ev_fields if k in names}
                rec = Record(int(d["pump_clock"]), code, vals, int(d["aux"]))
            rows.append((int(d["offset"]), rec))
        spec = BY_CODE[DELIVERY_CODE]
        for r in self.delivery.itertuples(index=False):
            d = r._asdict()
            vals = {f.name: d[f.name] for f in spec.fields}
            rows.append((int(d["offset"]), Record(int(d["pump_clock"]), DELIVERY_CODE, vals, int(d["aux"]))))
        rows.sort(key=lambda x: x[0])
        return [r for _, r in rows]

    def to_image(self) -> LogImage:
        """The accepted pages as a :class:`LogImage` (write it back with ``write_log``)."""
        by_offset = dict(zip(self._record_offsets(), self.records(), strict=True))
        pages = []
        for p in self.pages.itertuples(index=False):
            first = int(p.offset) + fmt.PAGE_HEADER_SIZE
            recs = tuple(by_offset[first + 32 * j] for j in range(int(p.count)))
            pages.append((int(p.offset), Page(int(p.seq), int(p.slot), recs)))
        pages.sort(key=lambda x: x[0])
        return LogImage(self.header, self.status, tuple(pg for _, pg in pages))

    def _record_offsets(self) -> list[int]:
        return sorted([*self.events["offset"].tolist(), *self.delivery["offset"].tolist()])


_EVENT_META = {
    "time_utc",
    "event",
    "code",
    "pump_clock",
    "time_uncertain",
    "page_seq",
    "offset",
    "aux",
    "payload_hex",
}


def read_log(
    path: str | Path, *, strict: bool = False, decoder: Decoder = "fast", workers: int | None = None
) -> InterrogationLog:
    """Read an interrogation log.

    The file is opened read-only and never written.  In the default mode damaged pages are
    skipped, intact pages around them decoded, and every problem listed in ``.problems``
    (each naming the byte offset); ``strict=True`` raises :class:`LogFormatError` on the
    first problem instead.  A file that is not a readable log at all (wrong magic, unknown
    version, too short for a header) always raises :class:`LogFormatError`.  ``workers``
    is how many threads the fast decoder may use on a large log (default: up to four, one
    per available core; 1 decodes in the calling thread only).
    """
    path = Path(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the map
    except OSError as exc:
        raise LogFormatError(path, None, f"cannot open: {exc.strerror or exc}") from exc
    with f:
        size = path.stat().st_size
        if size == 0:
            raise LogFormatError(path, 0, "file is empty: not an ITB interrogation log")
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            return _read(path, memoryview(mm), size, strict, decoder, workers, release=mm.close)
        finally:
            # a view still alive somewhere would make close() fail; the GC then unmaps it
            with contextlib.suppress(BufferError):
                mm.close()


def read_log_bytes(
    data: bytes,
    name: str = "<memory>",
    *,
    strict: bool = False,
    decoder: Decoder = "fast",
    workers: int | None = None,
) -> InterrogationLog:
    """Read a log held in memory (e.g. received over a link); ``name`` labels its messages."""
    if len(data) == 0:
        raise LogFormatError(name, 0, "no data: not an ITB interrogation log")
    return _read(Path(name), memoryview(data), len(data), strict, decoder, workers)


def _read(
    path: Path,
    buf: memoryview,
    size: int,
    strict: bool,
    decoder: Decoder,
    workers: int | None,
    release: Callable[[], None] = lambda: None,
) -> InterrogationLog:
    problems: list[Problem] = []

    def problem(
        kind: str,
        message: str,
        offset: int | None,
        seq: int | None = None,
        severity: str = "error",
        *,
        last_seq: int | None = None,
        length: int | None = None,
    ) -> None:
        p = Problem(kind, message, offset, seq, severity, str(path), last_seq, length)  # type: ignore[arg-type]
        if strict:
            raise LogFormatError(path, offset, message)
        problems.append(p)

    if size < len(fmt.MAGIC) or bytes(buf[: len(fmt.MAGIC)]) != fmt.MAGIC:
        got = bytes(buf[: len(fmt.MAGIC)]).hex(" ")
        raise LogFormatError(
            path,
            0,
            f"not an ITB interrogation log: starts with {got}, expected the magic {fmt.MAGIC.hex(' ')}",
        )
    if size < fmt.HEADER_SIZE:
        raise LogFormatError(
            path,
            size,
            f"truncated inside the header: the file has {size} bytes, a header needs {fmt.HEADER_SIZE}",
        )
    raw_header = bytes(buf[: fmt.HEADER_SIZE])
    header, header_ok, lay = decode_header(raw_header, with_layout=True)
    if lay.version_major != fmt.VERSION_MAJOR:
        raise LogFormatError(
            path,
            8,
            f"format version {lay.version_major}.{lay.version_minor} is "
            f"not supported (this reader reads {fmt.VERSION_MAJOR}.x)",
        )
    if not header_ok:
        problem(
            "bad_header_crc",
            "header fails its CRC-32C: pump identity and clocks may be wrong, and the pages are "
            "found by their own markers and CRCs, not by the header's layout",
            fmt.HEADER_SIZE - 4,
        )
    # a header that passes its CRC is taken at its word; a damaged one only says what 1.x fixes
    wrong = []
    for name, off, want in (
        ("header_size", 10, fmt.HEADER_SIZE),
        ("status_size", 12, fmt.STATUS_SIZE),
        ("record_size", 16, 32),
    ):
        if lay[name] != want:
            if header_ok:
                raise LogFormatError(
                    path, off, f"{name} is {lay[name]}, expected {want}: the layout cannot be trusted"
                )
            wrong.append((off, f"{name} {lay[name]} (it is {want} in every 1.x file)"))
    if lay.page_size not in fmt.ALLOWED_PAGE_SIZES and header_ok:
        raise LogFormatError(
            path,
            14,
            f"page size {lay.page_size} is not one of {fmt.ALLOWED_PAGE_SIZES}: the layout cannot be trusted",
        )
    if header.model_ml not in (20, 40):
        problem(
            "unknown_model",
            f"pump model says a {header.model_ml} mL reservoir; expected 20 or 40",
            18,
            severity="warning",
        )
    pages_start = fmt.HEADER_SIZE + fmt.STATUS_SIZE
    if size < pages_start:
        raise LogFormatError(
            path,
            size,
            f"truncated inside the status snapshot: the file has {size} "
            f"bytes, header and status need {pages_start}",
        )
    status, status_ok = decode_status(bytes(buf[fmt.HEADER_SIZE : pages_start]))
    if not status_ok:
        problem(
            "bad_status_crc",
            "status snapshot fails its CRC-32C: reservoir, prescription and alarms in it cannot be trusted",
            pages_start - 4,
        )

    promised = header.page_count
    if not header_ok:  # find the pages by their own markers and CRCs (docs/log-format.md 5.3)
        found = find_layout(buf, pages_start, size, lay.page_size, lay.page_count)
        if found.page_size != lay.page_size:
            wrong.append((14, f"page size {lay.page_size}"))
        if found.pages != lay.page_count:
            wrong.append((24, f"{lay.page_count} pages"))
        if wrong:
            problem(
                "layout_from_pages",
                f"the damaged header says {', '.join(w for _, w in wrong)}; the pages themselves show "
                f"{_pages(found.intact)} intact at page size {found.page_size}: "
                f"{_pages(found.pages)} of {found.page_size} bytes are read",
                wrong[0][0],
                severity="warning",
            )
        header = dataclasses.replace(header, page_size=found.page_size, page_count=found.pages)
        promised = found.pages if lay.page_count <= found.pages else lay.page_count
    ps = header.page_size
    complete = (size - pages_start) // ps
    n_pages = min(header.page_count, complete)
    expected_end = pages_start + header.page_count * ps
    cut = 0
    if size < expected_end or (not header_ok and promised > n_pages and (size - pages_start) % ps):
        cut = max(promised - n_pages, 1)
        end = pages_start + promised * ps
        problem(
            "truncated",
            f"file ends at byte {size} but the header promises {promised} "
            f"pages (to byte {end}): {_pages(cut)} missing, "
            "the last partial page is skipped"
            if (size - pages_start) % ps
            else f"file ends at byte {size} but the header promises {promised} pages "
            f"(to byte {end}): {_pages(cut)} missing",
            pages_start + n_pages * ps,
            length=end - (pages_start + n_pages * ps),
        )
        expected_end = end
    elif size > expected_end:
        problem(
            "trailing_bytes",
            f"{size - expected_end} bytes after the last page are ignored",
            expected_end,
            severity="warning",
            length=size - expected_end,
        )

    columns = None
    if decoder == "fast":
        columns = fast.Columns.ahead(buf, pages_start, n_pages, ps, workers)
        scan = fast.scan_pages(buf, pages_start, n_pages, ps)
        parsed = None
    elif decoder == "construct":
        from . import construct_reader  # the slow reference decoder, loaded only when asked for

        scan, parsed = construct_reader.scan_pages(buf, pages_start, n_pages, ps)
    else:
        raise ValueError(f"unknown decoder {decoder!r}: use 'fast' or 'construct'")
    ring = header.ring_slots
    valid_slots = scan.slot[scan.crc_ok & (scan.sync == fmt.PAGE_SYNC)]
    if ring < max(header.page_count, 1) or (
        not header_ok and len(valid_slots) and ring <= int(valid_slots.max())
    ):
        guess = max(header.page_count, int(valid_slots.max()) + 1 if len(valid_slots) else 0, 1)
        problem(
            "bad_ring_size",
            f"the header's ring size ({ring} slots) cannot hold the {header.page_count} "
            f"pages stored: {guess} slots assumed",
            20,
        )
        ring = guess
    ring_range = None
    if status_ok and status.ring_recorded:
        last, held = int(status.ring_last_seq), int(status.ring_pages)  # type: ignore[arg-type]
        if held > ring or held > last + 1:
            problem(
                "ring_position",
                f"the status says the ring holds {held} pages up to seq {last}, which a ring of "
                f"{ring} slots cannot: the ring position is not used",
                fmt.HEADER_SIZE + fmt.STATUS_RING_OFFSET,
                severity="warning",
            )
        else:
            ring_range = RingRange(last - held + 1, last, int(status.ring_last_count or 0))
    beyond = None
    if ring_range is not None and size >= expected_end + ps and header_ok:
        beyond = fast.scan_pages(buf, expected_end, (size - expected_end) // ps, ps)
    blank = blank_erased(buf, scan.offset, scan.sync, ps)
    order = order_pages(
        scan,
        ring,
        ps,
        blank=blank,
        ring=ring_range,
        around=Around(pages_start + n_pages * ps, beyond, cut),
    )
    for p in order.problems:
        problem(p.kind, p.message, p.offset, p.page_seq, p.severity, last_seq=p.last_seq, length=p.length)
    if len(order.accepted) == 0:
        dec = empty_records()
    elif parsed is None:
        try:
            dec = fast.decode_records(buf, pages_start, n_pages, ps, scan, order, workers, columns)
        except LogFormatError as exc:  # raised without the name, which only the reader knows
            raise LogFormatError(path, exc.offset, exc.message) from None
    else:
        from . import construct_reader

        dec = construct_reader.decode_records(parsed, scan, order)

    # every decoded value is a copy now: unmap the file before the tables are built, so its
    # pages do not count twice towards the reader's peak memory
    buf.release()
    with contextlib.suppress(BufferError):
        release()
    counts = scan.count[order.accepted].astype(np.int64)
    page_first = np.cumsum(counts) - counts
    gap_starts = [
        int(page_first[g.after + 1])
        for g in order.gaps
        if 0 <= g.after < len(counts) - 1 and page_first[g.after + 1] < len(dec)
    ]

    def offset_of(i: int) -> int:  # byte offset of the record at storage position i
        j = int(np.searchsorted(page_first, i, side="right")) - 1
        return (
            int(scan.offset[order.accepted[j]])
            + fmt.PAGE_HEADER_SIZE
            + (i - int(page_first[j])) * RECORD_SIZE
        )

    tb = correct_clocks(
        dec.clock,
        _clock_marks(dec),
        (header.pump_clock, header.programmer_clock),
        gap_starts,
        offset_of,
        tail_missing=order.tail_missing,
    )
    for p in tb.problems:
        problem(p.kind, p.message, p.offset, p.page_seq, p.severity)
    ev_starts = np.searchsorted(dec.event_idx, tb.starts)

    def delivery_table() -> tuple[pd.DataFrame, _Far | None]:
        utc, uncertain, shown, far = _table_times(dec, tb, tb.starts - ev_starts, events=False)
        return build_delivery(dec, utc, uncertain, shown=shown), far

    def utc_at(positions: np.ndarray) -> np.ndarray:
        return tb.seconds_at(dec.clock, positions)

    # on a large log the delivery table (nearly all the rows) is built on a second thread
    # while this one builds the events, pages and gaps tables and checks the rules
    threads = fast.default_workers() if workers is None else workers
    with _beside(threads > 1 and len(dec.delivery_clock) >= _BESIDE_ROWS, delivery_table) as delivery:
        ev_utc, ev_uncertain, ev_shown, ev_far = _table_times(dec, tb, ev_starts, events=True)
        pages_df = _pages_table(scan, order.accepted, counts, page_first, utc_at)
        gaps_df = _gaps_table(order.gaps, scan, order.accepted, counts, page_first, utc_at)
        from_first_page = bool(len(counts)) and int(scan.seq[order.accepted[0]]) == 0
        rule_problems = check_rules(dec, tb, gap_starts, from_first_page=from_first_page)
        events_df = build_events(dec, ev_utc, ev_uncertain, shown=ev_shown)
        delivery_df, d_far = delivery()
    far = [f for f in (ev_far, d_far) if f is not None]
    if far:
        problem(
            "implausible_time",
            f"{sum(f.records for f in far)} records get times beyond any real date from the pump "
            "clock and the header's clocks (damaged clock values): their times are unknown",
            min(far).offset,
        )
    for g, row in zip(order.gaps, gaps_df.itertuples(index=False), strict=True):
        problem(
            "page_gap",
            _gap_message(g, row, len(counts)),
            int(g.offset),
            g.first,
            last_seq=g.last,
        )
    for p in rule_problems:
        problem(p.kind, p.message, p.offset, p.page_seq, p.severity)
    return InterrogationLog(
        path=path,
        header=header,
        status=status,
        header_ok=header_ok,
        status_ok=status_ok,
        events=events_df,
        delivery=delivery_df,
        pages=pages_df,
        gaps=gaps_df,
        problems=problems,
        decoder=decoder,
    )


_BESIDE_ROWS = 1 << 16  # delivery rows from which the table is worth a thread of its own


@contextlib.contextmanager
def _beside(thread: bool, work: Callable[[], _T]) -> Iterator[Callable[[], _T]]:
    """Start ``work`` on a thread of its own (``thread``) or leave it to be done in this one;
    yields the function that returns its result, waiting for it."""
    if not thread:
        yield work
        return
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(work).result


def _pages(n: int) -> str:
    return f"{n} page" if n == 1 else f"{n} pages"


def _gap_message(g: Gap, row: Any, n_accepted: int) -> str:
    """What a page gap loses: which pages, where they were, what span of history."""
    fmt_t = "%Y-%m-%d %H:%M:%S"
    pages = f"pages seq {g.first}..{g.last} ({_pages(g.pages)})"
    if g.after == n_accepted - 1:  # nothing after it: the newest pages
        span = (
            f"history after {row.start_utc:{fmt_t}} UTC is lost"
            if pd.notna(row.start_utc)
            else "history is lost"
        )
        text = (
            f"{pages}, the newest the status says the ring holds, are missing or damaged"
            + (" (the first was at this offset)" if g.where else " (not found in the file)")
            + f": {span}"
        )
    elif g.after < 0:
        span = "history is lost"
        if pd.notna(row.end_utc):
            span = f"history before {row.end_utc:{fmt_t}} UTC is lost"
        text = (
            f"{pages}, the oldest the status says the ring holds, are missing or damaged "
            f"before the page at this offset: {span}"
        )
    else:
        span = (
            f"history from {row.start_utc:{fmt_t}} to {row.end_utc:{fmt_t}} UTC is lost"
            if pd.notna(row.start_utc) and pd.notna(row.end_utc)
            else "history is lost"
        )
        text = f"{pages} are missing or damaged before the page at this offset: {span}"
    if g.where:
        shown = "; ".join(f"seq {w.seq} at byte {w.offset} ({w.what})" for w in g.where[:3])
        more = f" and {len(g.where) - 3} more" if len(g.where) > 3 else ""
        text += f"; where they were: {shown}{more}"
    return text


class _Far(NamedTuple):
    """Records of one table whose times are beyond any real date: how many, and the storage
    position and byte offset of the first of them."""

    position: int
    offset: int
    records: int


def _table_times(
    dec: DecodedRecords, tb: Timebase, row_starts: np.ndarray, *, events: bool
) -> tuple[np.ndarray, np.ndarray, bool, _Far | None]:
    """UTC seconds and uncertain flags of the event rows or of the delivery rows (segment
    ``k`` from row ``row_starts[k]``), whether all can be shown, and the rows whose times are
    too far out to be real (marked uncertain)."""
    clock = dec.event_clock if events else dec.delivery_clock
    utc, uncertain = tb.seconds(clock, row_starts)
    if representable(utc):
        return utc, uncertain, True, None
    far = (utc > MAX_UTC_S) | (utc < -ITB_EPOCH_UNIX_S)
    uncertain |= far
    r = int(np.flatnonzero(far)[0])
    offset = int((dec.event_offset if events else dec.delivery_offset)[r])
    return utc, uncertain, False, _Far(dec.storage_position(r, events=events), offset, int(far.sum()))


def _clock_marks(dec: DecodedRecords) -> ClockMarks:
    marks = ClockMarks()
    ev_code = dec.event_code
    e = dec.events
    for row in np.flatnonzero(np.isin(ev_code, _CLOCK_CODES)).tolist():
        i = int(dec.event_idx[row])
        c = int(ev_code[row])
        if c == RecordCode.CLOCK_SET:
            marks.clock_set.append((i, int(e["old_clock"][row]), int(e["new_clock"][row])))
        elif c == RecordCode.PUMP_RESET:
            marks.reset.append((i, int(e["clock_before"][row])))
        else:
            marks.telemetry.append((i, int(e["programmer_clock"][row])))
    return marks


_CLOCK_CODES = [
    int(RecordCode.CLOCK_SET),
    int(RecordCode.PUMP_RESET),
    int(RecordCode.TELEMETRY_START),
]


def _pages_table(scan: PageScan, accepted: np.ndarray, counts: np.ndarray, page_first: np.ndarray,
                 utc_at: Callable[[np.ndarray], np.ndarray]) -> pd.DataFrame:
    has = counts > 0
    n = int(counts.sum())
    if n:
        first_t = utc_at(np.minimum(page_first, n - 1))
        last_t = utc_at(np.maximum(page_first + counts - 1, 0))
    else:
        first_t = last_t = np.zeros(len(counts), dtype=np.int64)
    return pd.DataFrame(
        {
            "seq": scan.seq[accepted].astype(np.int64),
            "slot": scan.slot[accepted].astype(np.int64),
            "offset": scan.offset[accepted],
            "count": counts,
            "first_utc": utc_times(first_t, missing=~has),
            "last_utc": utc_times(last_t, missing=~has),
        }
    )


def _gaps_table(gaps: list[Gap], scan: PageScan, accepted: np.ndarray, counts: np.ndarray,
                page_first: np.ndarray, utc_at: Callable[[np.ndarray], np.ndarray]) -> pd.DataFrame:
    """One row per run of missing sequence numbers, with the span of time it leaves blank
    (NaT where no record bounds it: before the oldest page, after the newest)."""
    n = len(counts)
    j = np.array([g.after for g in gaps], dtype=np.int64)
    first = np.array([g.first for g in gaps], dtype=np.int64)
    last = np.array([g.last for g in gaps], dtype=np.int64)
    jb = np.clip(j, 0, max(n - 1, 0))
    ja = np.clip(j + 1, 0, max(n - 1, 0))
    no_start = (j < 0) | (counts[jb] == 0) if n else np.ones(len(j), dtype=bool)
    no_end = (j + 1 >= n) | (counts[ja] == 0) if n else np.ones(len(j), dtype=bool)
    # the last record before each gap and the first after it
    before = np.where(no_start, 0, page_first[jb] + counts[jb] - 1) if n else j
    after = np.where(no_end, 0, page_first[ja]) if n else j
    has = int(counts.sum()) > 0 and len(j) > 0
    start = np.where(no_start, 0, utc_at(before)) if has else np.zeros(len(j), dtype=np.int64)
    end = np.where(no_end, 0, utc_at(after)) if has else np.zeros(len(j), dtype=np.int64)
    return pd.DataFrame(
        {
            "first_missing_seq": first,
            "last_missing_seq": last,
            "start_utc": utc_times(start, missing=no_start),
            "end_utc": utc_times(end, missing=no_end),
            "next_page_offset": np.array([g.offset for g in gaps], dtype=np.int64),
        }
    )
