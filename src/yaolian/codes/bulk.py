"""Bulk validation: many codes at once through vectorised checks, precise reasons for the bad.

* NMPA trace codes (rule a): the codes become a fixed-width byte matrix (numpy); length,
  character set (a 256-entry table per rule) and issuer prefix are checked for all rows at once;
  the 药品标识码 of each row is looked up once per *distinct* 药品标识码.
* GS1 element strings: one Rust regex pass (polars) splits the common pharmaceutical shapes
  ``(01)(11)?(17)?(10)?(21)`` (raw with GS, or bracketed); GTIN check digits and YYMMDD dates are
  checked with integer arithmetic over the columns.

Rows the fast path does not accept go through the scalar validator, which either accepts them
(another valid shape) or gives the precise reason — so results equal the scalar path's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
import polars as pl

from yaolian.codes.gs1 import CSET82, parse_element_string
from yaolian.codes.nmpa import CodeRule, looks_like_gs1
from yaolian.codes.registry import CodeRegistry
from yaolian.errors import CodeError

Reason = Callable[[str], object]  # raises CodeError with the reason, returns when valid


@dataclass
class BulkResult:
    """Outcome over ``total`` codes: ``ok`` mask and ``(index, reason)`` for every bad code."""

    ok: np.ndarray
    problems: list[tuple[int, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Number of codes checked."""
        return len(self.ok)

    @property
    def n_ok(self) -> int:
        """Number of valid codes."""
        return int(self.ok.sum())


def _finish(codes: Sequence[str], fast_ok: np.ndarray, reason: Reason) -> BulkResult:
    """Send the rows the fast path refused through the scalar validator."""
    ok = fast_ok.copy()
    problems: list[tuple[int, str]] = []
    for i in np.flatnonzero(~fast_ok).tolist():
        try:
            reason(codes[i])
        except CodeError as exc:
            problems.append((i, str(exc)))
        else:
            ok[i] = True
    return BulkResult(ok, problems)


# ── NMPA (rule a) ──────────────────────────────────────────────────────────────────────────
def _byte_matrix(codes: Sequence[str], width: int) -> np.ndarray:
    """``(n, width)`` uint8 matrix, NUL-padded; non-ASCII characters become ``?``."""
    try:
        arr = np.array(codes, dtype=f"S{width}")
    except UnicodeEncodeError:
        arr = np.array([c.encode("ascii", "replace") for c in codes], dtype=f"S{width}")
    if len(arr) == 0:
        return np.zeros((0, width), dtype=np.uint8)
    return arr.view(np.uint8).reshape(len(arr), width)


def _charset_table(rule: CodeRule) -> np.ndarray:
    allowed = re.compile(f"[{rule.charset}]")
    return np.array([allowed.fullmatch(chr(b)) is not None for b in range(256)], dtype=bool)


