"""Engineering units as OPC UA ``EUInformation`` (OPC UA Part 8, 5.6.3).

Part 8 ties EUInformation to UNECE Recommendation 20 ("Codes for Units of Measure Used in
International Trade"): ``NamespaceUri`` is the CEFACT namespace and ``UnitId`` packs the
unit's common code, one ASCII byte per character, into an Int32. A unit without a common code
(e.g. NTU) carries ``UnitId`` -1, which Part 8 reserves for "no UnitId available", and keeps
its display name so operators still read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from asyncua import ua

UNECE_NAMESPACE_URI = "http://www.opcfoundation.org/UA/units/un/cefact"
"""The namespace Part 8 (5.6.3) names for UNECE Recommendation 20 units."""

NO_UNIT_ID = -1
"""Part 8 5.6.3: the UnitId of a unit that has no UNECE common code."""


@dataclass(frozen=True, slots=True)
class UneceUnit:
    """One unit: its UNECE common code and the name Part 8 shows as its description."""

    common_code: str
    name: str


UNECE_UNITS: dict[str, UneceUnit] = {
    "m": UneceUnit("MTR", "metre"),
    "m3": UneceUnit("MTQ", "cubic metre"),
    "m3/h": UneceUnit("MQH", "cubic metre per hour"),
    "m/s": UneceUnit("MTS", "metre per second"),
    "bar": UneceUnit("BAR", "bar"),
    "kPa": UneceUnit("KPA", "kilopascal"),
    "%": UneceUnit("P1", "percent"),
    "degC": UneceUnit("CEL", "degree Celsius"),
    "K": UneceUnit("KEL", "kelvin"),
    "W": UneceUnit("WTT", "watt"),
    "kW": UneceUnit("KWT", "kilowatt"),
    "MW": UneceUnit("MAW", "megawatt"),
    "kWh": UneceUnit("KWH", "kilowatt hour"),
    "MWh": UneceUnit("MWH", "megawatt hour"),
    "lux": UneceUnit("LUX", "lux"),
    "ppm": UneceUnit("59", "part per million"),
    "A": UneceUnit("AMP", "ampere"),
    "V": UneceUnit("VLT", "volt"),
    "Hz": UneceUnit("HTZ", "hertz"),
    "mg/L": UneceUnit("M1", "milligram per litre"),
    "s": UneceUnit("SEC", "second"),
    "h": UneceUnit("HUR", "hour"),
    "rpm": UneceUnit("RPM", "revolutions per minute"),
}
"""Units the simulated city uses, keyed by the ASCII symbol its points carry."""


def unit_id(common_code: str) -> int:
    """The Part 8 UnitId of a UNECE common code: its ASCII bytes packed big-endian."""
    if not 1 <= len(common_code) <= 3 or not common_code.isascii():
        raise ValueError(f"UNECE common code {common_code!r} must be 1 to 3 ASCII characters")
    packed = 0
    for char in common_code:
        packed = (packed << 8) | ord(char)
    return packed


def eu_information(symbol: str) -> ua.EUInformation:
    """The EUInformation of a unit symbol; UnitId -1 for a unit without a UNECE code."""
    unit = UNECE_UNITS.get(symbol)
    return ua.EUInformation(
        NamespaceUri=UNECE_NAMESPACE_URI,
        UnitId=NO_UNIT_ID if unit is None else unit_id(unit.common_code),
        DisplayName=ua.LocalizedText(symbol),
        Description=ua.LocalizedText(symbol if unit is None else unit.name),
    )
