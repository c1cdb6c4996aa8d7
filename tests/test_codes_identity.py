"""EPC URIs, Digital Link and the canonical key: round trips, cross-form identity, CBV 2.0 §8.9
canonical Digital Link checked against the open reference implementation's normaliser."""

from __future__ import annotations

import re

import pytest
from epcis_event_hash_generator.dl_normaliser import normaliser
from hypothesis import given, settings
from hypothesis import strategies as st

from yaolian.codes import (
    canonical_digital_link,
    canonical_key,
    digital_link,
    key_kind,
    lgtin_uri,
    nmpa_code_uri,
    nmpa_lot_uri,
    nmpa_product_uri,
    pgln_uri,
    sgln_uri,
    sgtin_uri,
    sscc_uri,
    uri_for_key,
)
from yaolian.codes.checkdigit import gs1_check_digit
from yaolian.codes.digital_link import build_digital_link, key_path, parse_digital_link
from yaolian.codes.epc import company_prefix_length, epc_uri_from_pairs, parse_epc_uri
from yaolian.codes.gs1 import CSET82, build_element_string
from yaolian.codes.identity import canonical_keys, typed
from yaolian.codes.nmpa import parse_nmpa_uri
from yaolian.errors import CodeError

X = "".join(sorted(CSET82))
serials = st.text(X, min_size=1, max_size=20)
cpls = st.integers(6, 12)


def keyed(n: int) -> st.SearchStrategy[str]:
    """``n``-digit GS1 keys with a correct check digit."""
    return st.text("0123456789", min_size=n - 1, max_size=n - 1).map(
        lambda body: body + gs1_check_digit(body)
    )


# ── EPC URIs ───────────────────────────────────────────────────────────────────────────────
def test_epc_examples() -> None:
    # EPC Tag Data Standard worked examples
    assert parse_epc_uri("urn:epc:id:sgtin:0614141.812345.6789") == [
        ("01", "80614141123458"),
        ("21", "6789"),
    ]
    assert parse_epc_uri("urn:epc:id:sscc:0614141.1234567890") == [("00", "106141412345678908")]
    assert parse_epc_uri("urn:epc:id:sgln:0614141.12345.400") == [
        ("414", "0614141123452"),
        ("254", "400"),
    ]
    assert parse_epc_uri("urn:epc:id:sgln:0614141.12345.0") == [("414", "0614141123452")]
    assert sgtin_uri("80614141123458", "6789", 7) == "urn:epc:id:sgtin:0614141.812345.6789"
    assert sgtin_uri("06901234567892", "A/1") == "urn:epc:id:sgtin:6901234.056789.A%2F1"
    assert sscc_uri("106141412345678908", 7) == "urn:epc:id:sscc:0614141.1234567890"


def test_company_prefix_table() -> None:
    assert company_prefix_length("6901234") == 7
    assert company_prefix_length("6921234") == 8
    assert company_prefix_length("4012345") == 7
    assert company_prefix_length("5555555", default=9) == 9


@settings(deadline=None)
@given(keyed(14), serials, cpls)
def test_sgtin_round_trip(gtin: str, serial: str, cpl: int) -> None:
    uri = sgtin_uri(gtin, serial, cpl)
    assert parse_epc_uri(uri) == [("01", gtin), ("21", serial)]
    assert epc_uri_from_pairs(parse_epc_uri(uri), cpl) == uri


@settings(deadline=None)
@given(keyed(18), cpls)
def test_sscc_round_trip(sscc: str, cpl: int) -> None:
    uri = sscc_uri(sscc, cpl)
    assert parse_epc_uri(uri) == [("00", sscc)]
    assert sscc_uri(parse_epc_uri(uri)[0][1], cpl) == uri


@settings(deadline=None)
@given(keyed(13), st.one_of(st.just("0"), st.text(X, min_size=1, max_size=20)), cpls)
def test_sgln_round_trip(gln: str, ext: str, cpl: int) -> None:
    uri = sgln_uri(gln, ext, cpl)
    pairs = parse_epc_uri(uri)
    assert pairs == ([("414", gln)] if ext == "0" else [("414", gln), ("254", ext)])
    assert epc_uri_from_pairs(pairs, cpl) == uri


