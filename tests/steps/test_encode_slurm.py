"""Sharded encoding on a real one-node Slurm cluster (Debian's slurmctld, slurmd and munge), then a mine
that finds every shard in the cache.

Opt-in (marker ``cluster``): it installs packages and starts daemons, so it runs only where
``PREP_TEST_CLUSTER=1`` says so (``.ci/run`` does); as root, where the packages are installed or
installable; skipped with the reason elsewhere."""

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.cluster, pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("PREP_TEST_CLUSTER") != "1",
                                 reason="starts Slurm daemons: set PREP_TEST_CLUSTER=1 to run it (.ci/run does)")]

PACKAGES = ["slurmctld", "slurmd", "munge"]


def _installed() -> bool:
    return all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "munged", "sinfo", "sbatch"))


def _install() -> str | None:
    """Install the packages with apt; None on success, else why not."""
    if _installed():
        return None
    if not shutil.which("apt-get"):
        return "slurm is not installed and there is no apt-get to install it"
    result = subprocess.run(["apt-get", "install", "-y", "-q", *PACKAGES], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if result.returncode != 0 or not _installed():
        return f"apt-get install {' '.join(PACKAGES)} failed: {result.stderr[-300:]}"
    return None


def _node_state() -> str:
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return result.stdout.strip() if result.returncode == 0 else ""


def _start_cluster() -> list[str]:
    """slurm.conf for this host, a munge key, then munged, slurmctld and slurmd; wait for an idle node.

    Returns the daemons this call started (the fixture stops them afterwards)."""
    started = []
    host = socket.gethostname()
    memory_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
    for folder in ("/etc/slurm", "/var/spool/slurmctld", "/var/spool/slurmd", "/var/log/slurm", "/run/munge"):
        Path(folder).mkdir(parents=True, exist_ok=True)
    Path("/etc/slurm/slurm.conf").write_text(f"""ClusterName=prep-test
SlurmctldHost={host}
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmUser=root
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName={host} CPUs={os.cpu_count()} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(os.urandom(1024))
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    shutil.chown("/run/munge", "munge", "munge")
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        subprocess.run(["runuser", "-u", "munge", "--", "munged", "--force"], check=True, timeout=30)
        started.append("munged")
    for daemon in ("slurmctld", "slurmd"):
        if subprocess.run(["pgrep", "-x", daemon], capture_output=True).returncode != 0:
            subprocess.run([daemon], check=True, timeout=30)
            started.append(daemon)
    deadline = time.time() + 60
    while time.time() < deadline:
        if _node_state() in ("idle", "mixed"):
            return started
        time.sleep(1)
    raise RuntimeError(f"the Slurm node did not become idle (sinfo: {_node_state()!r})")


@pytest.fixture(scope="module")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.skip("a one-node Slurm cluster needs root (to install and start slurmctld, slurmd, munge)")
    reason = _install()
    if reason:
        pytest.skip(reason)
    try:
        started = _start_cluster()
    except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
        pytest.skip(f"could not start a one-node Slurm cluster: {exc}")
    yield "debug"
    for daemon in reversed(started):  # leave the machine as we found it
        subprocess.run(["pkill", "-x", daemon], capture_output=True)


def test_sharded_encode_on_slurm_then_mine_encodes_nothing(slurm_cluster, tmp_path):
    cache = tmp_path / "cache"
    result = run_cli("-m", "step=encode", "shard.index=0,1,2", "shard.count=3", "encode_chunk=50",
                     f"cache_dir={cache}", "hydra/launcher=prep_slurm", f"hydra.launcher.partition={slurm_cluster}",
                     "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=20",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads((tmp_path / "sweep" / str(i) / "summary.json").read_text()) for i in range(3)]
    assert [s["shard"]["chunks"] for s in summaries] == [[0, 3], [1, 4], [2]]
    assert sum(s["encoded"]["passages"] for s in summaries) == 234
    # each job ran under Slurm: submitit kept its logs under the sweep folder, one folder per job id
    assert len(list((tmp_path / "sweep" / ".submitit").glob("*_*"))) >= 3
    mined = run_cli("step=mine", "encode_chunk=50", f"cache_dir={cache}", f"run_dir={tmp_path / 'mine'}", cwd=tmp_path)
    assert mined.returncode == 0, mined.stderr[-3000:]
    summary = json.loads((tmp_path / "mine" / "summary.json").read_text())
    assert summary["encoded"]["passages"] == 0
