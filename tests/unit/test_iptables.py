"""iptables command parsing, rule identity, canonical ``-S``/``-L`` output and iptables' error texts."""

from __future__ import annotations

import shlex

import pytest

from simulator.commands import CommandContext
from simulator.gateway import HANDLERS, GatewayService
from simulator.iptables_command import execute, parse_command
from simulator.iptables_rules import TRY_HELP, VERSION, IptablesError, save_string
from simulator.iptables_table import Netfilter

pytestmark = pytest.mark.unit

BAD_RULE = "iptables: Bad rule (does a matching rule exist in that chain?)."
NO_CHAIN = "iptables: No chain/target/match by that name."


def run(nf: Netfilter, line: str) -> str:
    return execute(nf, parse_command(shlex.split(line))).stdout


def fails(nf: Netfilter, line: str) -> IptablesError:
    with pytest.raises(IptablesError) as info:
        execute(nf, parse_command(shlex.split(line)))
    return info.value


def rules(nf: Netfilter, chain: str = "") -> list[str]:
    return [line for line in run(nf, f"-t nat -S {chain}").splitlines() if line.startswith("-A")]


@pytest.fixture
def nf() -> Netfilter:
    table = Netfilter()
    run(table, "-t nat -N BWVISU")
    return table


def test_empty_nat_table_lists_policies_then_user_chains(nf: Netfilter) -> None:
    assert run(nf, "-t nat -S") == (
        "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n-N BWVISU\n"
    )
    assert run(nf, "-S") == "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"


def test_canonical_order_adds_tcp_match_and_host_mask(nf: Netfilter) -> None:
    run(
        nf,
        "-w -t nat -A BWVISU -p tcp --dport 50000 -d 10.0.0.1 -m comment --comment 'job 17' "
        "-j DNAT --to-destination 10.1.0.5:5900",
    )
    assert rules(nf) == [
        '-A BWVISU -d 10.0.0.1/32 -p tcp -m tcp --dport 50000 -m comment --comment "job 17" '
        "-j DNAT --to-destination 10.1.0.5:5900"
    ]


def test_match_order_follows_load_order_and_bare_comment_is_unquoted(nf: Netfilter) -> None:
    run(nf, "-t nat -A BWVISU -p tcp -m comment --comment job-17 -m tcp --dport 1 -j RETURN")
    run(nf, "-t nat -A BWVISU -s 10.0.0.0/8 -i eth0 -o eth1 -p tcp -j MASQUERADE")
    assert rules(nf) == [
        "-A BWVISU -p tcp -m comment --comment job-17 -m tcp --dport 1 -j RETURN",
        "-A BWVISU -s 10.0.0.0/8 -i eth0 -o eth1 -p tcp -j MASQUERADE",
    ]


def test_save_string_quotes_like_libxtables() -> None:
    assert save_string("job_1-a") == "job_1-a"
    assert save_string("job.1") == '"job.1"'
    assert save_string('say "hi"') == '"say \\"hi\\""'


def test_inversion_and_snat_and_network_address(nf: Netfilter) -> None:
    run(nf, "-t nat -A POSTROUTING ! -d 10.1.2.3/16 -j SNAT --to-source 10.0.0.1")
    assert rules(nf, "POSTROUTING") == ["-A POSTROUTING ! -d 10.1.0.0/16 -j SNAT --to-source 10.0.0.1"]


def test_insert_positions_and_delete_by_number(nf: Netfilter) -> None:
    for port in (1, 2, 3):
        run(nf, f"-t nat -A BWVISU -p tcp --dport {port} -j ACCEPT")
    run(nf, "-t nat -I BWVISU -p tcp --dport 9 -j ACCEPT")
    run(nf, "-t nat -I BWVISU 3 -p tcp --dport 8 -j ACCEPT")
    run(nf, "-t nat -I BWVISU 6 -p tcp --dport 7 -j ACCEPT")
    ports = [line.split("--dport ")[1].split()[0] for line in rules(nf)]
    assert ports == ["9", "1", "8", "2", "3", "7"]
    run(nf, "-t nat -D BWVISU 2")
    assert [line.split("--dport ")[1].split()[0] for line in rules(nf)] == ["9", "8", "2", "3", "7"]
    assert str(fails(nf, "-t nat -D BWVISU 6")) == "iptables: Index of deletion too big."
    assert str(fails(nf, "-t nat -I BWVISU 7 -j ACCEPT")) == "iptables: Index of insertion too big."