def _prefix_ids(mat: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct first-``k``-byte prefixes and each row's index into them."""
    head = np.ascontiguousarray(mat[:, :k])
    if k > 8:
        uniq, inverse = np.unique(head.view(f"S{k}").ravel(), return_inverse=True)
        return uniq.view(np.uint8).reshape(-1, k), inverse
    padded = np.zeros((len(mat), 8), dtype=np.uint8)
    padded[:, :k] = head
    inverse, uniq = pd.factorize(padded.view(np.uint64).ravel())  # hash-based, no sort
    return np.ascontiguousarray(uniq).view(np.uint8).reshape(-1, 8)[:, :k], inverse


def validate_nmpa_bulk(
    codes: Sequence[str],
    registry: CodeRegistry,
    *,
    check_product: bool = True,
    reason: Reason | None = None,
) -> BulkResult:
    """Validate many rule-(a) trace codes; ``reason`` (default: the registry's scalar
    validation) explains the rows the vectorised checks refuse."""
    scalar: Reason = reason or (registry.validate if check_product else registry.parse)
    rules = registry.rules
    n = len(codes)
    if n == 0 or not rules:
        return _finish(codes, np.zeros(n, dtype=bool), scalar)
    width = max(r.total_length for r in rules) + 1  # one spare byte exposes over-long codes
    mat = _byte_matrix(codes, width)
    k = max(r.product_code_length for r in rules)
    prefixes, inverse = _prefix_ids(mat, k)
    # per distinct prefix: which rule, and is its 药品标识码 registered?
    rule_of_prefix = np.full(len(prefixes), -1, dtype=np.int16)
    known_product = np.zeros(len(prefixes), dtype=bool)
    for u, raw in enumerate(prefixes):
        text = bytes(raw).rstrip(b"\0").decode("ascii", "replace")
        for r_i, rule in enumerate(rules):
            if rule.matches_prefix(text):
                rule_of_prefix[u] = r_i
                pcode = text[: rule.product_code_length]
                known_product[u] = not check_product or pcode in registry.products
                break
    row_rule = rule_of_prefix[inverse]
    fast_ok = (row_rule >= 0) & known_product[inverse]
    if "\0" in "".join(codes):  # NUL inside a code would hide in the padding
        fast_ok &= np.array(["\0" not in c for c in codes])
    for r_i, rule in enumerate(rules):
        # right length and characters: the first T bytes all allowed (so none is padding) and
        # byte T is padding (so nothing follows)
        t = rule.total_length
        good = _charset_table(rule)[mat[:, :t]].all(axis=1) & (mat[:, t] == 0)
        if len(rules) == 1:
            fast_ok &= good
        else:
            fast_ok &= good | (row_rule != r_i)
    return _finish(codes, fast_ok, scalar)


# ── GS1 element strings ────────────────────────────────────────────────────────────────────
_X = r"""[!"%-?A-Z_a-z]"""  # GS1 character set 82 as one class
_XB = r"""[!"%-'*-?A-Z_a-z]"""  # … without "(" ")" for the bracketed form
assert set(chr(c) for c in range(33, 127) if re.fullmatch(_X, chr(c))) == set(CSET82)


def _shape(serial_required: bool) -> str:
    """Regex (no captures: DFA-fast) of the common pharmaceutical shapes, raw with GS or
    bracketed: (01)(11)?(17)?  then  (10)+(21) | (21)+(10)? | (10) alone."""
    x, xb = f"{_X}{{1,20}}", f"{_XB}{{1,20}}"
    raw_tail = [f"10{x}\x1d21{x}", f"21{x}(?:\x1d10{x})?"]
    bra_tail = [rf"\(10\){xb}\(21\){xb}", rf"\(21\){xb}(?:\(10\){xb})?"]
    if not serial_required:
        raw_tail.append(f"10{x}")
        bra_tail.append(rf"\(10\){xb}")
    raw = r"(?:\][A-Za-z][0-9])?\x1d?01[0-9]{14}(?:11[0-9]{6})?(?:17[0-9]{6})?"
    raw += f"(?:{'|'.join(raw_tail)})"
    bra = r"\(01\)[0-9]{14}(?:\(11\)[0-9]{6})?(?:\(17\)[0-9]{6})?" + f"(?:{'|'.join(bra_tail)})"
    return f"^(?:{raw}|{bra})$"


def _gtin_ok(gtin: np.ndarray) -> np.ndarray:
    """GS1 mod-10 check over GTIN-14s given as int64 (negative = missing → False)."""
    value = gtin.copy()
    total = np.zeros(len(gtin), dtype=np.int64)
    for weight in (1, 3) * 7:  # from the check digit leftwards: 1 (itself), 3, 1, 3 …
        value, digit = np.divmod(value, 10)
        total += weight * digit
    return (gtin >= 0) & (total % 10 == 0)


def _date_ok(yymmdd: np.ndarray) -> np.ndarray:
    """YYMMDD as int32 valid (GS1 sliding century window, DD=00 allowed); -1 (absent) → True."""
    yy, mm, dd = yymmdd // 10000, (yymmdd // 100) % 100, yymmdd % 100
    this = date.today().year
    diff = yy - this % 100
    year = (this // 100 + np.where(diff <= -50, 1, np.where(diff >= 51, -1, 0))) * 100 + yy
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    days = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[np.clip(mm, 0, 12)]
    days = days + ((mm == 2) & leap)
    return (yymmdd == -1) | ((yymmdd >= 0) & (mm >= 1) & (mm <= 12) & (dd <= days))


def _fields(frame: pl.DataFrame, serial_required: bool) -> pl.DataFrame:
    """Shape flag and the fixed-position numeric fields (meaningful where the shape matched):
    GTIN as int64, (11) and (17) as int32, -1 when absent."""
    s = pl.col("s")
    bare = (
        pl.when(s.str.starts_with("]")).then(s.str.slice(3)).otherwise(s)
    ).str.strip_chars_start("\x1d")
    frame = frame.with_columns(shape=s.str.contains(_shape(serial_required)), bare=bare)
    frame = frame.with_columns(w=pl.when(pl.col("bare").str.starts_with("(")).then(2).otherwise(0))
    b, w = pl.col("bare"), pl.col("w")  # w: extra width of "(AI)" over "AI"
    frame = frame.with_columns(
        gtin=b.str.slice(w + 2, 14).cast(pl.Int64, strict=False).fill_null(-2),
        has_prod=b.str.slice(w + 16, 2 + w).str.contains(r"^\(?11"),
    ).with_columns(at_exp=pl.when(pl.col("has_prod")).then(w * 2 + 24).otherwise(w + 16))
    at = pl.col("at_exp")
    return frame.with_columns(
        prod=pl.when(pl.col("has_prod"))
        .then(b.str.slice(w * 2 + 18, 6).cast(pl.Int32, strict=False).fill_null(-2))
        .otherwise(-1),
        exp=pl.when(b.str.slice(at, 2 + w).str.contains(r"^\(?17"))
        .then(b.str.slice(at + 2 + w, 6).cast(pl.Int32, strict=False).fill_null(-2))
        .otherwise(-1),
    )


def validate_gs1_bulk(
    strings: Sequence[str],
    *,
    registry: CodeRegistry | None = None,
    reason: Reason | None = None,
) -> BulkResult:
    """Validate many GS1 element strings. With ``registry`` they are trace codes (rule b): (21)
    required and the GTIN registered. ``reason`` explains refused rows (default: the scalar
    element-string parser, or the registry's trace-code validation when ``registry`` is given)."""
    scalar = reason or (registry.validate if registry else parse_element_string)
    if not strings:
        return BulkResult(np.zeros(0, dtype=bool))
    frame = _fields(pl.DataFrame({"s": pl.Series(strings, dtype=pl.String)}), registry is not None)
    gtin = frame["gtin"].to_numpy()
    fast_ok = (
        frame["shape"].to_numpy()
        & _gtin_ok(gtin)
        & _date_ok(frame["exp"].to_numpy())
        & _date_ok(frame["prod"].to_numpy())
    )
    if registry is not None:
        known = np.array(sorted(int(g) for g in registry.gtins()), dtype=np.int64)
        fast_ok &= np.isin(gtin, known)
    return _finish(strings, fast_ok, scalar)


def validate_many(codes: Sequence[str], registry: CodeRegistry) -> BulkResult:
    """Validate a mixed list (a file of codes): NMPA codes and GS1 trace codes through the
    vectorised paths, URIs and other kinds one by one; every refusal carries the reason of
    :func:`yaolian.codes.inspect.validate_code`."""
    from yaolian.codes.inspect import validate_code

    def scalar(code: str) -> object:
        return validate_code(code, registry)

    gs1_rows: list[int] = []
    nmpa_rows: list[int] = []
    other_rows: list[int] = []
    for i, code in enumerate(codes):
        if looks_like_gs1(code) or (code.startswith("01") and len(code) > 18):
            gs1_rows.append(i)
        elif ":" in code:
            other_rows.append(i)
        else:
            nmpa_rows.append(i)
    ok = np.zeros(len(codes), dtype=bool)
    problems: list[tuple[int, str]] = []
    for rows, run in (
        (nmpa_rows, lambda sub: validate_nmpa_bulk(sub, registry, reason=scalar)),
        (gs1_rows, lambda sub: validate_gs1_bulk(sub, registry=registry, reason=scalar)),
        (other_rows, lambda sub: _finish(sub, np.zeros(len(sub), dtype=bool), scalar)),
    ):
        if not rows:
            continue
        part = run([codes[i] for i in rows])
        index = np.array(rows)
        ok[index] = part.ok
        problems += [(rows[j], reason) for j, reason in part.problems]
    problems.sort()
    return BulkResult(ok, problems)
