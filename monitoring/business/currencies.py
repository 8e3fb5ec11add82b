"""ISO 4217 currency codes and their minor-unit exponents, for validating and formatting money.

A table of our own rather than a package: we need the *exponent* (JPY 0, EUR 2, BHD 3,
CLF 4) to turn integer minor units into a decimal string, and the packages that list
codes (pycountry) do not carry it. The table is ISO 4217 list one (currencies and funds
with a minor unit; precious metals, XDR and testing codes have none and are left out),
plus ANG, CUC and SLL, which were withdrawn recently but still appear in payment
providers' reports.
"""
from __future__ import annotations

_EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENT_4 = "CLF UYW"
_EXPONENT_2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL "
    "GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD "
    "LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN "
    "PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL "
    "THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
)

MINOR_UNIT_EXPONENTS: dict[str, int] = {
    code: exponent
    for exponent, codes in ((0, _EXPONENT_0), (2, _EXPONENT_2), (3, _EXPONENT_3), (4, _EXPONENT_4))
    for code in codes.split()
}


def is_currency(code: str) -> bool:
    """True for an ISO 4217 code we know, written in capitals (``EUR``, not ``eur``)."""
    return code in MINOR_UNIT_EXPONENTS


def parse_currency_list(raw: str) -> tuple[str, ...]:
    """``"EUR, GBP"`` -> ``("EUR", "GBP")``; ValueError naming the first code that is not ISO 4217."""
    codes = tuple(dict.fromkeys(code.strip() for code in raw.split(",") if code.strip()))
    for code in codes:
        if not is_currency(code):
            raise ValueError(f"expected comma-separated ISO 4217 codes in capitals such as EUR,GBP (not {code[:12]!r})")
    return codes


def format_minor_units(amount_minor: int, currency: str) -> str:
    """Integer minor units as an exact decimal string in the currency's own exponent.

    ``format_minor_units(123456, "EUR") == "1234.56"``, ``(500, "JPY") == "500"``,
    ``(1500, "BHD") == "1.500"``: integer arithmetic only, so no amount is ever rounded.
    """
    exponent = MINOR_UNIT_EXPONENTS[currency]
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**exponent)
    if exponent == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{exponent}d}"