@settings(deadline=None)
@given(keyed(14), serials, cpls)
def test_lgtin_round_trip(gtin: str, lot: str, cpl: int) -> None:
    uri = lgtin_uri(gtin, lot, cpl)
    assert parse_epc_uri(uri) == [("01", gtin), ("10", lot)]
    assert epc_uri_from_pairs(parse_epc_uri(uri), cpl) == uri


@settings(deadline=None)
@given(keyed(13), cpls)
def test_pgln_round_trip(gln: str, cpl: int) -> None:
    uri = pgln_uri(gln, cpl)
    assert parse_epc_uri(uri) == [("417", gln)]


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("urn:epc:id:sgtin:0614141.112345", "expected 3 dot-separated fields"),
        ("urn:epc:id:sgtin:0614141.11234.1", "must have 13 digits, has 12"),
        ("urn:epc:id:sgtin:06141A1.112345.1", "company prefix '06141A1' must be digits"),
        ("urn:epc:id:sgtin:0614141.112345.A%2", "bad %-escape"),
        ("urn:epc:id:sgtin:0614141.112345." + "9" * 21, "wrong length 21"),
        ("urn:epc:id:sgtin:0614141.112345.A#", "character '#' not allowed"),
        ("urn:epc:id:foo:1.2", "unsupported EPC scheme 'foo'"),
        ("urn:epc:idpat:sgtin:0614141.112345.7", "must end with '.*'"),
    ],
)
def test_epc_errors(uri: str, reason: str) -> None:
    with pytest.raises(CodeError, match=re.escape(reason)):
        parse_epc_uri(uri)


# ── Digital Link ───────────────────────────────────────────────────────────────────────────
@settings(deadline=None)
@given(keyed(14), serials, serials, st.sampled_from(["280131", "270200", "300615"]))
def test_digital_link_round_trip(gtin: str, lot: str, serial: str, expiry: str) -> None:
    pairs = [("01", gtin), ("10", lot), ("21", serial), ("17", expiry)]
    for host in ("https://id.gs1.org", "https://example.com/some/prefix"):
        uri = build_digital_link(pairs, host)
        path, query = parse_digital_link(uri)
        assert path + query == pairs
        assert build_digital_link(path + query, host) == uri


def test_digital_link_forms() -> None:
    assert digital_link("6901234567892", serial="S/1", lot="L:1", expiry="280131") == (
        "https://id.gs1.org/01/06901234567892/10/L%3A1/21/S%2F1?17=280131"
    )
    path, query = parse_digital_link(
        "http://example.com/gtin/6901234567892/lot/L1/ser/S1?17=280131&linkType=gs1:pip#x"
    )
    assert path == [("01", "06901234567892"), ("10", "L1"), ("21", "S1")]
    assert query == [("17", "280131")]
    with pytest.raises(CodeError, match="bad check digit"):
        parse_digital_link("https://id.gs1.org/01/06901234567893/21/1")
    with pytest.raises(CodeError, match="no GS1 primary key"):
        parse_digital_link("https://example.com/products/1")


# ── canonical Digital Link vs the reference normaliser (test oracle) ───────────────────────
@settings(deadline=None)
@given(keyed(14), serials, cpls)
def test_canonical_dl_matches_reference_sgtin(gtin: str, serial: str, cpl: int) -> None:
    uri = sgtin_uri(gtin, serial, cpl)
    assert canonical_digital_link(uri) == normaliser(uri)


@settings(deadline=None)
@given(keyed(18), keyed(13), keyed(14), st.text(X, min_size=1, max_size=20), cpls)
def test_canonical_dl_matches_reference_other_keys(
    sscc: str, gln: str, gtin: str, value: str, cpl: int
) -> None:
    for uri in (
        sscc_uri(sscc, cpl),
        sgln_uri(gln, "0", cpl),
        sgln_uri(gln, value, cpl),
        lgtin_uri(gtin, value, cpl),
        pgln_uri(gln, cpl),
    ):
        assert canonical_digital_link(uri) == normaliser(uri), uri


