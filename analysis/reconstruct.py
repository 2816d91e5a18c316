"""Delivery reconstruction: an event-sourced fold of program, bolus, refill, stall and clock
events into what was prescribed, what the pump commanded and what the rotor confirmed.

Programs hold from their record until the next one; the drug in the reservoir changes at
each refill.  Delivery-history rows (one per interval, stamped at its end) give commanded
and rotor-confirmed volumes, converted to mcg with the concentration of the drug actually in
the reservoir.  Nothing is silently filled: spans with no history (page gaps, damaged pages,
holes in the delivery history), spans whose clock cannot be trusted, and spans whose program
had to be inferred are kept as lists and marked on every timeline row they touch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from clinical.rules import Rules, get_rules
from parsers import InterrogationLog
from parsers.model import ITB_EPOCH_UNIX_S

from .episodes import Episodes, Program, Step, collect, program_from_status
from .piecewise import Piecewise, merge_spans, overlaps
from .timeutil import DAY, HOUR, stamps, to_seconds, ts_seconds


@dataclass(frozen=True)
class Span:
    """A time span with why it is marked and the records that show it."""

    start_s: int
    end_s: int
    reason: str
    evidence: tuple[int, ...] = ()


@dataclass
class ProgramSpan:
    """A program and the span it was in effect."""

    program: Program
    start_s: int
    end_s: int


@dataclass
class Reconstruction:
    """The reconstructed delivery of one log: state spans, enriched rows, timeline."""

    window: tuple[int, int]
    now_s: int
    episodes: Episodes
    program_spans: list[ProgramSpan]
    conc_times: np.ndarray
    conc_values: np.ndarray
    first_refill_s: int | None
    conc_from_status: bool
    prescribed_mcg: Piecewise
    prescribed_ml: Piecewise
    bolus_mcg: Piecewise
    rows: pd.DataFrame
    missing: list[Span] = field(default_factory=list)
    uncertain: list[Span] = field(default_factory=list)
    inferred: list[Span] = field(default_factory=list)
    unplaced: list[int] = field(default_factory=list)  # offsets of records set aside
    timeline: pd.DataFrame | None = None

    def program_at(self, t: float) -> Program | None:
        """The program in effect at ``t`` (None before the first known one)."""
        for ps in reversed(self.program_spans):
            if ps.start_s <= t:
                return ps.program if t < ps.end_s or ps is self.program_spans[-1] else None
        return None

    def program_index_at(self, times: np.ndarray) -> np.ndarray:
        """:meth:`program_at` for many times at once, as indices into ``program_spans`` (-1 for
        none): one search, not one loop per time."""
        spans = self.program_spans
        t = np.asarray(times, dtype=np.float64)
        if not spans:
            return np.full(len(t), -1, dtype=np.int64)
        starts = np.array([ps.start_s for ps in spans], dtype=np.float64)
        ends = np.array([ps.end_s for ps in spans], dtype=np.float64)
        idx = np.searchsorted(starts, t, side="right") - 1
        live = (idx >= 0) & ((t < ends[np.maximum(idx, 0)]) | (idx == len(spans) - 1))
        return np.where(live, idx, -1)

    def daily_dose_at(self, t: float) -> float:
        """The prescribed daily dose at ``t`` in mcg (the last non-stopped one if stopped)."""
        prog = self.program_at(t)
        if prog is not None and prog.daily_dose_mcg > 0:
            return prog.daily_dose_mcg
        for ps in reversed(self.program_spans):
            if ps.start_s <= t and ps.program.daily_dose_mcg > 0:
                return ps.program.daily_dose_mcg
        return 0.0

    def daily_doses_at(self, times: np.ndarray) -> np.ndarray:
        """:meth:`daily_dose_at` for many times at once (the last non-stopped dose carries
        forward)."""
        spans = self.program_spans
        if not spans:
            return np.zeros(len(times))
        starts = np.array([ps.start_s for ps in spans], dtype=np.float64)
        dose = np.array([ps.program.daily_dose_mcg for ps in spans], dtype=np.float64)
        carried = np.maximum.accumulate(np.where(dose > 0, np.arange(len(dose)), -1))
        effective = np.where(carried >= 0, dose[np.maximum(carried, 0)], 0.0)
        idx = np.searchsorted(starts, np.asarray(times, dtype=np.float64), side="right") - 1
        return np.where(idx >= 0, effective[np.maximum(idx, 0)], 0.0)

    def drug_concentration_at(self, t: float) -> float:
        """Concentration of the drug in the reservoir at ``t`` (mcg/mL)."""
        i = int(np.searchsorted(self.conc_times, t, side="right")) - 1
        return float(self.conc_values[max(i, 0)])


def delivery_starts(d: pd.DataFrame) -> np.ndarray:
    """Start of each delivery interval (Unix s): rows are stamped at the interval's end."""
    return to_seconds(d["time_utc"]) - d["interval_s"].to_numpy(dtype=np.int64)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True."""
    if len(mask) == 0:
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist(),
                    strict=True))


def _window(events: pd.DataFrame, delivery: pd.DataFrame, log: InterrogationLog) -> tuple[int, int]:
    times = []
    if not events.empty:
        times.append(to_seconds(events["time_utc"]))
    if not delivery.empty:
        times.append(delivery_starts(delivery))
        times.append(to_seconds(delivery["time_utc"]))
    allt = np.concatenate(times) if times else np.zeros(0, dtype=np.int64)
    now = ts_seconds(log.header.interrogated_at)
    if len(allt) == 0:
        return now, now
    last = int(allt.max())
    if not log.header_ok or now < last:
        now = max(now, last) if log.header_ok else last
    return int(allt.min()), now


def placeable(log: InterrogationLog, rules: Rules) -> tuple[pd.DataFrame, pd.DataFrame, list[int]]:
    """Events and delivery rows that can be placed in time, and the offsets of those that
    cannot: records with an untrusted clock that land after the interrogation or far before
    the trusted history (a clock that fell back with no record can put them decades away)."""
    ev, dl = log.events, log.delivery
    trusted = [to_seconds(df.loc[~df["time_uncertain"].to_numpy(dtype=bool), "time_utc"])
               for df in (ev, dl) if not df.empty]
    trusted_t = np.concatenate(trusted) if trusted else np.zeros(0, dtype=np.int64)
    if len(trusted_t) == 0 or (not ev["time_uncertain"].any() and not dl["time_uncertain"].any()):
        return ev, dl, []
    now = max(ts_seconds(log.header.interrogated_at), int(trusted_t.max()))
    lo = int(trusted_t.min()) - rules.number("history", "uncertain_lookback_days") * DAY
    out, dropped = [], []
    for df in (ev, dl):
        if df.empty:
            out.append(df)
            continue
        t = to_seconds(df["time_utc"])
        bad = df["time_uncertain"].to_numpy(dtype=bool) & ((t > now) | (t < lo))
        dropped += df.loc[bad, "offset"].astype(int).tolist()
        out.append(df.loc[~bad].reset_index(drop=True))
    return out[0], out[1], sorted(dropped)


def _inferred_program(rows: pd.DataFrame, a: int, b: int, conc: float) -> Program:
    """A continuous program matching the commanded delivery between ``a`` and ``b``."""
    sel = (rows["end_s"] > a) & (rows["start_s"] < b)
    r = rows.loc[sel]
    if r.empty or float(r["interval_s"].sum()) <= 0:
        return Program(a, "stopped", (), conc, source="inferred")
    modes = r["mode"].astype(str)
    mode = modes.mode().iloc[0] if not modes.empty else "simple_continuous"
    rate = float(r["commanded_ml"].median() / r["interval_s"].median() * DAY)
    if mode == "stopped" or rate <= 0:
        return Program(a, "stopped", (), conc, source="inferred")
    mode = "simple_continuous" if mode == "flex" else mode
    return Program(a, mode, (Step(0, rate * conc, rate),), conc, source="inferred")




def clock_offsets(events: pd.DataFrame, delivery: pd.DataFrame) -> list[tuple[float, float, float]]:
    """(utc_from, utc_to, pump clock minus UTC) spans: flex steps follow the pump clock,
    which drifts, is set, and restarts from 2000-01-01 after a reset."""
    parts = [(to_seconds(df["time_utc"]), df["pump_clock"].to_numpy(dtype=np.int64))
             for df in (events, delivery) if not df.empty]
    if not parts:
        return [(-np.inf, np.inf, 0.0)]
    utc = np.concatenate([p[0] for p in parts])
    off = np.concatenate([p[1] for p in parts]) + ITB_EPOCH_UNIX_S - utc
    order = np.argsort(utc, kind="stable")
    utc, off = utc[order], off[order]
    breaks = np.flatnonzero(np.abs(np.diff(off)) > 60) + 1
    bounds = [0, *breaks.tolist(), len(utc)]
    spans = []
    for k in range(len(bounds) - 1):
        lo, hi = bounds[k], bounds[k + 1]
        start = -np.inf if k == 0 else float(utc[lo])
        end = np.inf if k == len(bounds) - 2 else float(utc[hi])
        spans.append((start, end, float(np.median(off[lo:hi]))))
    return spans


def _flex_intervals(p: Program, a: int, b: int, offset: float) -> tuple[np.ndarray, ...]:
    """Flex step pieces within [a, b) (UTC) for a pump clock ``offset`` s ahead of UTC."""
    starts = np.array([st.start_min * 60 for st in p.steps], dtype=np.int64)
    doses = np.array([st.daily_dose_mcg for st in p.steps]) / DAY
    rates = np.array([st.rate_ml_day for st in p.steps]) / DAY
    pa, pb = a + offset, b + offset  # the span on the pump clock
    days = np.arange(pa // DAY - 1, pb // DAY + 1, dtype=np.int64) * DAY
    seg_s = (days[:, None] + starts[None, :]).ravel().astype(np.float64)
    seg_e = np.concatenate([seg_s[1:], [seg_s[-1] + DAY]])
    d, r = np.tile(doses, len(days)), np.tile(rates, len(days))
    cs, ce = np.clip(seg_s, pa, pb), np.clip(seg_e, pa, pb)
    keep = ce > cs
    dur = ce[keep] - cs[keep]
    return cs[keep] - offset, ce[keep] - offset, d[keep] * dur, r[keep] * dur


def _program_piecewise(spans: list[ProgramSpan],
                       offsets: list[tuple[float, float, float]]) -> tuple[Piecewise, Piecewise]:
    """Prescribed basal mcg and mL as piecewise rates (flex steps day by day)."""
    s_list: list[ArrayLike] = []
    e_list: list[ArrayLike] = []
    mcg_list: list[ArrayLike] = []
    ml_list: list[ArrayLike] = []
    for ps in spans:
        p = ps.program
        a, b = ps.start_s, ps.end_s
        if b <= a or p.mode == "stopped" or not p.steps:
            continue
        if len(p.steps) == 1:
            st = p.steps[0]
            s_list.append([a])
            e_list.append([b])
            mcg_list.append([st.daily_dose_mcg * (b - a) / DAY])
            ml_list.append([st.rate_ml_day * (b - a) / DAY])
            continue
        for lo, hi, off in offsets:
            sa, sb = max(a, lo), min(b, hi)
            if sb > sa:
                cs, ce, mcg, ml = _flex_intervals(p, int(sa), int(sb), off)
                s_list.append(cs)
                e_list.append(ce)
                mcg_list.append(mcg)
                ml_list.append(ml)
    if not s_list:
        return Piecewise.empty(), Piecewise.empty()
    s, e = np.concatenate(s_list), np.concatenate(e_list)
    return (Piecewise.from_intervals(s, e, np.concatenate(mcg_list)),
            Piecewise.from_intervals(s, e, np.concatenate(ml_list)))


def _uncertain_spans(events: pd.DataFrame, delivery: pd.DataFrame) -> list[Span]:
    parts = []
    for df in (delivery, events):
        if df.empty:
            continue
        m = df["time_uncertain"].to_numpy(dtype=bool)
        if not m.any():
            continue
        start = delivery_starts(df) if "interval_s" in df.columns else to_seconds(df["time_utc"])
        parts.append(pd.DataFrame({
            "s": start[m], "e": to_seconds(df["time_utc"])[m],
            "o": df["offset"].to_numpy()[m]}))
    if not parts:
        return []
    u = pd.concat(parts).sort_values("s")
    spans = merge_spans(list(zip(u["s"], u["e"], strict=True)), join_s=HOUR)
    out = []
    for s, e in spans:
        ev = u.loc[(u["s"] >= s) & (u["e"] <= e), "o"].to_numpy()
        out.append(Span(int(s), int(e), "clock_uncertain", tuple(int(x) for x in ev[:1])
                        + tuple(int(x) for x in ev[-1:])))
    return out


def _missing_spans(log: InterrogationLog, rows: pd.DataFrame, w0: int, now: int,
                   rules: Rules) -> list[Span]:
    spans: list[Span] = []
    for g in log.gaps.itertuples(index=False):
        s = w0 if pd.isna(g.start_utc) else ts_seconds(g.start_utc)
        e = now if pd.isna(g.end_utc) else ts_seconds(g.end_utc)
        if not rows.empty:  # a delivery row stamped after the gap covers its own interval
            covers = rows.loc[(rows["end_s"] >= e) & (rows["start_s"] < e), "start_s"]
            if len(covers):
                e = max(int(covers.min()), s)
        spans.append(Span(s, max(e, s), "page_gap", (int(g.next_page_offset),)))
    kinds = {p.kind for p in log.problems if p.severity == "error"}
    if "truncated" in kinds:
        last = int(max(rows["end_s"].max() if not rows.empty else w0, w0))
        off = next(p.offset for p in log.problems if p.kind == "truncated")
        spans.append(Span(last, now, "truncated", (int(off or 0),)))
    if not rows.empty:
        tol = rules.number("history", "hole_tolerance_intervals") * float(rows["interval_s"].median())
        s = rows["start_s"].to_numpy()
        e = rows["end_s"].to_numpy()
        off = rows["offset"].to_numpy()
        prev_end = np.concatenate([[w0], np.maximum.accumulate(e)[:-1]])
        explained = [(x.start_s, x.end_s) for x in spans]  # page gaps already say why
        holes = np.flatnonzero(s - prev_end > tol)
        for i in holes.tolist():
            a, b = int(prev_end[i]), int(s[i])
            if not overlaps(np.array([a]), np.array([b]), explained)[0]:
                spans.append(Span(a, b, "no_delivery_history",
                                  (int(off[i - 1]) if i > 0 else int(off[i]), int(off[i]))))
        last_end = int(e.max())
        if now - last_end > tol and not overlaps(np.array([last_end]), np.array([now]),
                                                 explained)[0]:
            spans.append(Span(last_end, now, "no_delivery_history", (int(off[-1]),)))
    spans.sort(key=lambda x: x.start_s)
    return spans


def _rows(d: pd.DataFrame) -> pd.DataFrame:
    rows = pd.DataFrame({
        "start_s": delivery_starts(d) if not d.empty else np.zeros(0, np.int64),
        "end_s": to_seconds(d["time_utc"]) if not d.empty else np.zeros(0, np.int64),
    })
    for c in ("interval_s", "commanded_ml", "rotor_ml", "stalled_s", "reservoir_ml", "mode",
              "time_uncertain", "offset"):
        rows[c] = d[c].to_numpy() if not d.empty else np.zeros(0)
    rows["mode"] = rows["mode"].astype(str)
    return rows.sort_values("end_s", kind="stable").reset_index(drop=True)


def build(log: InterrogationLog, rules: Rules | None = None,
          episodes: Episodes | None = None) -> Reconstruction:
    """Fold the log's events into program spans, drug concentration and enriched rows."""
    rules = rules or get_rules()
    events, delivery, unplaced = placeable(log, rules)
    ep = episodes or collect(log, events)
    w0, now = _window(events, delivery, log)
    w1 = now
    rows = _rows(delivery)

    # programs in effect: status when the log has none, inferred before the first one
    progs = sorted(ep.programs, key=lambda p: p.start_s)
    spans: list[ProgramSpan] = []
    inferred: list[Span] = []
    if not progs:
        if log.status_ok:
            spans.append(ProgramSpan(program_from_status(log.status, w0), w0, w1))
        else:
            p = _inferred_program(rows, w0, w1, float(log.status.concentration_mcg_ml))
            spans.append(ProgramSpan(p, w0, w1))
            inferred.append(Span(w0, w1, "program_inferred"))
    else:
        if not rows.empty and rows["start_s"].min() < progs[0].start_s - 60:
            a = int(min(w0, rows["start_s"].min()))
            p = _inferred_program(rows, a, progs[0].start_s, progs[0].concentration_mcg_ml)
            spans.append(ProgramSpan(p, a, progs[0].start_s))
            inferred.append(Span(a, progs[0].start_s, "program_inferred"))
        for i, p in enumerate(progs):
            end = progs[i + 1].start_s if i + 1 < len(progs) else w1
            spans.append(ProgramSpan(p, p.start_s, max(end, p.start_s)))
    for ps in spans:
        if not ps.program.complete:
            inferred.append(Span(ps.start_s, ps.end_s, "program_incomplete", ps.program.offsets))

    # drug in the reservoir: set at each refill; with no refill in the log it is the status
    # snapshot's; before the first refill it is assumed to be what the first program entered
    refills = sorted(ep.refills, key=lambda r: r.time_s)
    status_drug = not refills and log.status_ok and log.status.concentration_mcg_ml > 0
    if status_drug:
        first_conc = float(log.status.concentration_mcg_ml)
    else:
        first_conc = spans[0].program.concentration_mcg_ml if spans else log.status.concentration_mcg_ml
    conc_times = np.array([min(w0, spans[0].start_s if spans else w0)]
                          + [r.time_s for r in refills], dtype=np.int64)
    conc_values = np.array([first_conc] + [r.concentration_mcg_ml for r in refills], dtype=float)

    basal_mcg, basal_ml = _program_piecewise(spans, clock_offsets(events, delivery))
    bol = ep.boluses
    b_s = np.array([b.start_s for b in bol], dtype=float)
    b_e = np.array([b.planned_end_s for b in bol], dtype=float)
    bolus_mcg = Piecewise.from_intervals(b_s, b_e, np.array([b.dose_given_mcg for b in bol]))
    bolus_ml = Piecewise.from_intervals(b_s, b_e, np.array([b.volume_given_ml for b in bol]))

    rec = Reconstruction(
        window=(w0, w1), now_s=now, episodes=ep, program_spans=spans, conc_times=conc_times,
        conc_values=conc_values, first_refill_s=refills[0].time_s if refills else None,
        conc_from_status=bool(status_drug),
        prescribed_mcg=basal_mcg + bolus_mcg, prescribed_ml=basal_ml + bolus_ml,
        bolus_mcg=bolus_mcg, rows=rows, inferred=inferred,
    )
    if not rows.empty:
        mid = (rows["start_s"].to_numpy() + rows["end_s"].to_numpy()) / 2
        idx = np.searchsorted(conc_times, mid, side="right") - 1
        rows["concentration_mcg_ml"] = conc_values[np.maximum(idx, 0)]
        rows["commanded_mcg"] = rows["commanded_ml"] * rows["concentration_mcg_ml"]
        rows["rotor_mcg"] = rows["rotor_ml"] * rows["concentration_mcg_ml"]
        a, b = rows["start_s"].to_numpy(), rows["end_s"].to_numpy()
        rows["prescribed_ml"] = rec.prescribed_ml.integral(a, b)
        rows["prescribed_mcg"] = rec.prescribed_mcg.integral(a, b)
        rows["prescription_inferred"] = overlaps(a, b, [(s.start_s, s.end_s) for s in inferred])
        rows["daily_dose_mcg"] = rec.daily_doses_at(b)
    else:
        for c in ("concentration_mcg_ml", "commanded_mcg", "rotor_mcg", "prescribed_ml",
                  "prescribed_mcg", "daily_dose_mcg"):
            rows[c] = np.zeros(0)
        rows["prescription_inferred"] = np.zeros(0, dtype=bool)
    rec.missing = _missing_spans(log, rows, w0, now, rules)
    rec.uncertain = _uncertain_spans(events, delivery)
    rec.unplaced = unplaced
    return rec


