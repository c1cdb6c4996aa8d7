"""GS1 keys and element strings: the application identifier (AI) table, check digits on keys,
element strings with FNC1/GS separators or in human-readable ``(AI)value`` form, both ways.

An element string is held as a list of ``(ai, value)`` pairs, in the order they were read.
Dates (YYMMDD) follow GS1 General Specifications 7.12: the century by the ±50-year sliding
window, ``DD = 00`` meaning the last day of the month.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from yaolian.codes.checkdigit import gs1_check_digit, verify_gs1_check_digit
from yaolian.errors import CodeError

GS = "\x1d"  # ASCII group separator: FNC1 as transmitted by a scanner
Pairs = list[tuple[str, str]]

CSET82 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
CSET39 = frozenset("#-/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
DIGITS = frozenset("0123456789")
_CHARSETS = {"N": DIGITS, "X": CSET82, "Y": CSET39}
_CHARSET_NAMES = {"N": "digits", "X": "GS1 character set 82", "Y": "GS1 character set 39"}


@dataclass(frozen=True, slots=True)
class AI:
    """One application identifier: its title and the format of its value.

    ``numeric_head`` digits (all digits, ``check`` on them when set) are followed by up to
    ``max_len - numeric_head`` characters of ``charset``; ``fixed`` means exactly ``max_len``.
    ``predefined`` AIs (GS1 GenSpecs Fig. 7.8.5-2) need no FNC1 after them.
    """

    code: str
    title: str
    max_len: int
    fixed: bool = False
    charset: str = "X"
    numeric_head: int = 0
    check: bool = False
    date: bool = False
    predefined: bool = False
    min_len: int = 1


def _ai_table() -> dict[str, AI]:
    t: dict[str, AI] = {}

    def add(code: str, title: str, max_len: int, **kw: object) -> None:
        t[code] = AI(code, title, max_len, **kw)  # type: ignore[arg-type]

    add("00", "SSCC", 18, fixed=True, charset="N", numeric_head=18, check=True, predefined=True)
    add("01", "GTIN", 14, fixed=True, charset="N", numeric_head=14, check=True, predefined=True)
    add("02", "CONTENT", 14, fixed=True, charset="N", numeric_head=14, check=True, predefined=True)
    add("10", "BATCH/LOT", 20)
    for code, title in (
        ("11", "PROD DATE"),
        ("12", "DUE DATE"),
        ("13", "PACK DATE"),
        ("15", "BEST BEFORE or BEST BY"),
        ("16", "SELL BY"),
        ("17", "USE BY or EXPIRY"),
    ):
        add(code, title, 6, fixed=True, charset="N", date=True, predefined=True)
    add("20", "VARIANT", 2, fixed=True, charset="N", predefined=True)
    add("21", "SERIAL", 20)
    add("22", "CPV", 20)
    add("235", "TPX", 28)
    add("240", "ADDITIONAL ID", 30)
    add("241", "CUST. PART No.", 30)
    add("250", "SECONDARY SERIAL", 30)
    add("251", "REF. TO SOURCE", 30)
    add("253", "GDTI", 30, numeric_head=13, check=True, min_len=13)
    add("254", "GLN EXTENSION COMPONENT", 20)
    add("255", "GCN", 25, charset="N", numeric_head=13, check=True, min_len=13)
    add("30", "VAR. COUNT", 8, charset="N")
    measures = [*range(310, 317), *range(320, 330), *range(330, 338), *range(340, 350)]
    measures += [*range(350, 358), *range(360, 370)]
    for head in measures:
        for decimals in range(6):
            add(
                f"{head}{decimals}",
                f"MEASURE {head}n (n={decimals})",
                6,
                fixed=True,
                charset="N",
                predefined=True,
            )
    add("37", "COUNT", 8, charset="N")
    for decimals in range(10):
        add(f"390{decimals}", "AMOUNT", 15, charset="N")
        add(f"391{decimals}", "AMOUNT (ISO currency)", 18, charset="N", numeric_head=3, min_len=4)
        add(f"392{decimals}", "PRICE", 15, charset="N")
        add(f"393{decimals}", "PRICE (ISO currency)", 18, charset="N", numeric_head=3, min_len=4)
    add("400", "ORDER NUMBER", 30)
    add("401", "GINC", 30)
    add("402", "GSIN", 17, fixed=True, charset="N", numeric_head=17, check=True)
    add("403", "ROUTE", 30)
    for code, title in (
        ("410", "SHIP TO LOC"),
        ("411", "BILL TO"),
        ("412", "PURCHASE FROM"),
        ("413", "SHIP FOR LOC"),
        ("414", "LOC No."),
        ("415", "PAY TO"),
        ("416", "PROD/SERV LOC"),
        ("417", "PARTY"),
    ):
        add(code, title, 13, fixed=True, charset="N", numeric_head=13, check=True)
    add("420", "SHIP TO POST", 20)
    add("421", "SHIP TO POST (ISO country)", 12, numeric_head=3, min_len=3)
    add("422", "ORIGIN", 3, fixed=True, charset="N")
    add("423", "COUNTRY - INITIAL PROCESS", 15, charset="N", min_len=3)
    add("424", "COUNTRY - PROCESS", 3, fixed=True, charset="N")
    add("425", "COUNTRY - DISASSEMBLY", 15, charset="N", min_len=3)
    add("426", "COUNTRY - FULL PROCESS", 3, fixed=True, charset="N")
    add("7001", "NSN", 13, fixed=True, charset="N")
    add("7002", "MEAT CUT", 30)
    add("7003", "EXPIRY TIME", 10, fixed=True, charset="N")
    add("7004", "ACTIVE POTENCY", 4, charset="N")
    add("7240", "PROTOCOL", 20)
    add("8003", "GRAI", 30, numeric_head=14, min_len=14)
    add("8004", "GIAI", 30)
    add("8006", "ITIP", 18, fixed=True, charset="N", numeric_head=18)
    add("8007", "IBAN", 34)
    add("8008", "PROD TIME", 12, charset="N", min_len=8)
    add("8010", "CPID", 30, charset="Y")
    add("8011", "CPID SERIAL", 12, charset="N")
    add("8012", "VERSION", 20)
    add("8017", "GSRNP", 18, fixed=True, charset="N", numeric_head=18, check=True)
    add("8018", "GSRN", 18, fixed=True, charset="N", numeric_head=18, check=True)
    add("8019", "SRIN", 10, charset="N")
    add("8020", "REF No.", 25)
    add("90", "INTERNAL", 30)
    for n in range(91, 100):
        add(str(n), "INTERNAL", 90)
    return t


AIS: dict[str, AI] = _ai_table()
DATE_AIS = frozenset(code for code, ai in AIS.items() if ai.date)


def lookup_ai(text: str, pos: int = 0) -> AI:
    """The AI starting at ``text[pos]`` (AIs are prefix-free: try 2, 3 then 4 digits)."""
    for n in (2, 3, 4):
        ai = AIS.get(text[pos : pos + n])
        if ai is not None:
            return ai
    head = text[pos : pos + 4]
    if not head or not DIGITS.issuperset(head[:2]):
        raise CodeError(
            f"expected an application identifier at position {pos + 1}, got {head!r}",
            reason_zh=f"条码内容第 {pos + 1} 位起不是应用标识符 (AI)，多为扫描不全或录入有误",
        )
    raise CodeError(
        f"unknown AI {head[:2]}… at position {pos + 1}",
        reason_zh=f"条码内容第 {pos + 1} 位起的应用标识符 ({head[:2]}…) 无法识别",
    )


def gs1_date(yymmdd: str, ai: str = "17") -> date:
    """A GS1 YYMMDD date (GenSpecs 7.12): sliding-window century, ``DD=00`` = last day of month."""
    what = f"AI ({ai}) {AIS[ai].title if ai in AIS else 'date'}"
    if len(yymmdd) != 6 or not DIGITS.issuperset(yymmdd):
        raise CodeError(
            f"{what} {yymmdd!r} is not a date: expected YYMMDD",
            reason_zh=f"条码中 ({ai}) 段不是日期：应为 6 位 YYMMDD",
        )
    yy, mm, dd = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    this = date.today().year
    diff = yy - this % 100
    century = this // 100 + (1 if diff <= -50 else -1 if diff >= 51 else 0)
    year = century * 100 + yy
    if not 1 <= mm <= 12:
        raise CodeError(
            f"{what} {yymmdd} is not a date: month {mm:02d}",
            reason_zh=f"条码中 ({ai}) 段日期 {yymmdd} 无效：没有 {mm:02d} 月",
        )
    last = calendar.monthrange(year, mm)[1]
    if dd > last:
        raise CodeError(
            f"{what} {yymmdd} is not a date: day {dd:02d} of {year}-{mm:02d}",
            reason_zh=f"条码中 ({ai}) 段日期 {yymmdd} 无效：{year} 年 {mm} 月没有 {dd} 日",
        )
    return date(year, mm, dd or last)


def gs1_date_text(day: date) -> str:
    """A date as GS1 YYMMDD."""
    return day.strftime("%y%m%d")


def check_ai_value(ai: AI, value: str) -> None:
    """Raise :class:`CodeError` naming the AI and the reason unless ``value`` fits ``ai``."""
    n = len(value)
    where = f"AI ({ai.code}) {ai.title}"
    if ai.fixed and n != ai.max_len:
        raise CodeError(
            f"{where}: wrong length {n}, expected {ai.max_len}",
            reason_zh=f"条码中 ({ai.code}) 段长度不对：应为 {ai.max_len} 位，这里是 {n} 位",
        )
    if n < ai.min_len or n > ai.max_len:
        raise CodeError(
            f"{where}: wrong length {n}, expected {ai.min_len}–{ai.max_len}",
            reason_zh=(
                f"条码中 ({ai.code}) 段长度不对：应为 {ai.min_len}–{ai.max_len} 位，这里是 {n} 位"
            ),
        )
    if ai.date:
        gs1_date(value, ai.code)
        return
    head = value[: ai.numeric_head]
    if head and not DIGITS.issuperset(head):
        raise CodeError(
            f"{where}: first {ai.numeric_head} characters must be digits, got {head!r}",
            reason_zh=f"条码中 ({ai.code}) 段前 {ai.numeric_head} 位应为数字",
        )
    tail = value[ai.numeric_head :]
    allowed = _CHARSETS[ai.charset]
    if not allowed.issuperset(tail):
        bad = next(ch for ch in tail if ch not in allowed)
        raise CodeError(
            f"{where}: character {bad!r} not allowed ({_CHARSET_NAMES[ai.charset]})",
            reason_zh=f"条码中 ({ai.code}) 段含不允许的字符 {bad!r}",
        )
    if ai.check:
        key = head if ai.code not in ("253", "255") else value[:13]
        verify_gs1_check_digit(key, where)
    elif ai.code == "8003":
        verify_gs1_check_digit(value[1:14], where)


def _strip_symbology(text: str) -> str:
    # ]d2 GS1 DataMatrix, ]Q3 GS1 QR, ]C1 GS1-128, ]e0 DataBar, ]J1 GS1 DotCode
    if text.startswith("]") and len(text) >= 3:
        text = text[3:]
    return text.lstrip(GS)


def parse_element_string(text: str) -> Pairs:
    """Parse a GS1 element string, bracketed ``(01)…(21)…`` or raw with FNC1 as GS (``\\x1d``).

    Every AI must be known and every value valid (length, characters, check digit, date);
    the error names the AI and the reason.
    """
    if not text:
        raise CodeError("empty element string")
    if text.startswith("("):
        return _parse_bracketed(text)
    return _parse_raw(_strip_symbology(text))


def _parse_raw(text: str) -> Pairs:
    pairs: Pairs = []
    pos, end = 0, len(text)
    if not end:
        raise CodeError("empty element string")
    while pos < end:
        ai = lookup_ai(text, pos)
        pos += len(ai.code)
        if ai.fixed:
            value = text[pos : pos + ai.max_len]
            pos += len(value)
            if pos < end and text[pos] == GS:
                pos += 1
        else:
            gs = text.find(GS, pos)
            stop = end if gs < 0 else gs
            value = text[pos:stop]
            pos = stop + 1 if gs >= 0 else stop
            if len(value) > ai.max_len:
                raise CodeError(
                    f"AI ({ai.code}) {ai.title}: value longer than {ai.max_len} "
                    f"characters (missing GS separator?)"
                )
        check_ai_value(ai, value)
        pairs.append((ai.code, value))
    _check_pairs(pairs)
    return pairs


_BRACKET_AI = re.compile(r"\((\d{2,5})\)", re.ASCII)


def _parse_bracketed(text: str) -> Pairs:
    # A value may itself contain "(": split only at "(AI)" where AI is known.
    marks = list(_BRACKET_AI.finditer(text))
    unknown = next((m.group(1) for m in marks if m.group(1) not in AIS), None)
    if unknown is not None:
        raise CodeError(
            f"unknown AI ({unknown})", reason_zh=f"条码中的应用标识符 ({unknown}) 无法识别"
        )
    if not marks or marks[0].start() != 0:
        raise CodeError(f"element string {text!r}: must start with a known (AI)")
    pairs: Pairs = []
    for i, m in enumerate(marks):
        stop = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        ai = AIS[m.group(1)]
        value = text[m.end() : stop]
        check_ai_value(ai, value)
        pairs.append((ai.code, value))
    _check_pairs(pairs)
    return pairs


def _check_pairs(pairs: Pairs) -> None:
    seen: dict[str, str] = {}
    for ai, value in pairs:
        if ai in seen and seen[ai] != value:
            raise CodeError(f"AI ({ai}) appears twice with different values")
        seen[ai] = value
    if "21" in seen and "01" not in seen and "8006" not in seen:
        raise CodeError("AI (21) SERIAL needs AI (01) GTIN or (8006) ITIP")
    if "254" in seen and "414" not in seen:
        raise CodeError("AI (254) GLN EXTENSION needs AI (414)")
    if "01" in seen and "02" in seen:
        raise CodeError("AI (01) and AI (02) must not appear together")


def build_element_string(pairs: Iterable[tuple[str, str]], *, bracketed: bool = False) -> str:
    """Write pairs as an element string: ``(AI)value`` for humans, or raw with GS after every
    variable-length field that is not last (the form encoded behind FNC1 in a symbol)."""
    items = list(pairs)
    for ai_code, value in items:
        ai = AIS.get(ai_code)
        if ai is None:
            raise CodeError(
                f"unknown AI ({ai_code})", reason_zh=f"条码中的应用标识符 ({ai_code}) 无法识别"
            )
        check_ai_value(ai, value)
    _check_pairs(items)
    if bracketed:
        return "".join(f"({ai}){value}" for ai, value in items)
    out: list[str] = []
    last = len(items) - 1
    for i, (ai_code, value) in enumerate(items):
        out.append(ai_code + value)
        if i < last and not AIS[ai_code].predefined:
            out.append(GS)
    return "".join(out)


def order_for_symbol(pairs: Sequence[tuple[str, str]]) -> Pairs:
    """Predefined-length AIs first (fewer FNC1 separators), keeping relative order otherwise."""
    return sorted(pairs, key=lambda p: not AIS[p[0]].predefined)


def normalize_gtin(gtin: str) -> str:
    """A GTIN-8/12/13/14 as validated GTIN-14 (left-padded with zeros)."""
    if len(gtin) not in (8, 12, 13, 14):
        raise CodeError(f"GTIN {gtin!r}: wrong length {len(gtin)}, expected 8, 12, 13 or 14 digits")
    verify_gs1_check_digit(gtin, f"GTIN-{len(gtin)}")
    return gtin.zfill(14)


def verify_key(kind: str, value: str) -> None:
    """Validate a GS1 key by kind: ``gtin`` (8/12/13/14), ``sscc``, ``gln``, ``gsin``, ``gsrn``."""
    lengths = {"sscc": 18, "gln": 13, "gsin": 17, "gsrn": 18}
    if kind == "gtin":
        normalize_gtin(value)
        return
    if kind not in lengths:
        raise CodeError(f"unknown GS1 key kind {kind!r}")
    if len(value) != lengths[kind]:
        raise CodeError(
            f"{kind.upper()} {value!r}: wrong length {len(value)}, expected {lengths[kind]} digits"
        )
    verify_gs1_check_digit(value, kind.upper())


def with_check_digit(body: str) -> str:
    """``body`` followed by its GS1 check digit."""
    return body + gs1_check_digit(body)


def pairs_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Pairs as an AI → value dict."""
    return dict(pairs)


def describe_pairs(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """Pairs with AI titles and dates decoded, for display."""
    out = []
    for ai, value in pairs:
        row = {"ai": ai, "title": AIS[ai].title, "value": value}
        if ai in DATE_AIS:
            row["date"] = gs1_date(value, ai).isoformat()
        out.append(row)
    return out
