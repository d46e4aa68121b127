"""Property-based fuzzing of the site loader: it returns a site or refuses with file:line.

Valid site files are mutated three ways (bytes flipped, inserted, deleted; YAML structure
reshaped; hostile values put in place of good ones) and the loader must, for every case, either
return a ``SiteConfig`` or raise ``SourceFileError`` whose every problem names the file (and a
line, unless the file as a whole is refused), within ``CASE_LIMIT_S``. Any other exception is
a defect.

The suite runs ``CC_SITE_FUZZ_EXAMPLES`` cases per strategy (default 700). A long run:

    CC_SITE_FUZZ_EXAMPLES=35000 CC_SITE_FUZZ_REPORT=var/site-fuzz.json nice -n 19 \\
        .venv/bin/python -m pytest tests/controlcenter/site/test_site_fuzz.py \\
        -p no:cacheprovider --timeout 0 -q

writes the number of cases, how many loaded, the slowest case and the total time to the report.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlcenter.site.config import SiteConfig, load_site
from controlcenter.site.yamlsource import SourceFileError
from tests.controlcenter.site.site_samples import SEEDS

EXAMPLES = int(os.environ.get("CC_SITE_FUZZ_EXAMPLES", "700"))
REPORT = os.environ.get("CC_SITE_FUZZ_REPORT")
CASE_LIMIT_S = 2.0

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # each case is timed below against CASE_LIMIT_S, on the loader alone
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@dataclass(slots=True)
class FuzzTally:
    """What the fuzzer saw, for the long run's report."""

    cases: int = 0
    loaded: int = 0
    refused: int = 0
    slowest_s: float = 0.0
    slowest_cpu_s: float = 0.0
    slowest_cpu_without_gc_s: float = 0.0
    collector_s: float = 0.0
    slowest_case: bytes = b""
    started: float = field(default_factory=time.monotonic)


TALLY = FuzzTally()


_COLLECTION_STARTS: list[float] = []


def _time_collector(phase: str, _info: dict[str, int]) -> None:
    """Add the garbage collector's passes to ``TALLY.collector_s`` (a ``gc.callbacks`` hook)."""
    if phase == "start":
        _COLLECTION_STARTS.append(time.process_time())
    elif _COLLECTION_STARTS:
        TALLY.collector_s += time.process_time() - _COLLECTION_STARTS.pop()


