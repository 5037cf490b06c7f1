"""The number of tokens a model is meant to read, the default of every length key (docs/configuration.md, "Lengths").

sentence-transformers encodes with ``max_seq_length`` of the model's ``sentence_bert_config.json``
(all-MiniLM-L6-v2: 256, the length it was trained on), else with the tokenizer's ``model_max_length``
capped at the model's position embeddings. A length left null here is resolved the same way, else
falls back to 512 (FlagEmbedding's script default, the limit of BGE models anyway), so a model gives
the same embeddings as it gives anywhere else. A length set explicitly wins, but never past the
positions the model has: that is an error at start naming both numbers.

Only the model's small JSON files are read: a local folder's, or a hub model's from the Hugging Face
cache (downloaded when the hub is reachable and the file is not cached yet).

``huggingface_hub`` is imported inside the functions that use it: loading is slow, and a config error or ``--help``
answers without waiting for it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from prep.errors import UsageError
from prep.models.availability import looks_like_path

if TYPE_CHECKING:
    from prep.config.schema import Config, MinerConfig

log = logging.getLogger(__name__)

FALLBACK = 512  # FlagEmbedding's hn_mine.py default
# A tokenizer's model_max_length above this is transformers' "no limit" placeholder (1e30), not a length.
REAL_LIMIT = 1_000_000
# Models whose position ids start after the padding id (RoBERTa's scheme): max_position_embeddings 514 holds
# 512 tokens.
OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer",
                              "data2vec-text", "mpnet", "ibert", "markuplm", "roberta-prelayernorm"})


@dataclass(frozen=True)
class Length:
    """A resolved length: ``tokens`` and where the number came from (a key, a model file, or the fallback)."""

    tokens: int
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "from": self.source}


@dataclass(frozen=True)
class ModelLengths:
    """What a model's files say: its own length and the most tokens its position embeddings hold (None: no
    bound found, e.g. rotary positions without ``max_position_embeddings``)."""

    own: Length
    positions: int | None


def _read_json(name: str, filename: str, cache_dir: str | None) -> dict[str, Any] | None:
    """One JSON file of a model folder or hub model; None when the model has no such file (or no name: the model's
    own check says so)."""
    if not name:
        return None
    if looks_like_path(name):
        path = Path(name).expanduser() / filename
        found: str | None = str(path) if path.is_file() else None
    else:
        found = _hub_file(name, filename, cache_dir)
    if found is None:
        return None
    try:
        content = json.loads(Path(found).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(f"{found}: cannot read the model's {filename} ({error})") from None
    return content if isinstance(content, dict) else None


def _hub_file(name: str, filename: str, cache_dir: str | None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, filename, cache_dir=cache_dir)
    if isinstance(cached, str):
        return cached
    if cached is not None or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return None  # known to be absent, or not cached and the hub is off: the model has not got it here
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return hf_hub_download(name, filename, cache_dir=cache_dir)
    except EntryNotFoundError:
        return None
    except Exception as error:  # noqa: BLE001 - any other failure: the length cannot be known, say so
        raise UsageError(f"'{name}': cannot read its {filename} from the hub to find the model's own length "
                         f"({type(error).__name__}); set the length keys explicitly or pass a local folder") from None


@functools.lru_cache(maxsize=32)
def model_lengths(name: str, cache_dir: str | None = None) -> ModelLengths:
    """The model's own length and position limit, from ``sentence_bert_config.json``, ``tokenizer_config.json``
    and ``config.json`` (the order sentence-transformers reads them in)."""
    config = _read_json(name, "config.json", cache_dir) or {}
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        pad = config.get("pad_token_id")
        offset = (pad if isinstance(pad, int) else 1) + 1 if config.get("model_type") in OFFSET_POSITIONS else 0
        positions = positions - offset if positions > offset else positions
    else:
        positions = None
    sentence = _read_json(name, "sentence_bert_config.json", cache_dir) or {}
    own = sentence.get("max_seq_length")
    if isinstance(own, int) and own > 0:
        return ModelLengths(Length(own, "sentence_bert_config.json max_seq_length"), positions)
    tokenizer = _read_json(name, "tokenizer_config.json", cache_dir) or {}
    own = tokenizer.get("model_max_length")
    if isinstance(own, (int, float)) and 0 < own <= REAL_LIMIT:
        if positions is not None and own > positions:
            return ModelLengths(Length(positions, "config.json max_position_embeddings"), positions)
        return ModelLengths(Length(int(own), "tokenizer_config.json model_max_length"), positions)
    if positions is not None and positions < FALLBACK:
        return ModelLengths(Length(positions, "config.json max_position_embeddings"), positions)
    return ModelLengths(Length(FALLBACK, "default (FlagEmbedding's 512; the model states no length)"), positions)


def resolve(value: int | None, key: str, model: str, cache_dir: str | None = None) -> Length:
    """``key``'s length: ``value`` when set (checked against the model's positions), else the model's own."""
    found = model_lengths(model, cache_dir)
    if value is None:
        return found.own
    if found.positions is not None and value > found.positions:
        raise UsageError(f"{key}={value} is more tokens than the model '{model}' has positions for "
                         f"({found.positions}, config.json max_position_embeddings); pass {key}={found.positions} or "
                         f"less, or leave it unset for the model's own {found.own.tokens}")
    return Length(value, key)


