"""Benchmark the codes layer: bulk validation of NMPA trace codes and GS1 element strings, and
the canonical key, each against a bare compiled-regex loop over the same strings (baseline).

    .venv/bin/python benchmarks/codes.py [N]      # N codes per run, default 1,000,000
"""

from __future__ import annotations

import random
import re
import sys
import time
from collections.abc import Callable

from yaolian.codes.bulk import validate_gs1_bulk, validate_nmpa_bulk
from yaolian.codes.checkdigit import gs1_check_digit
from yaolian.codes.gs1 import parse_element_string
from yaolian.codes.identity import canonical_key, clear_key_caches
from yaolian.codes.registry import CodeRegistry


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def report(name: str, n: int, seconds: float, baseline: float) -> None:
    print(
        f"{name:44} {n / seconds:>12,.0f} codes/s  ({seconds:6.2f} s; "
        f"{baseline / seconds:5.2f}× the regex baseline)"
    )


def nmpa_codes(n: int, rng: random.Random) -> list[str]:
    products = ["8600001", "8600002", "8600003", "8600004"]
    codes = [rng.choice(products) + f"{rng.randrange(10**13):013d}" for _ in range(n)]
    for i in range(0, n, 1000):  # 0.1 % bad: wrong length, unknown product, bad character
        codes[i] = rng.choice([codes[i][:-1], "8600099" + codes[i][7:], codes[i][:-1] + "X"])
    return codes


def gs1_strings(n: int, rng: random.Random) -> list[str]:
    gtins = []
    for _ in range(200):
        body = f"069{rng.randrange(10**10):010d}"
        gtins.append(body + gs1_check_digit(body))
    strings = [
        f"01{rng.choice(gtins)}17{rng.choice(('280131', '290630', '271200'))}"
        f"10L{rng.randrange(10**5)}\x1d21{rng.randrange(10**12):012d}"
        for _ in range(n)
    ]
    for i in range(0, n, 1000):  # 0.1 % bad: check digit, date
        strings[i] = strings[i].replace("17280131", "17281331").replace("0106", "0107", 1)
    return strings


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rng = random.Random(20261125)
    registry = CodeRegistry.bundled()
    print(f"codes benchmark, N = {n:,}")

    codes = nmpa_codes(n, rng)
    nmpa_rx = re.compile(r"8\d{19}")
    base, _ = timed(lambda: [nmpa_rx.fullmatch(c) is not None for c in codes])
    report("baseline: regex loop, NMPA", n, base, base)
    took, result = timed(lambda: validate_nmpa_bulk(codes, registry))
    report("validate_nmpa_bulk (rules + 药品标识码 registry)", n, took, base)
    print(f"{'':44} {result.n_ok:,} valid, {len(result.problems):,} with reasons")  # type: ignore[attr-defined]

    strings = gs1_strings(n, rng)
    gs1_rx = re.compile(r"01(\d{14})17(\d{6})10([!-~]{1,20})\x1d21([!-~]{1,20})")
    base, _ = timed(lambda: [gs1_rx.fullmatch(s) is not None for s in strings])
    report("baseline: regex loop, GS1", n, base, base)
    took, result = timed(lambda: validate_gs1_bulk(strings))
    report("validate_gs1_bulk (AIs, check digit, dates)", n, took, base)
    print(f"{'':44} {result.n_ok:,} valid, {len(result.problems):,} with reasons")  # type: ignore[attr-defined]
    sample = strings[: max(1, n // 10)]
    took, _ = timed(lambda: [_try(parse_element_string, s) for s in sample])
    report("(scalar parse_element_string, for scale)", len(sample), took, base * len(sample) / n)

    uris = [
        f"urn:epc:id:sgtin:6901234.0{rng.randrange(2000):05d}.{rng.randrange(10**12)}"
        for _ in range(n)
    ]
    sgtin_rx = re.compile(r"urn:epc:id:sgtin:(\d+)\.(\d+)\.(.+)")
    base, _ = timed(lambda: [sgtin_rx.fullmatch(u) is not None for u in uris])
    report("baseline: regex loop, sgtin URI", n, base, base)
    clear_key_caches()
    took, _ = timed(lambda: [canonical_key(u) for u in uris])
    report("canonical_key, sgtin URIs (cold cache)", n, took, base)


def _try(fn: Callable[[str], object], value: str) -> object:
    try:
        return fn(value)
    except Exception as exc:  # the bad 0.1 %
        return exc


if __name__ == "__main__":
    main()
