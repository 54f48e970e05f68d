"""The containerised testbed's pure parts: rendered Slurm files, image input hashes, apt mirror lookup, SSH names."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bwvisu_site.gateway import bwvisu_forward
from containers import images
from containers.slurmconf import CGROUP_CONF, compute_hostnames, render_files, render_slurm_conf
from containers.sshkeys import host_pattern, known_hosts_line
from containers.testbed import PORT_MAX, PORT_MIN, TestbedSpec, forward_config

pytestmark = pytest.mark.unit


def test_slurm_conf_lists_every_compute_node_and_the_container_settings() -> None:
    conf = render_slurm_conf(3)
    assert "NodeName=compute[1-3] " in conf
    for setting in (
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "ReturnToService=2",
        "SlurmdParameters=config_overrides",
        "SlurmctldHost=controller",
    ):
        assert setting in conf.splitlines()
    assert "NodeName=compute1 " in render_slurm_conf(1)
    assert compute_hostnames(3) == ["compute1", "compute2", "compute3"]


def test_root_may_not_run_jobs() -> None:
    assert "\nDisableRootJobs=YES\n" in render_slurm_conf(2)


def test_the_gateways_forward_config_is_the_runners_port_range_and_the_cluster_network() -> None:
    limits = bwvisu_forward.parse_config(forward_config("172.30.0.0/16"))
    assert (limits.port_min, limits.port_max) == (PORT_MIN, PORT_MAX)
    assert [str(n) for n in limits.networks] == ["172.30.0.0/16"]
    assert (limits.dnat_chain, limits.snat_chain) == ("BWVISU", "BWVISU-POST")


def test_slurm_conf_needs_a_compute_node() -> None:
    with pytest.raises(ValueError, match="at least one compute node"):
        render_slurm_conf(0)


def test_cluster_files_travel_as_base64_environment() -> None:
    files = render_files(2, munge_key=b"k" * 1024)
    env = files.environment()
    assert base64.b64decode(env["MUNGE_KEY_B64"]) == b"k" * 1024
    assert base64.b64decode(env["SLURM_CONF_B64"]).decode() == files.slurm_conf
    assert "CgroupPlugin=cgroup/v1" in base64.b64decode(env["CGROUP_CONF_B64"]).decode() == CGROUP_CONF
    assert render_files(1).munge_key != render_files(1).munge_key


def test_folder_hash_changes_with_content_and_parent(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    first = images.folder_hash(tmp_path, "parent-a")
    assert images.folder_hash(tmp_path, "parent-a") == first
    assert images.folder_hash(tmp_path, "parent-b") != first
    (tmp_path / "Dockerfile").write_text("FROM y\n")
    assert images.folder_hash(tmp_path, "parent-a") != first


def test_the_hash_covers_the_extra_folders_under_their_context_names(tmp_path: Path) -> None:
    role, site = tmp_path / "role", tmp_path / "site-files"
    role.mkdir()
    site.mkdir()
    (role / "Dockerfile").write_text("FROM x\n")
    (site / "sudoers").write_text("rule\n")
    first = images.folder_hash(role, "p", ((site, "site"),))
    assert first != images.folder_hash(role, "p")
    assert first != images.folder_hash(role, "p", ((site, "other"),))
    (site / "sudoers").write_text("another rule\n")
    assert images.folder_hash(role, "p", ((site, "site"),)) != first


def test_the_command_and_gateway_images_take_in_the_shipped_site_files(tmp_path: Path) -> None:
    hashes = images.input_hashes()
    assert set(hashes) == {"base", *(spec.role for spec in images.IMAGES)}
    assert images.tag_for("gateway") == f"bwvisu-testbed/gateway:{hashes['gateway']}"
    assert images.tag_for("base") == images.BASE_TAG
    gateway = next(spec for spec in images.IMAGES if spec.role == "gateway")
    context = images.build_context(gateway, tmp_path / "ctx", "bwvisu-testbed/common:0123abcd")
    assert (context / "site" / "bwvisu_forward.py").read_bytes() == (
        images.REPO_ROOT / "bwvisu_site" / "gateway" / "bwvisu_forward.py"
    ).read_bytes()
    assert (context / "site" / "sudoers").is_file()
    dockerfile = (context / "Dockerfile").read_text()
    assert "FROM bwvisu-testbed/common:0123abcd\n" in dockerfile
    assert "bwvisu-testbed/common:latest" not in dockerfile
    command = next(spec for spec in images.IMAGES if spec.role == "command")
    assert (images.build_context(command, tmp_path / "cmd", "p:1") / "site" / "bwvisu_slurm_as.py").is_file()


def test_every_role_folder_has_a_dockerfile_and_parents_come_first() -> None:
    seen = {"base"}
    for spec in images.IMAGES:
        assert (images.HERE / spec.role / "Dockerfile").is_file()
        assert spec.parent in seen
        seen.add(spec.role)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "debian.sources",
            "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n",
        ),
        ("sources.list", "# comment\ndeb [arch=amd64] http://mirror.example/debian bookworm main\n"),
    ],
)
def test_debian_mirror_is_read_from_apt_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str
) -> None:
    source = tmp_path / name
    source.write_text(text)
    monkeypatch.setattr(images, "apt_source_files", lambda: [source])
    assert images.debian_mirror() == "http://mirror.example/debian"


def test_debian_mirror_missing_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "apt_source_files", list)
    with pytest.raises(images.ImageBuildError, match="no Debian mirror"):
        images.debian_mirror()


def test_known_hosts_names_non_default_ports_in_brackets() -> None:
    assert host_pattern("127.0.0.1", 2222) == "[127.0.0.1]:2222"
    assert host_pattern("10.0.0.5", 22) == "10.0.0.5"
    line = known_hosts_line(["[127.0.0.1]:2222", "gw1"], "ssh-ed25519 AAAAkey root@gw1")
    assert line == "[127.0.0.1]:2222,gw1 ssh-ed25519 AAAAkey"


def test_testbed_spec_bounds() -> None:
    with pytest.raises(ValueError, match="1 or 3"):
        TestbedSpec(etcd_members=2)
    with pytest.raises(ValueError, match="at least one"):
        TestbedSpec(gateways=0)