def bin_edges(window: tuple[int, int], width_s: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends of the bins of ``width_s`` seconds (aligned to multiples of it in UTC)
    that cover ``window``; at least one bin.  The one binning of the hourly timeline and the
    research tables' days."""
    w0, w1 = window
    first = (w0 // width_s) * width_s
    last = max(-(-w1 // width_s) * width_s, first + width_s)
    a = np.arange(first, last, width_s, dtype=np.int64)
    return a, a + width_s


def spread_rows(rows: pd.DataFrame, a: np.ndarray, b: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each delivery row's ``values`` spread evenly over the row's span, summed into the bins
    ``[a, b)``: how a row's volume or seconds are shared between the bins it overlaps."""
    rs, re_ = rows["start_s"].to_numpy(), rows["end_s"].to_numpy()
    return Piecewise.from_intervals(rs, re_, np.asarray(values, dtype=float)).integral(a, b)


def timeline(rec: Reconstruction, resolution: str | pd.Timedelta = "1h") -> pd.DataFrame:
    """The reconstruction binned at ``resolution``: one row per bin (index = bin start, UTC).

    Rates are averages over the bin (commanded and rotor over the part of the bin that has
    delivery history; NaN where none).  ``history_missing``, ``time_uncertain``,
    ``prescription_inferred`` and ``concentration_inferred`` mark anything not read directly
    from the log; ``inferred`` is true if any of the first three is.
    """
    res = int(pd.Timedelta(resolution).total_seconds())
    if res <= 0:
        raise ValueError("resolution must be positive")
    w0, w1 = rec.window
    a, b = bin_edges(rec.window, res)
    rows = rec.rows
    out = pd.DataFrame(index=stamps(a))
    out.index.name = "start"
    out["end"] = stamps(b)
    # rates are averages over the part of each bin inside the analysed window: the first and
    # last bins are partial, and a rate over the whole bin would make the prescription look
    # lower there than the rows' delivery (which is averaged over the time the rows cover)
    hrs = np.maximum(np.minimum(b, w1) - np.maximum(a, w0), 1) / HOUR
    basal_plus = rec.prescribed_mcg.integral(a, b)
    bol = rec.bolus_mcg.integral(a, b)
    out["prescribed_mcg_h"] = basal_plus / hrs
    out["prescribed_basal_mcg_h"] = (basal_plus - bol) / hrs
    out["prescribed_bolus_mcg_h"] = bol / hrs
    out["prescribed_ml"] = rec.prescribed_ml.integral(a, b)
    rs, re_ = rows["start_s"].to_numpy(), rows["end_s"].to_numpy()

    def spread(col: str) -> np.ndarray:
        return spread_rows(rows, a, b, rows[col].to_numpy(dtype=float))

    covered = spread_rows(rows, a, b, (re_ - rs).astype(float))
    out["coverage"] = np.clip(covered / res, 0.0, 1.0)
    cov_h = np.where(covered > 0, covered / HOUR, np.nan)
    for col in ("commanded", "rotor"):
        ml = spread(f"{col}_ml")
        mcg = spread(f"{col}_mcg")
        out[f"{col}_ml"] = np.where(covered > 0, ml, np.nan)
        out[f"{col}_mcg_h"] = mcg / cov_h
    out["stalled_s"] = np.where(covered > 0, spread("stalled_s"), np.nan)
    if len(rows):
        i = np.searchsorted(re_, b, side="right") - 1
        ok = (i >= 0) & (re_[np.maximum(i, 0)] > a)
        out["reservoir_ml"] = np.where(ok, rows["reservoir_ml"].to_numpy()[np.maximum(i, 0)], np.nan)
    else:
        out["reservoir_ml"] = np.nan
    ci = np.maximum(np.searchsorted(rec.conc_times, a, side="right") - 1, 0)
    out["concentration_mcg_ml"] = rec.conc_values[ci]
    pi = rec.program_index_at(a)
    span_conc = np.array([ps.program.concentration_mcg_ml for ps in rec.program_spans] + [np.nan])
    span_mode = np.array([ps.program.mode for ps in rec.program_spans] + ["unknown"], dtype=object)
    out["programmed_concentration_mcg_ml"] = span_conc[pi].astype(float)  # -1: the appended none
    out["mode"] = span_mode[pi]
    out["history_missing"] = overlaps(a, b, [(s.start_s, s.end_s) for s in rec.missing])
    out["time_uncertain"] = overlaps(a, b, [(s.start_s, s.end_s) for s in rec.uncertain])
    known = [(ps.start_s, ps.end_s) for ps in rec.program_spans if ps.program.source != "inferred"]
    out["prescription_inferred"] = (overlaps(a, b, [(s.start_s, s.end_s) for s in rec.inferred])
                                    | ~overlaps(a, b, known))
    if rec.conc_from_status:
        out["concentration_inferred"] = np.zeros(len(a), dtype=bool)
    elif rec.first_refill_s is not None:
        out["concentration_inferred"] = a < rec.first_refill_s
    else:
        out["concentration_inferred"] = np.ones(len(a), dtype=bool)
    out["inferred"] = out["history_missing"] | out["time_uncertain"] | out["prescription_inferred"]
    return out


def reconstruct(log: InterrogationLog, resolution: str | pd.Timedelta = "1h",
                rules: Rules | None = None) -> pd.DataFrame:
    """Prescribed, commanded and rotor-confirmed delivery of ``log`` at ``resolution``."""
    return timeline(build(log, get_rules(rules)), resolution)
