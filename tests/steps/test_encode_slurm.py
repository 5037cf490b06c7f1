"""Sharded encoding on a real one-node Slurm cluster (Debian's slurmctld, slurmd and munge), then a mine
that finds every shard in the cache, and the same mine sharded by rows on the cluster and merged.

Opt-in (marker ``cluster``): it starts daemons, so it runs only where ``PREP_TEST_CLUSTER=1`` says so
(``.ci/run`` does, and installs the packages first). The cluster lives entirely in a temporary folder:
its own ``slurm.conf`` (``SLURM_CONF``), state, spool, logs and pid files, a munge daemon with its own key
and socket, and free ports, so a machine's own Slurm or munge is never read, changed or stopped. The
daemons run in the foreground as children of the test and are stopped by their pids. Needs root (slurmd
starts job steps as their user); skipped with the reason elsewhere."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.cluster, pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("PREP_TEST_CLUSTER") != "1",
                                 reason="starts Slurm daemons: set PREP_TEST_CLUSTER=1 to run it (.ci/run does)")]

TOOLS = ("slurmctld", "slurmd", "munged", "sinfo", "sbatch")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(root: Path) -> dict[str, str]:
    """slurm.conf and a munge key in ``root``; returns the environment that points Slurm's commands at them."""
    host = socket.gethostname()
    memory_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
    for folder in ("state", "spool", "log", "munge"):
        (root / folder).mkdir(mode=0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    socket_path = root / "munge" / "munge.socket"
    (root / "slurm.conf").write_text(f"""ClusterName=prep-test
SlurmctldHost={host}
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
AuthInfo=socket={socket_path}
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmUser=root
ReturnToService=2
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "log" / "slurmctld.log"}
SlurmdLogFile={root / "log" / "slurmd.log"}
NodeName={host} CPUs={os.cpu_count()} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    return {"SLURM_CONF": str(root / "slurm.conf")}


def node_state(env: dict[str, str]) -> str:
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30,
                            env={**os.environ, **env})
    return result.stdout.strip() if result.returncode == 0 else ""


def start_daemons(root: Path, env: dict[str, str]) -> list[subprocess.Popen]:
    """munged, slurmctld and slurmd in the foreground, as children of this process; waits for an idle node."""
    munge = root / "munge"
    commands = [
        ["munged", "--foreground", "--force", f"--key-file={munge / 'munge.key'}", f"--socket={munge / 'munge.socket'}",
         f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'seed'}"],
        ["slurmctld", "-D", "-i"],
        ["slurmd", "-D"],
    ]
    started = []
    for command in commands:
        started.append(subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                        stderr=open(root / "log" / f"{command[0]}.out", "w")))
        if command[0] == "munged":
            deadline = time.time() + 20
            while not (munge / "munge.socket").exists() and time.time() < deadline:
                time.sleep(0.1)
    deadline = time.time() + 60
    while time.time() < deadline:
        if node_state(env) in ("idle", "mixed"):
            return started
        if any(process.poll() is not None for process in started):
            break
        time.sleep(1)
    stop(started)
    logs = "".join(path.read_text(errors="replace")[-400:] for path in sorted((root / "log").glob("*")))
    raise RuntimeError(f"the Slurm node did not become idle (sinfo: {node_state(env)!r}); logs: {logs}")


def stop(processes: list[subprocess.Popen]) -> None:
    """Stop exactly the daemons this test started, by their pids."""
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in reversed(processes):
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a one-node Slurm cluster needs root (slurmd starts job steps as their user)")
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (Debian's slurmctld, slurmd, munge: .ci/run installs them)")
    root = tmp_path_factory.mktemp("slurm")
    root.chmod(0o700)
    env = write_config(root)
    try:
        started = start_daemons(root, env)
    except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
        pytest.skip(f"could not start a one-node Slurm cluster: {exc}")
    yield "debug", env
    stop(started)


def test_sharded_encode_on_slurm_then_mine_encodes_nothing(slurm_cluster, tmp_path):
    partition, env = slurm_cluster
    cache = tmp_path / "cache"
    result = run_cli("-m", "step=encode", "shard.index=0,1,2", "shard.count=3", "encode_chunk=50",
                     f"cache_dir={cache}", "hydra/launcher=prep_slurm", f"hydra.launcher.partition={partition}",
                     "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=20",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path, env_extra=env, timeout=600)
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
    # Then the rows, mined in two shards under Slurm from that cache, joined: the single run's file, byte for byte.
    parts = run_cli("-m", "step=mine", "shard.index=0,1", "shard.count=2", "encode_chunk=50", f"cache_dir={cache}",
                    "hydra/launcher=prep_slurm", f"hydra.launcher.partition={partition}",
                    "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=20",
                    f"hydra.sweep.dir={tmp_path / 'parts'}", cwd=tmp_path, env_extra=env, timeout=600)
    assert parts.returncode == 0, parts.stderr[-3000:]
    merged = run_cli("step=merge", f"input={tmp_path / 'parts'}", f"output={tmp_path / 'merged.jsonl'}",
                     f"run_dir={tmp_path / 'merge'}", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert (tmp_path / "merged.jsonl").read_bytes() == (tmp_path / "mine" / "mined.jsonl").read_bytes()
