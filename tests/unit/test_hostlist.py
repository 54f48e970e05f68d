"""Slurm hostlist expansion and compression, on examples and as properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import BadRequest, HostlistError
from runner.slurm.hostlist import DEFAULT_MAX_HOSTS, compress, expand

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("hostlist", "hosts"),
    [
        ("gpu5", ["gpu5"]),
        ("vis[01-03,07],gpu5", ["vis01", "vis02", "vis03", "vis07", "gpu5"]),
        ("n[8-10]", ["n8", "n9", "n10"]),
        ("n[08-10]", ["n08", "n09", "n10"]),
        ("n[098-101]", ["n098", "n099", "n100", "n101"]),
        ("n[007]", ["n007"]),
        ("r[1-2]n[01-02]", ["r1n01", "r1n02", "r2n01", "r2n02"]),
        ("n[1-2]-ib0", ["n1-ib0", "n2-ib0"]),
        ("a[1,3],b[2-3],c", ["a1", "a3", "b2", "b3", "c"]),
        ("node.example_x-1", ["node.example_x-1"]),
        ("[1-2]x", ["1x", "2x"]),
        ("n[1-2],n2,n[2-3]", ["n1", "n2", "n3"]),
        ("", []),
    ],
)
def test_expand_examples(hostlist: str, hosts: list[str]) -> None:
    assert expand(hostlist) == hosts


@pytest.mark.parametrize(
    "hostlist",
    [
        "n[1-2",
        "n1-2]",
        "n[[1-2]]",
        "n[]",
        "n[1-]",
        "n[-2]",
        "n[a-b]",
        "n[3-1]",
        "n[1,,2]",
        "a,,b",
        "a,",
        ",a",
        "a b",
        "a;rm -rf",
        "-oProxyCommand",
        ".hidden",
        "n[1-2]]",
        "n[1 - 2]",
    ],
)
def test_expand_rejects_malformed(hostlist: str) -> None:
    with pytest.raises(HostlistError):
        expand(hostlist)


def test_hostlist_error_is_a_bad_request_with_a_code() -> None:
    with pytest.raises(BadRequest) as info:
        expand("n[")
    assert info.value.code == "invalid-hostlist"
    assert info.value.status == 422


def test_expand_refuses_more_than_max_before_building_names() -> None:
    # 10**12 names would never finish if built; the count is checked first
    with pytest.raises(HostlistError, match="more than 100000"):
        expand("n[0-999999999999]")
    with pytest.raises(HostlistError):
        expand("a[1-1000]b[1-1000]")
    with pytest.raises(HostlistError):
        expand("a[1-3],b[1-3]", max_hosts=5)
    assert len(expand("a[1-3],b[1-2]", max_hosts=5)) == 5
    assert DEFAULT_MAX_HOSTS == 100_000
    assert len(expand("n[1-100000]")) == 100_000


@pytest.mark.parametrize(
    ("hosts", "hostlist"),
    [
        (["vis01", "vis02", "vis03", "vis07", "gpu5"], "gpu5,vis[01-03,07]"),
        (["n9", "n10", "n11"], "n[9-11]"),
        (["n09", "n10"], "n[09-10]"),
        (["n1", "n01"], "n[01,1]"),
        (["n1-ib", "n2-ib"], "n[1-2]-ib"),
        (["n1-ib0", "n2-ib0"], "n1-ib0,n2-ib0"),
        (["login"], "login"),
        (["n3", "n1", "n2", "n2"], "n[1-3]"),
        (["r1n01", "r1n02", "r2n01"], "r1n[01-02],r2n01"),
        ([], ""),
    ],
)
def test_compress_examples(hosts: list[str], hostlist: str) -> None:
    assert compress(hosts) == hostlist


@pytest.mark.parametrize("host", ["", "a b", "n[1]", "a,b", "-x", "ü"])
def test_compress_rejects_bad_names(host: str) -> None:
    with pytest.raises(HostlistError):
        compress([host])


_hostnames = st.from_regex(r"[a-z][a-z0-9._-]{0,6}[0-9]{0,4}(-ib[0-9])?", fullmatch=True)


@given(st.lists(_hostnames, max_size=40))
@settings(max_examples=300, deadline=None)
def test_expand_of_compress_gives_back_the_same_names(hosts: list[str]) -> None:
    compressed = compress(hosts)
    expanded = expand(compressed)
    assert sorted(expanded) == sorted(set(hosts))
    # canonical: compressing again changes nothing, whatever the input order
    assert compress(expanded) == compressed
    assert compress(reversed(hosts)) == compressed


@st.composite
def _hostlists(draw: st.DrawFn) -> str:
    expressions = []
    for _ in range(draw(st.integers(1, 4))):
        parts = [draw(st.from_regex(r"[a-z][a-z-]{0,3}", fullmatch=True))]
        for _ in range(draw(st.integers(0, 2))):
            ranges = []
            for _ in range(draw(st.integers(1, 3))):
                lo = draw(st.integers(0, 120))
                width = draw(st.integers(1, 4))
                hi = lo + draw(st.integers(0, 12))
                ranges.append(f"{lo:0{width}d}" if hi == lo else f"{lo:0{width}d}-{hi}")
            parts.append(f"[{','.join(ranges)}]")
            parts.append(draw(st.from_regex(r"[a-z]{0,2}", fullmatch=True)))
        expressions.append("".join(parts))
    return ",".join(expressions)


@given(_hostlists())
@settings(max_examples=300, deadline=None)
def test_compress_of_expand_names_the_same_hosts(hostlist: str) -> None:
    hosts = expand(hostlist)
    assert len(hosts) == len(set(hosts))
    assert sorted(expand(compress(hosts))) == sorted(hosts)
