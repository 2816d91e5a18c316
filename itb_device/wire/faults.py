"""A fault-injecting link for tests and demonstrations: drops, corrupts, delays and splits
bytes, deterministically under a seed.  Wraps the pump server's transport, so the same
faults apply over a pseudo-terminal or a TCP socket."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class FaultSpec:
    """Per-byte probabilities and timing of the faults."""

    drop: float = 0.0
    corrupt: float = 0.0
    split: float = 0.0  # probability that a write is cut into pieces sent separately
    delay_s: float = 0.0  # pause between split pieces
    seed: int = 0

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """``"drop=0.01,corrupt=0.01,split=0.2,delay=0.002,seed=3"``: ``drop`` and ``corrupt``
        are probabilities per byte, ``split`` per write (each from 0 to 1), ``delay`` seconds,
        ``seed`` an integer.  Raises ValueError (one line naming the option) for anything else."""
        spec = cls()
        names = {"drop": "drop", "corrupt": "corrupt", "split": "split", "delay": "delay_s", "seed": "seed"}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, _, value = (x.strip() for x in part.partition("="))
            if key not in names or not value:
                raise ValueError(f"fault option {part!r}: use {', '.join(names)} as key=value")
            if key == "seed":
                try:
                    spec.seed = int(value)
                except ValueError:
                    raise ValueError(f"fault option {part!r}: seed must be a whole number") from None
                continue
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if key == "delay":
                if not 0 <= number <= 10:
                    raise ValueError(f"fault option {part!r}: delay is seconds between split pieces, "
                                     "a number from 0 to 10")
            elif not 0 <= number <= 1:
                per = "per write" if key == "split" else "per byte"
                raise ValueError(f"fault option {part!r}: {key} is a probability {per}, "
                                 "a number from 0 to 1 (e.g. 0.01)")
            setattr(spec, names[key], number)
        if spec.drop + spec.corrupt > 1:
            raise ValueError(f"fault options {text!r}: drop + corrupt is at most 1 "
                             "(each byte is dropped, corrupted or passed)")
        return spec


class FaultyTransport:
    """Applies a :class:`FaultSpec` to everything written and read through ``inner``."""

    def __init__(self, inner: Any, spec: FaultSpec) -> None:
        self.inner = inner
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.dropped = self.corrupted = 0

    def _mangle(self, data: bytes) -> bytes:
        s, rng = self.spec, self.rng
        if not (s.drop or s.corrupt):
            return data
        out = bytearray()
        for b in data:
            r = rng.random()
            if r < s.drop:
                self.dropped += 1
                continue
            if r < s.drop + s.corrupt:
                b ^= rng.randint(1, 255)
                self.corrupted += 1
            out.append(b)
        return bytes(out)

    def send(self, client: Any, data: bytes) -> None:
        """Send a reply through the faults (mangled, maybe split into two pieces)."""
        data = self._mangle(data)
        if self.spec.split and len(data) > 1 and self.rng.random() < self.spec.split:
            cut = self.rng.randint(1, len(data) - 1)
            self.inner.send(client, data[:cut])
            if self.spec.delay_s:
                time.sleep(self.spec.delay_s)
            self.inner.send(client, data[cut:])
        else:
            self.inner.send(client, data)

    def poll(self, timeout: float) -> list[tuple[Any, bytes | None]]:
        """The inner transport's events, the bytes received mangled."""
        return [(c, d if not d else self._mangle(d)) for c, d in self.inner.poll(timeout)]

    def close_client(self, client: Any) -> None:
        self.inner.close_client(client)

    def close(self) -> None:
        self.inner.close()

    @property
    def single_channel(self) -> bool:
        return getattr(self.inner, "single_channel", False)

    @property
    def name(self) -> str:
        return self.inner.name