@pytest.mark.parametrize(
    "uri",
    [
        "https://id.gs1.org/01/04012345111118/10/L1/21/S1",
        "https://example.org/a/b/01/4012345111118/22/X/10/L1?17=200101",
        "https://example.org/gtin/4012345111118/lot/A1?linkType=all",
        "urn:epc:idpat:sgtin:4012345.011111.*",
        "urn:epc:id:grai:4012345.00002.1234",
        "urn:epc:id:giai:4012345.ABC%2F12",
        "urn:epc:id:gsrn:4012345.0000001111",
        "urn:epc:id:gdti:4012345.00001.ABC",
        "urn:epc:id:sgtin:4012345.011111.a!b(c)*+,:;=_'-.",
        "urn:epc:id:sgtin:4012345.011111.%22%25%26%2F%3C%3E%3F",
    ],
)
def test_canonical_dl_matches_reference_examples(uri: str) -> None:
    assert canonical_digital_link(uri) == normaliser(uri)


def test_canonical_dl_leaves_other_uris() -> None:
    for uri in (
        "urn:uuid:3f9d",
        "https://example.com/2024/01/15/x",
        "urn:nmpa:code:86000010000000000001",
        "urn:epc:id:sgtin:broken",
    ):
        assert canonical_digital_link(uri) == uri


# ── canonical key ──────────────────────────────────────────────────────────────────────────
@settings(deadline=None)
@given(keyed(14), serials, serials, cpls)
def test_same_pack_same_key(gtin: str, serial: str, lot: str, cpl: int) -> None:
    pairs = [("01", gtin), ("17", "280131"), ("10", lot), ("21", serial)]
    forms = [
        sgtin_uri(gtin, serial, cpl),
        digital_link(gtin, serial=serial, lot=lot, expiry="280131"),
        digital_link(gtin, serial=serial, host="https://example.cn/resolver"),
        build_element_string(pairs),
        "]d2" + build_element_string(pairs),
        nmpa_code_uri(build_element_string(pairs)),
    ]
    keys = {canonical_key(f) for f in forms}
    assert len(keys) == 1
    key = keys.pop()
    assert key_kind(key) == "instance"
    assert canonical_digital_link(forms[0]) == "https://id.gs1.org/" + key
    assert uri_for_key(key, company_prefix_length=cpl) == forms[0]
    assert canonical_key(uri_for_key(key, "dl")) == key
    assert canonical_key(uri_for_key(key, "any")) == key


FULL_WIDTH = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}  # ASCII ! … ~ → ！ … ～ (全角)


@settings(deadline=None)
@given(keyed(14), serials, cpls, st.booleans())
def test_a_code_typed_in_full_width_reads_as_scanned(
    gtin: str, serial: str, cpl: int, padded: bool
) -> None:
    """What a Chinese input method types in its full-width mode (８１０８…, ／) is the code a
    scanner reads, also with an ideographic space pasted around it."""
    for form in (
        sgtin_uri(gtin, serial, cpl),
        digital_link(gtin, serial=serial),
        build_element_string([("01", gtin), ("21", serial)]),
        nmpa_code_uri(f"8{gtin[:6]}{gtin[1:14]}"),
    ):
        wide = form.translate(FULL_WIDTH)
        assert wide != form
        assert canonical_key(typed(f"\u3000{wide} " if padded else wide)) == canonical_key(form)


@given(keyed(14), serials)
def test_any_form_reads_back_where_no_epc_uri_exists(gtin: str, serial: str) -> None:
    """``form="any"``: the EPC URI when the company prefix length is known, else the Digital
    Link — either way a URI the codes layer reads back to the same key; NMPA keys as URNs."""
    key = canonical_key(digital_link(gtin, serial=serial))
    uri = uri_for_key(key, "any")
    assert canonical_key(uri) == key
    assert uri.startswith(("urn:epc:id:sgtin:", "https://id.gs1.org/01/"))
    nmpa = canonical_key("88194998964946703363")
    assert uri_for_key(nmpa, "any") == nmpa_code_uri("88194998964946703363")


@settings(deadline=None)
@given(keyed(14), serials, cpls)
def test_class_keys(gtin: str, lot: str, cpl: int) -> None:
    lot_key = canonical_key(lgtin_uri(gtin, lot, cpl))
    assert lot_key == canonical_key(digital_link(gtin, lot=lot))
    assert lot_key == canonical_key(nmpa_lot_uri(gtin, lot))
    assert key_kind(lot_key) == "class"
    product_key = canonical_key(epc_uri_from_pairs([("01", gtin)], cpl))
    assert product_key == f"01/{gtin}" == canonical_key(nmpa_product_uri(gtin))


