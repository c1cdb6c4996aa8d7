"""Codes: NMPA trace codes (药品追溯码) and issuer rules, GS1 keys and check digits, EPC URIs,
Digital Link, element strings, the canonical key, issuing, bulk validation, barcodes.

The names below are the stable API other layers use.
"""

from yaolian.codes.digital_link import canonical_digital_link, digital_link
from yaolian.codes.epc import lgtin_uri, pgln_uri, sgln_uri, sgtin_uri, sscc_uri
from yaolian.codes.identity import canonical_key, key_kind, uri_for_key
from yaolian.codes.nmpa import nmpa_code_uri, nmpa_lot_uri, nmpa_product_uri
from yaolian.codes.registry import CodeRegistry, Product

__all__ = [
    "CodeRegistry",
    "Product",
    "canonical_digital_link",
    "canonical_key",
    "digital_link",
    "key_kind",
    "lgtin_uri",
    "nmpa_code_uri",
    "nmpa_lot_uri",
    "nmpa_product_uri",
    "pgln_uri",
    "sgln_uri",
    "sgtin_uri",
    "sscc_uri",
    "uri_for_key",
]