def test_many_inserts_at_one_place_keep_order(nf: Netfilter) -> None:
    run(nf, "-t nat -A BWVISU -p tcp --dport 1 -j ACCEPT")
    run(nf, "-t nat -A BWVISU -p tcp --dport 2 -j ACCEPT")
    for port in range(100, 140):  # enough to exhaust the order-key gap and force a relabel
        run(nf, f"-t nat -I BWVISU 2 -p tcp --dport {port} -j ACCEPT")
    ports = [int(line.split("--dport ")[1].split()[0]) for line in rules(nf)]
    assert ports == [1, *range(139, 99, -1), 2]


def test_check_and_delete_by_spec_remove_first_duplicate(nf: Netfilter) -> None:
    spec = "-p tcp --dport 5 -j DNAT --to-destination 10.1.0.1:1"
    run(nf, f"-t nat -A BWVISU {spec}")
    run(nf, "-t nat -A BWVISU -p tcp --dport 6 -j ACCEPT")
    run(nf, f"-t nat -A BWVISU {spec}")
    run(nf, f"-t nat -C BWVISU -m tcp {spec}")  # same rule, spelled with an explicit -m tcp
    run(nf, f"-t nat -D BWVISU {spec}")
    assert [r.split("--dport ")[1][0] for r in rules(nf)] == ["6", "5"]
    run(nf, f"-t nat -D BWVISU {spec}")
    err = fails(nf, f"-t nat -C BWVISU {spec}")
    assert (str(err), err.exit_status) == (BAD_RULE, 1)
    assert str(fails(nf, f"-t nat -D BWVISU {spec}")) == BAD_RULE


def test_comment_is_part_of_rule_identity(nf: Netfilter) -> None:
    run(nf, "-t nat -A BWVISU -p tcp --dport 5 -m comment --comment a -j ACCEPT")
    assert str(fails(nf, "-t nat -C BWVISU -p tcp --dport 5 -m comment --comment b -j ACCEPT")) == BAD_RULE


def test_chain_errors(nf: Netfilter) -> None:
    err = fails(nf, "-t nat -N BWVISU")
    assert (str(err), err.exit_status) == ("iptables: Chain already exists.", 1)
    for line in ("-t nat -A NOPE -j ACCEPT", "-t nat -F NOPE", "-t nat -X NOPE", "-t nat -D NOPE 1"):
        err = fails(nf, line)
        assert (str(err), err.exit_status) == (NO_CHAIN, 1)
    for line in ("-t nat -S NOPE", "-t nat -L NOPE -n"):  # iptables-nft's listing of a chain it cannot find
        err = fails(nf, line)
        assert (str(err), err.exit_status) == (
            f"{VERSION}: chain `NOPE' in table `nat' is incompatible, use 'nft' tool.",
            1,
        )
    busy = f"{VERSION}:  CHAIN_DEL failed (Device or resource busy): chain BWVISU"
    run(nf, "-t nat -A PREROUTING -j BWVISU")
    err = fails(nf, "-t nat -X BWVISU")  # referenced
    assert (str(err), err.exit_status) == (busy, 4)
    run(nf, "-t nat -D PREROUTING -j BWVISU")
    run(nf, "-t nat -A BWVISU -j ACCEPT")
    err = fails(nf, "-t nat -X BWVISU")  # not empty
    assert (str(err), err.exit_status) == (busy, 4)
    run(nf, "-t nat -F BWVISU")
    run(nf, "-t nat -X BWVISU")
    assert "-N BWVISU" not in run(nf, "-t nat -S")