@settings(deadline=None)
@given(keyed(14), serials, cpls)
def test_sgtin_shortcut_matches_parser(gtin: str, serial: str, cpl: int) -> None:
    uri = sgtin_uri(gtin, serial, cpl)
    expected = key_path(parse_epc_uri(uri))
    assert canonical_key(uri) == expected
    assert canonical_key(uri) == expected  # again, once the product's key prefix is known


@pytest.mark.parametrize(
    "uri",
    [
        "urn:epc:id:sgtin:0614141.812345.6.7",
        "urn:epc:id:sgtin:0614141.8123.45.6",
        "urn:epc:id:sgtin:0614141.81234.5",
        "urn:epc:id:sgtin:0614141.812345.",
        "urn:epc:id:sgtin:0614141.812345." + "9" * 21,
        "urn:epc:id:sgtin:.5",
        "urn:epc:id:sgtin:5",
    ],
)
def test_sgtin_shortcut_odd_forms(uri: str) -> None:
    """Odd SGTINs get the full parser's key or error, before and after a valid sibling."""
    try:
        expected: str | None = key_path(parse_epc_uri(uri))
    except CodeError:
        expected = None
    for _ in range(2):
        if expected is None:
            with pytest.raises(CodeError):
                canonical_key(uri)
        else:
            assert canonical_key(uri) == expected
        canonical_key("urn:epc:id:sgtin:0614141.812345.1")


@settings(deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from(["06901234567892", "80614141123458"]), serials),
            st.sampled_from(["urn:epc:id:sscc:0614141.1234567890", "urn:uuid:3f9d"]),
        ),
        max_size=12,
    ),
    cpls,
)
def test_canonical_keys_of_a_list(items: list[tuple[str, str] | str], cpl: int) -> None:
    """Runs of one product's SGTINs, other products and other codes: the same keys as
    canonical_key one by one."""
    codes = [item if isinstance(item, str) else sgtin_uri(*item, cpl) for item in items]
    codes += ["urn:epc:id:sgtin:0614141.812345.6.7", "urn:epc:id:sgtin:0614141.812345.8"]
    assert canonical_keys(codes) == [canonical_key(code) for code in codes]


def test_nmpa_keys() -> None:
    code = "83857930000879766660"
    assert canonical_key(code) == canonical_key(nmpa_code_uri(code)) == "n:" + code
    assert canonical_key(nmpa_product_uri("8385793")) == "np:8385793"
    assert canonical_key(nmpa_lot_uri("8385793", "B/1:2")) == "nl:8385793/B%2F1%3A2"
    assert uri_for_key("nl:8385793/B%2F1%3A2") == nmpa_lot_uri("8385793", "B/1:2")
    assert parse_nmpa_uri(nmpa_lot_uri("8385793", "B/1:2")) == ("product", "8385793", "B/1:2")
    assert uri_for_key("n:" + code) == "urn:nmpa:code:" + code
    assert key_kind("np:8385793") == "class"
    # an issuer known only to the database is accepted inside the URI, not bare
    assert canonical_key("urn:nmpa:code:ZX12345678") == "n:ZX12345678"
    with pytest.raises(CodeError, match="not a recognised code"):
        canonical_key("ZX12345678")


def test_opaque_uris() -> None:
    assert canonical_key("urn:uuid:3f9d") == "u:urn:uuid:3f9d"
    assert canonical_key("https://example.com/2024/01/15/x") == "u:https://example.com/2024/01/15/x"
    assert key_kind("u:urn:uuid:3f9d") == "opaque"


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("8385793000087976666", "wrong length 19, expected 20"),
        ("83857930000879766A60", "character 'A' not allowed"),
        ("urn:epc:id:sgtin:0614141.112345", "expected 3 dot-separated fields"),
        ("https://id.gs1.org/01/06901234567893/21/1", "bad check digit 3, expected 2"),
        ("(01)06901234567892(17)281301(21)1", "is not a date: month 13"),
        ("(01)06901234567892(77)1", "unknown AI (77)"),
        ("urn:nmpa:product:", "药品标识码: empty"),
        ("urn:foo bar", "whitespace"),
        ("7777", "not a recognised code"),
    ],
)
def test_key_errors(code: str, reason: str) -> None:
    with pytest.raises(CodeError, match=re.escape(reason)):
        canonical_key(code)
