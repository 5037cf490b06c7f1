"""Cache keys, hits and misses, and entries that are corrupt or half-written."""

import numpy as np
import pytest

from prep.cache import embeddings, identity
from prep.cache.identity import fingerprint, model_fingerprint, pair_key, texts_fingerprint
from prep.cache.store import Cache, ScoreEntries, SearchEntries
from prep.io.jsonl import read_jsonl
from prep.io.paths import SAMPLE_TRAIN
from prep.steps import mine
from prep.timing import PhaseTimer
from tests.conftest import compose_config, write_jsonl


def test_texts_fingerprint_depends_on_every_text_and_the_order():
    base = texts_fingerprint(["a", "b"])
    assert base == texts_fingerprint(["a", "b"])
    for other in (["b", "a"], ["a", "b", ""], ["ab"], ["a", "c"]):
        assert texts_fingerprint(other) != base
    assert pair_key("ab", "c") != pair_key("a", "bc")


def test_model_fingerprint_reads_the_files_not_the_name(tmp_path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text('{"layers": 2}')
    assert model_fingerprint(str(tmp_path / "one")) == model_fingerprint(str(tmp_path / "two"))
    (tmp_path / "three").mkdir()
    (tmp_path / "three" / "config.json").write_text('{"layers": 3}')
    assert model_fingerprint(str(tmp_path / "three")) != model_fingerprint(str(tmp_path / "one"))


KEY_CHANGES = [
    "miner.model_class=encoder-only-m3", "miner.pooling_method=cls", "miner.normalize_embeddings=false",
    "miner.passage_max_length=128", "miner.query_instruction_for_retrieval=Q: ",
    "miner.passage_instruction_for_retrieval=P: ", "cache_dtype=float16",
]


@pytest.mark.parametrize("change", KEY_CHANGES)
def test_each_input_of_the_embedding_key_changes_it(change):
    def key(*overrides):
        cfg = compose_config(list(overrides))
        encoder = embeddings.CachedEncoder(cfg.miner, cfg.hardware, Cache(None), PhaseTimer(), cfg.cache_dtype)
        return encoder.key("passages", ["a passage"])

    assert key() == key()
    assert key(change) != key()
    # the dtype too (the default, auto, depends on the CPU, so both are named)
    assert key("hardware.use_bf16=true") != key("hardware.use_bf16=false")


@pytest.mark.parametrize("change", ["miner.batch_size=8", "hardware.max_batch_tokens=4096",
                                    "hardware.pad_to_multiple_of=16"])
def test_the_shape_of_the_passes_is_part_of_the_key(change):
    """The padded length follows pad_to_multiple_of, the rows of a pass batch_size and max_batch_tokens: where a
    backend's kernels follow the row count, a vector's last bits do too, so entries made in other passes are not
    reused."""
    def key(*overrides):
        cfg = compose_config(list(overrides))
        return fingerprint(identity.embedder_identity(cfg.miner, cfg.hardware))

    assert key(change) != key()


def test_entries_round_trip_and_corrupt_ones_are_rebuilt(tmp_path, caplog):
    cache = Cache(tmp_path)
    assert cache.get("embeddings", "abcd") is None
    cache.put("embeddings", "abcd", {"embeddings": np.arange(6, dtype=np.float32).reshape(2, 3)})
    np.testing.assert_array_equal(cache.get("embeddings", "abcd")["embeddings"], [[0, 1, 2], [3, 4, 5]])
    assert (cache.hits, cache.misses) == (1, 1)
    entry = tmp_path / "embeddings" / "ab" / "abcd.npz"
    entry.write_bytes(entry.read_bytes()[:40])  # a truncated entry
    assert cache.get("embeddings", "abcd") is None
    assert "does not load" in caplog.text and not entry.exists()
    # a write killed before its rename leaves only a temporary file, which is never read
    (entry.parent / ".abcd.123.tmp").write_bytes(b"half")
    assert cache.get("embeddings", "abcd") is None


def test_disabled_cache_stores_nothing(tmp_path):
    cache = Cache(tmp_path, enabled=False)
    scores = ScoreEntries(cache, {"teacher": "t"})
    cache.put("embeddings", "abcd", {"x": np.zeros(1)})
    scores.add([b"0" * 16], [1.0])
    assert cache.get("embeddings", "abcd") is None and scores.load() == {}
    assert not any(tmp_path.iterdir())


def test_search_results_of_a_deeper_search_serve_a_shallower_one(tmp_path):
    searches = SearchEntries(Cache(tmp_path), {"backend": "torch"})
    similarities = np.array([[0.9, 0.5, 0.1]], dtype=np.float32)
    ids = np.array([[4, 2, 7]])
    searches.put("k", similarities, ids)
    found = searches.get("k", 2)
    np.testing.assert_array_equal(found[1], [[4, 2]])
    assert searches.get("k", 4) is None


def test_score_shards_survive_a_corrupt_neighbour(tmp_path):
    scores = ScoreEntries(Cache(tmp_path), {"teacher": "t"})
    scores.add([pair_key("q", "p")], [0.25])
    (scores.folder() / "broken.npz").write_bytes(b"not a zip")
    assert scores.load() == {pair_key("q", "p"): 0.25}


def test_a_repeated_mine_run_encodes_nothing_and_gives_the_same_bytes(make_config, tmp_path):
    first = mine.run(make_config(f"output={tmp_path / 'a.jsonl'}"))
    second = mine.run(make_config(f"output={tmp_path / 'b.jsonl'}"))
    assert first["encoded"]["passages"] == 234 and first["cache"]["misses"] == 3
    assert second["encoded"] == {"queries": 0, "passages": 0} and second["cache"]["hits"] == 3
    assert second["seconds"]["encode"] == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    smaller = mine.run(make_config(f"output={tmp_path / 'c.jsonl'}", "miner.range_for_sampling=2-50"))
    assert smaller["cache"]["misses"] == 0 and smaller["seconds"]["search"] == 0


def _another_value(kind, value):
    """A value of the field's type other than ``value``, for the identity tests."""
    import enum
    import types
    import typing

    options = [k for k in typing.get_args(kind) if k is not type(None)] if isinstance(kind, types.UnionType) else [kind]
    kind = options[0]
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return next(member for member in kind if member != value)
    if kind is bool:
        return not value
    if kind is int:
        return (value or 0) + 1
    if kind is float:
        return (value or 0.0) + 0.125
    if kind is str:
        return (value or "") + "x"
    if typing.get_origin(kind) is list:
        return [*(value or []), 3]
    return ["changed", value]  # Any


def _identity_cases(schema, ignored):
    import dataclasses
    import typing

    hints = typing.get_type_hints(schema)
    return [(f.name, hints[f.name], f.name not in ignored) for f in dataclasses.fields(schema)]


def _settings():
    from prep.config.settings import settings_of

    return settings_of(compose_config(["hardware.use_bf16=false", "reranker=cross_encoder",
                                       "reranker.model_name_or_path=/models/a-reranker"]))


@pytest.mark.parametrize("name, kind, counts", _identity_cases(
    __import__("prep.config.schema", fromlist=["MinerConfig"]).MinerConfig, identity.NOT_IN_EMBEDDINGS))
def test_every_miner_setting_changes_the_embedding_identity_unless_ignored(name, kind, counts):
    import dataclasses

    settings = _settings()
    changed = dataclasses.replace(settings.miner, **{name: _another_value(kind, getattr(settings.miner, name))})
    before = fingerprint(identity.embedder_identity(settings.miner, settings.hardware))
    after = fingerprint(identity.embedder_identity(changed, settings.hardware))
    assert (before != after) == counts


@pytest.mark.parametrize("name, kind, counts", _identity_cases(
    __import__("prep.config.schema", fromlist=["RerankerConfig"]).RerankerConfig,
    identity.NOT_IN_SCORES))
def test_every_reranker_setting_changes_the_score_identity_unless_ignored(name, kind, counts):
    import dataclasses

    from prep.cache.identity import reranker_identity

    settings = _settings()
    changed = dataclasses.replace(settings.reranker, **{name: _another_value(kind, getattr(settings.reranker, name))})
    before = fingerprint(reranker_identity(settings.reranker, settings.hardware))
    assert (fingerprint(reranker_identity(changed, settings.hardware)) != before) == counts


@pytest.mark.parametrize("index", ["flat", "ivf"])
def test_search_identity_counts_every_setting_but_the_ignored_ones(index):
    import dataclasses
    import typing

    from prep.cache.searches import APPROXIMATE_ONLY, NOT_IN_SEARCH, search_identity
    from prep.config.schema import MinerConfig

    miner = dataclasses.replace(_settings().miner, index=index)
    hints = typing.get_type_hints(MinerConfig)
    ignored = NOT_IN_SEARCH | (APPROXIMATE_ONLY if index == "flat" else set())
    before = fingerprint(search_identity(miner, "torch", False, 0))
    for field in dataclasses.fields(MinerConfig):
        if field.name == "index":
            continue
        changed = dataclasses.replace(miner, **{field.name: _another_value(hints[field.name],
                                                                          getattr(miner, field.name))})
        assert (fingerprint(search_identity(changed, "torch", False, 0)) != before) == (field.name not in ignored), \
            field.name
    assert fingerprint(search_identity(miner, "faiss", False, 0)) != before
    assert fingerprint(search_identity(miner, "torch", True, 0)) != before
    assert (fingerprint(search_identity(miner, "torch", False, 1)) != before) == (index != "flat")


def test_an_ignore_list_naming_no_setting_is_an_error():
    from prep.cache.identity import identity_of

    with pytest.raises(KeyError, match="batch_sise"):
        identity_of(_settings().miner, ignore={"batch_sise"})


def test_a_changed_identity_key_misses_the_cache_end_to_end(make_config, tmp_path):
    first = mine.run(make_config(f"output={tmp_path / 'a.jsonl'}", "miner.range_for_sampling=2-50"))
    again = mine.run(make_config(f"output={tmp_path / 'b.jsonl'}", "miner.range_for_sampling=2-50",
                                 "miner.trust_remote_code=true"))
    assert first["encoded"]["passages"] == again["encoded"]["passages"] == 234
    assert again["cache"]["hits"] == 0


@pytest.mark.parametrize("kind", ["embeddings", "search", "scores"])
def test_a_corrupt_entry_of_any_kind_is_rebuilt_in_the_same_run(make_config, tmp_path, caplog, kind):
    rows = write_jsonl(tmp_path / "train.jsonl", read_jsonl(SAMPLE_TRAIN)[:60])  # the teacher scores pair by pair
    common = ["encode_chunk=50", "miner.range_for_sampling=2-30", "miner.negative_number=5",
              "miner.teacher_filter=true", "miner.sampling_strategy=top", f"input={rows}"]
    mine.run(make_config(*common, f"output={tmp_path / 'first.jsonl'}"))
    entries = sorted((tmp_path / "cache" / kind).rglob("*.npz"))
    assert entries
    for entry in entries:
        entry.write_bytes(entry.read_bytes()[: len(entry.read_bytes()) // 2])
    again = mine.run(make_config(*common, f"output={tmp_path / 'again.jsonl'}"))
    assert (tmp_path / "first.jsonl").read_bytes() == (tmp_path / "again.jsonl").read_bytes()
    assert "does not load" in caplog.text
    # chunks are rebuilt when the run reads them (here the search is cached: those holding positives or fills)
    rebuilt = {"embeddings": again["encoded"]["passages"] >= 50, "search": again["seconds"]["search"] > 0,
               "scores": again["teacher_filter"]["pairs_scored"] == again["teacher_filter"]["pairs"]}
    assert rebuilt[kind], (again["encoded"], again["seconds"], again["teacher_filter"])