@pytest.fixture(scope="module")
def case_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One directory for every case (a site file is rewritten per case)."""
    # Hypothesis keeps a large heap over a long run; a full collection of it can fall inside a
    # case's timing. It is measured apart, to tell the loader's time from the harness's.
    gc.callbacks.append(_time_collector)
    try:
        yield tmp_path_factory.mktemp("fuzz")
    finally:
        gc.callbacks.remove(_time_collector)
    if REPORT:
        Path(REPORT).parent.mkdir(parents=True, exist_ok=True)
        report = {
            "cases": TALLY.cases,
            "loaded": TALLY.loaded,
            "refused_with_file_and_line": TALLY.refused,
            "other_exceptions": 0,
            "slowest_case_s": round(TALLY.slowest_s, 4),
            "slowest_case_cpu_s": round(TALLY.slowest_cpu_s, 4),
            "slowest_case_cpu_without_gc_s": round(TALLY.slowest_cpu_without_gc_s, 4),
            "slowest_case_start": TALLY.slowest_case[:120].decode("utf-8", "replace"),
            "duration_s": round(time.monotonic() - TALLY.started, 1),
        }
        Path(REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def load_case(directory: Path, data: bytes) -> None:
    """Load ``data`` as a site file; fail on anything but a site or a located refusal."""
    path = directory / "site.yaml"
    path.write_bytes(data)
    started = time.monotonic()
    started_cpu = time.process_time()
    collector_before = TALLY.collector_s
    try:
        site = load_site(path)
    except SourceFileError as err:
        elapsed = time.monotonic() - started
        assert err.problems
        for problem in err.problems:
            assert problem.file == str(path)
            assert problem.line is None or 1 <= problem.line <= data.count(b"\n") + 1, problem
            assert str(problem).startswith(f"{path}:")
        TALLY.refused += 1
    else:
        elapsed = time.monotonic() - started
        assert isinstance(site, SiteConfig)
        TALLY.loaded += 1
    # Wall time is what the operator waits; processor time tells a slow input from a case that
    # merely waited for the CPU on a busy machine.
    cpu = time.process_time() - started_cpu
    TALLY.cases += 1
    TALLY.slowest_cpu_s = max(TALLY.slowest_cpu_s, cpu)
    without_gc = cpu - (TALLY.collector_s - collector_before)
    TALLY.slowest_cpu_without_gc_s = max(TALLY.slowest_cpu_without_gc_s, without_gc)
    if elapsed > TALLY.slowest_s:
        TALLY.slowest_s, TALLY.slowest_case = elapsed, data
    assert elapsed < CASE_LIMIT_S, f"{elapsed:.2f} s for {data[:200]!r}"


seeds = st.sampled_from([seed.encode("utf-8") for seed in SEEDS])


@st.composite
def byte_mutations(draw: st.DrawFn) -> bytes:
    """A seed with a few bytes flipped, inserted, deleted or repeated."""
    data = bytearray(draw(seeds))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(["flip", "insert", "delete", "repeat", "set"]))
        if operation == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del data[position : position + draw(st.integers(1, 16))]
        elif operation == "repeat":
            chunk = data[position : position + draw(st.integers(1, 64))]
            data[position:position] = chunk * draw(st.integers(1, 4))
        elif operation == "set" and position < len(data):
            data[position] = draw(st.sampled_from(b"\x00\t\n\r :-[]{},&*!|>'\"%@`#?\xff\xc3"))
    return bytes(data)


# Fragments of YAML syntax and hostile values that hand-made bad files found effective.
HOSTILE_VALUES = [
    ".nan",
    ".inf",
    "-.inf",
    "1e999",
    "-0",
    "0x1F",
    "0o17",
    "1_000",
    "1:30:00",
    "~",
    "null",
    "yes",
    "!!int abc",
    "!!bool abc",
    "!!float x",
    "!!timestamp 2020-02-30",
    "2020-02-30",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!python/object:os.system x",
    "!custom x",
    "!<tag:x> y",
    "*undefined",
    "&a",
    "&a [*a]",
    "&a {b: *a}",
    "[",
    "{",
    "]",
    "{a: 1}",
    "[1, [2, [3]]]",
    "? [a]",
    "<<: {a: 1}",
    "'",
    '"',
    '"\\0"',
    '"\\x07"',
    '"\\ud800"',
    "|",
    ">-",
    "%YAML 1.1",
    "---",
    "...",
    "@",
    "`",
    "/etc/shadow",
    "../../../etc/passwd",
    "/dev/zero",
    "var/../../x",
    "9" * 5000,
    "'" + "9" * 5000 + "'",
    "1" + "0" * 400 + ".0",
    "hr:" + "9" * 5000 + ":int16",
    "hr:00000000000000000001:int16",
    "coil:0",
    "hr:0:float64",
    "ir:3.15",
    "hr:65535:float32",
    "ns=2;s=" + "x" * 300,
    "ns=99999999999;i=1",
    "i=-1",
    "g=zz",
    "b=!!!",
    "analog-input:99999999",
    "analog-input:3/" + "x" * 100,
    "Europe/../../etc/passwd",
    "x" * 10_000,
    "é",
    "\u2028",
    "\ufeff",
    "💧",
    '!!int ""',
    "!!float _",
    "!!int +",
    "!!seq x",
    "!!map x",
    "!!str [a]",
    "!!null {a: 1}",
    "!!bool ''",
]
CORE_TAGS = ["!!int", "!!float", "!!bool", "!!null", "!!str", "!!seq", "!!map", "!!timestamp", "!"]
HOSTILE_LINES = [
    "x: &a [a, a, a, a, a, a, a, a, a, a]\ny: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "z: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nw: [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
    "? [a, b]\n: c",
    "<<: *nowhere",
    "deep: " + "[" * 200 + "]" * 200,
    "deep: " + "{a: " * 100 + "1" + "}" * 100,
    "---",
    "%TAG ! tag:example.com,2000:",
    "\t- tab",
    "site: again",
]


@st.composite
def structure_mutations(draw: st.DrawFn) -> bytes:
    """A seed with lines deleted, repeated, swapped, re-indented or hostile lines inserted."""
    lines = draw(seeds).decode("utf-8").split("\n")
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        operation = draw(
            st.sampled_from(["delete", "repeat", "swap", "indent", "dedent", "insert", "move"])
        )
        if operation == "delete" and len(lines) > 1:
            del lines[index]
        elif operation == "repeat":
            lines.insert(index, lines[index])
        elif operation == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        elif operation == "indent":
            lines[index] = " " * draw(st.integers(1, 4)) + lines[index]
        elif operation == "dedent":
            lines[index] = lines[index].lstrip(" ")
        elif operation == "insert":
            indent = len(lines[index]) - len(lines[index].lstrip(" "))
            hostile = draw(st.sampled_from(HOSTILE_LINES))
            lines.insert(index, "\n".join(" " * indent + part for part in hostile.split("\n")))
        elif operation == "move":
            lines.append(lines.pop(index))
    return "\n".join(lines).encode("utf-8")


@st.composite
def value_mutations(draw: st.DrawFn) -> bytes:
    """A seed with the values of some keys (or list items) replaced by hostile values."""
    lines = draw(seeds).decode("utf-8").split("\n")
    candidates = [i for i, line in enumerate(lines) if ":" in line or line.lstrip().startswith("-")]
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.sampled_from(candidates))
        line = lines[index]
        value = draw(
            st.one_of(
                st.sampled_from(HOSTILE_VALUES),
                st.text(max_size=40),
                st.builds("{} {}".format, st.sampled_from(CORE_TAGS), st.text(max_size=8)),
                st.builds(
                    "{} {}".format, st.sampled_from(CORE_TAGS), st.text(max_size=8).map(json.dumps)
                ),
                st.integers().map(str),
                st.floats().map(repr),
            )
        )
        key, colon, _ = line.partition(": ")
        lines[index] = f"{key}: {value}" if colon else f"{line} {value}"
    return "\n".join(lines).encode("utf-8", errors="surrogatepass")


@pytest.mark.timeout(max(120, EXAMPLES // 10))
@FUZZ
@given(data=byte_mutations())
def test_byte_mutations_load_or_are_refused_with_file_and_line(
    case_directory: Path, data: bytes
) -> None:
    load_case(case_directory, data)


@pytest.mark.timeout(max(120, EXAMPLES // 10))
@FUZZ
@given(data=structure_mutations())
def test_structure_mutations_load_or_are_refused_with_file_and_line(
    case_directory: Path, data: bytes
) -> None:
    load_case(case_directory, data)


@pytest.mark.timeout(max(120, EXAMPLES // 10))
@FUZZ
@given(data=value_mutations())
def test_hostile_values_load_or_are_refused_with_file_and_line(
    case_directory: Path, data: bytes
) -> None:
    load_case(case_directory, data)