def test_jump_needs_existing_chain_and_no_loops(nf: Netfilter) -> None:
    for line in ("-t nat -A PREROUTING -j MISSING", "-t nat -C PREROUTING -j MISSING"):
        err = fails(nf, line)
        assert (str(err), err.exit_status) == (f"{VERSION}: Chain 'MISSING' does not exist\n{TRY_HELP}", 2)
    run(nf, "-t nat -N OTHER")
    run(nf, "-t nat -A BWVISU -j OTHER")
    err = fails(nf, "-t nat -A OTHER -j BWVISU")
    assert (str(err), err.exit_status) == ("iptables: Too many levels of symbolic links.", 1)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-t nat -A BWVISU --bogus 1", 'unknown option "--bogus"'),
        ("-t nat -A BWVISU --dport 5 -j ACCEPT", 'unknown option "--dport"'),
        ("-t nat -A BWVISU --comment x", 'unknown option "--comment"'),
        ("-t nat -A BWVISU -m state --state NEW", "Couldn't load match `state':No such file or directory"),
        ("-t nat -A BWVISU -p tcp --dport 70000", "invalid port/service `70000' specified"),
        ("-t nat -A BWVISU -j DNAT", 'DNAT: option "--to-destination" must be specified\n'),
        ("-t nat -A BWVISU -p tcp --dport 5 -j DNAT --to-destination 10.0.0.1:70000", "Port `70000' not valid"),
        ("-t nat -A BWVISU -j ACCEPT -D BWVISU 1", "Cannot use -D with -A"),
        ("-t nat", "no command specified"),
        ("-t nat -N " + "X" * 29, f"chain name `{'X' * 29}' too long (must be under 29 chars)"),
        ("-t nat -A BWVISU -d not-an-ip -j ACCEPT", "host/network `not-an-ip' not found"),
    ],
)
def test_parameter_problems_exit_2_with_iptables_text(nf: Netfilter, line: str, message: str) -> None:
    err = fails(nf, line)
    assert err.exit_status == 2
    assert str(err) == (
        f"iptables v1.8.9 (nf_tables): {message}\nTry `iptables -h' or 'iptables --help' for more information."
    )


def test_what_iptables_nft_refuses_as_the_kernel_or_the_table_list_does(nf: Netfilter) -> None:
    err = fails(nf, "-t filter -A INPUT -p tcp --dport 5 -j DNAT --to-destination 10.0.0.1:5")
    assert (str(err), err.exit_status) == (f"{VERSION}:  RULE_APPEND failed (Invalid argument): rule in chain INPUT", 4)
    err = fails(nf, "-t nosuch -S")
    assert (str(err), err.exit_status) == (
        f"{VERSION}: table 'nosuch' does not exist\nPerhaps iptables or your kernel needs to be upgraded.",
        3,
    )


def test_flush_all_and_policy(nf: Netfilter) -> None:
    run(nf, "-t nat -A PREROUTING -j BWVISU")
    run(nf, "-t nat -A BWVISU -j ACCEPT")
    run(nf, "-t nat -F")
    assert rules(nf) == []
    run(nf, "-P FORWARD DROP")
    assert "-P FORWARD DROP" in run(nf, "-S")
    assert str(fails(nf, "-t nat -P BWVISU DROP")) == "iptables: Bad built-in chain name."


def test_filter_table_keeps_rules(nf: Netfilter) -> None:
    run(nf, "-A INPUT -p tcp --dport 22 -j ACCEPT")
    assert run(nf, "-S INPUT") == "-P INPUT ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"


def test_list_table_format(nf: Netfilter) -> None:
    run(nf, "-t nat -A PREROUTING -j BWVISU")
    run(nf, "-t nat -A BWVISU -p tcp --dport 50000 -m comment --comment j1 -j DNAT --to-destination 10.1.0.1:5900")
    out = run(nf, "-t nat -L BWVISU -n --line-numbers")
    assert out.splitlines() == [
        "Chain BWVISU (1 references)",
        "num  target     prot opt source               destination         ",
        "1    DNAT       6    --  0.0.0.0/0            0.0.0.0/0            tcp dpt:50000 /* j1 */ to:10.1.0.1:5900",
    ]
    listing = run(nf, "-t nat -L")
    assert listing.startswith("Chain PREROUTING (policy ACCEPT)\ntarget     prot opt source")
    assert "BWVISU     all  --  anywhere             anywhere            \n" in listing


def test_long_options_take_their_value_after_an_equals_sign(nf: Netfilter) -> None:
    assert run(nf, "--table=nat --list-rules BWVISU") == "-N BWVISU\n"


async def test_only_root_finds_iptables_and_save_lists_the_tables_written() -> None:
    service = GatewayService([])
    as_user = CommandContext(node=None, user="alice", resolve=str, services={"gateway": service})
    result = await HANDLERS["iptables"](as_user, ["iptables", "-t", "nat", "-S"], b"")
    assert (result.exit_status, result.stderr) == (127, "bash: line 1: iptables: command not found\n")
    assert (await service.iptables_save([])).stdout == ""  # no table exists before a first change
    await service.iptables(["-t", "nat", "-N", "BWVISU"])
    assert [line for line in (await service.iptables_save([])).stdout.splitlines() if line.startswith("*")] == ["*nat"]