def describe(lengths: dict[str, Length]) -> str:
    return ", ".join(f"{name} {length.tokens} tokens ({length.source})" for name, length in lengths.items())


@dataclass(frozen=True)
class Resolved:
    """Settings whose length keys hold numbers, and each number's source (``summary.json``'s ``lengths``)."""

    settings: Config
    lengths: dict[str, Length]

    def summary(self) -> dict[str, Any]:
        return {name: length.as_dict() for name, length in self.lengths.items()}


def encoder_lengths(miner: MinerConfig) -> dict[str, Length]:
    """The query and passage lengths of a bi-encoder's settings (``miner``, or the bi-encoder teacher's copy)."""
    return {side: resolve(getattr(miner, f"{side}_max_length"), f"miner.{side}_max_length",
                          miner.model_name_or_path, miner.cache_dir) for side in ("query", "passage")}


def with_own_lengths(miner: MinerConfig) -> MinerConfig:
    """``miner`` with numbers for its lengths: where embeddings are keyed and made (``CachedEncoder``), so an
    encoder built from unresolved settings (the Python API, a test) keys them as a step does."""
    if not dataclasses.is_dataclass(miner):  # a composed config's node (tests, the Python API)

        miner = OmegaConf.to_object(miner)
    if miner.query_max_length is not None and miner.passage_max_length is not None:
        return miner
    found = encoder_lengths(miner)
    return dataclasses.replace(miner, query_max_length=found["query"].tokens,
                               passage_max_length=found["passage"].tokens)


def miner_lengths(settings: Config) -> Resolved:
    """``miner.query_max_length`` and ``miner.passage_max_length`` resolved against the miner's model; logged."""
    lengths = encoder_lengths(settings.miner)
    log.info("encoder lengths: %s", describe(lengths))
    miner = dataclasses.replace(settings.miner, query_max_length=lengths["query"].tokens,
                                passage_max_length=lengths["passage"].tokens)
    return Resolved(dataclasses.replace(settings, miner=miner), lengths)


def teacher_lengths(settings: Config) -> Resolved:
    """``reranker.max_length`` (and, for the bi-encoder teacher, ``reranker.query_max_length``) resolved against
    the teacher's model; a cross-encoder's query length stays FlagEmbedding's (3/4 of max_length) when unset."""
    reranker = settings.reranker
    model = reranker.model_name_or_path
    if not model and reranker.model_class == "embedder":
        model = settings.miner.model_name_or_path
    lengths = {"teacher": resolve(reranker.max_length, "reranker.max_length", model, reranker.cache_dir)}
    changes = {"max_length": lengths["teacher"].tokens}
    if reranker.model_class == "embedder":
        lengths["teacher_query"] = resolve(reranker.query_max_length, "reranker.query_max_length", model,
                                           reranker.cache_dir)
        changes["query_max_length"] = lengths["teacher_query"].tokens
    elif reranker.query_max_length is not None:
        lengths["teacher_query"] = resolve(reranker.query_max_length, "reranker.query_max_length", model,
                                           reranker.cache_dir)
    log.info("teacher lengths: %s", describe(lengths))
    return Resolved(dataclasses.replace(settings, reranker=dataclasses.replace(reranker, **changes)), lengths)


def student_length(settings: Config, student: str) -> Resolved:
    """``probe.max_length`` resolved against the probe's student."""
    length = resolve(settings.probe.max_length, "probe.max_length", student, settings.miner.cache_dir)
    log.info("student length: %s", describe({"student": length}))
    probe = dataclasses.replace(settings.probe, max_length=length.tokens)
    return Resolved(dataclasses.replace(settings, probe=probe), {"student": length})
