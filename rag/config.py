"""Settings that come from outside the code: the LLM server and the answerer's calibrated weights.

Sources, later ones winning: built-in defaults, `rag.toml` in the working folder (or the file
named by RAG_CONFIG), then environment variables (RAG_LLM_BASE_URL, RAG_LLM_MODEL, RAG_LLM_API_KEY,
RAG_LLM_TIMEOUT; RAG_READER names the reader's adapter folder, whose abstention model comes with it;
RAG_STORE_BACKEND, RAG_STORE_PATH, RAG_STORE_URL, RAG_STORE_API_KEY, RAG_STORE_COLLECTION, RAG_STORE_SHARDS, RAG_STORE_REPLICAS pick the search backend).
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from rag.paths import reader_dir

CALIBRATION_FILE = Path(__file__).with_name("data") / "answer_calibration.json"


@dataclass(frozen=True)
class LLMConfig:
    """Where an OpenAI-compatible chat-completions server is, and how long to wait for it."""

    base_url: str = ""
    model: str = ""
    api_key: str = ""
    timeout: float = 30.0
    temperature: float = 0.1
    # Why these settings cannot be used (a bad timeout from the environment or rag.toml). It is
    # reported when an LLM answer is asked for, so a typo never breaks extractive answers.
    problem: str = ""

    def __post_init__(self) -> None:
        if not self.timeout > 0 or not math.isfinite(self.timeout):
            raise ValueError(f"LLM timeout must be a positive number of seconds, got {self.timeout}")

    @property
    def configured(self) -> bool:
        """True when a server and a model are set."""
        return bool(self.base_url and self.model)


@dataclass(frozen=True)
class AnswerConfig:
    """Extractive answerer settings; the weights and threshold are calibrated (see README)."""

    max_sentences: int = 3
    max_chars: int = 150
    list_max_chars: int = 300
    weights: dict[str, float] = field(default_factory=dict)
    abstain_weights: dict[str, float] = field(default_factory=dict)
    bias: float = -2.0
    threshold: float = 0.5
    # English questions' confidences sit on another scale (their words are translations): their own
    # cut, fitted on the calibration set's English questions; None uses `threshold`.
    threshold_english: float | None = None
    # The trained reader: how many of the best-scored sentences it reads (each with its neighbours),
    # and its calibrated abstention model.
    mode: str = "reader"  # the default answer mode: "reader" (falls back to "extractive" without its adapter)
    read_sentences: int = 3
    reader_weights: dict[str, float] = field(default_factory=dict)
    reader_bias: float = 0.0
    reader_threshold: float = 0.5
    reader_threshold_english: float | None = None  # an adapter that reads English questions: their own cut

    def __post_init__(self) -> None:
        if self.max_sentences < 1:
            raise ValueError(f"max_sentences must be >= 1, got {self.max_sentences}")
        if self.max_chars < 20:
            raise ValueError(f"max_chars must be >= 20, got {self.max_chars}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {self.threshold}")
        if self.threshold_english is not None and not 0.0 <= self.threshold_english <= 1.0:
            raise ValueError(f"threshold_english must be within [0, 1], got {self.threshold_english}")
        for name in ("reader_threshold", "reader_threshold_english"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.mode not in ("reader", "extractive", "llm"):
            raise ValueError(f"answer mode must be 'reader', 'extractive' or 'llm', got {self.mode!r}")
        if self.read_sentences < 1:
            raise ValueError(f"read_sentences must be >= 1, got {self.read_sentences}")

    def picker_cut(self, english: bool) -> float:
        """Return the sentence picker's abstention cut for a question in English or not."""
        return self.threshold_english if english and self.threshold_english is not None else self.threshold

    def reader_cut(self, english: bool) -> float:
        """Return the reader's abstention cut for a question in English or not."""
        if english and self.reader_threshold_english is not None:
            return self.reader_threshold_english
        return self.reader_threshold


# The most passages one question may ask for, on every road (`rag ask -k`, the page's API).
MAX_PASSAGES = 50


@dataclass(frozen=True)
class StoreConfig:
    """Which search backend a build writes to, by its name in rag/index/stores (empty: the default, FAISS +
    bm25s in the index folder), and where Qdrant is.

    Qdrant is embedded at `path` (empty: `<index>/qdrant`; ":memory:" lives as long as the process) unless
    `url` names a server; `collection` is the alias the live build's collection is published under.
    """

    backend: str = ""
    path: str = ""
    url: str = ""
    api_key: str = ""
    collection: str = "wenyu"
    shards: int = 0  # a new collection's shards and copies of each on a cluster; 0: the server's default
    replicas: int = 0

    def __post_init__(self) -> None:
        for name in ("shards", "replicas"):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, int(value))
            except (TypeError, ValueError):
                raise ValueError(f"store {name} must be a whole number, got {value!r}") from None
            if getattr(self, name) < 0:
                raise ValueError(f"store {name} must be >= 0, got {value!r}")
        from rag.index.stores import DEFAULT_BACKEND, backend_names  # here: rag.index imports this module

        object.__setattr__(self, "backend", self.backend or DEFAULT_BACKEND)
        if self.backend not in backend_names():
            raise ValueError(f"store backend must be one of {', '.join(backend_names())}, got {self.backend!r}")
        if not (self.collection and self.collection.replace("_", "").replace("-", "").isalnum()):
            raise ValueError(f"store collection must be letters, digits, - or _, got {self.collection!r}")


@dataclass(frozen=True)
class Settings:
    """Everything configurable from outside."""

    llm: LLMConfig = LLMConfig()
    answer: AnswerConfig = AnswerConfig()


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Return settings from the config file (if any) and the environment."""
    environ = dict(os.environ if environ is None else environ)
    path, data = _config_file(path, environ)
    llm = dict(data.get("llm", {}))
    sources = {key: f"`{key}` under [llm] in {path}" for key in llm}
    for key in ("base_url", "model", "api_key", "timeout"):
        value = environ.get(f"RAG_LLM_{key.upper()}")
        if value:
            llm[key], sources[key] = value, f"RAG_LLM_{key.upper()}"
    if "timeout" in llm:
        try:
            llm["timeout"] = float(llm["timeout"])
            LLMConfig(timeout=llm["timeout"])
        except (TypeError, ValueError):
            llm["problem"] = f"{sources['timeout']} must be a positive number of seconds, got {llm.pop('timeout')!r}"
    answer = {**load_calibration(reader=reader_dir(environ)), **data.get("answer", {})}
    return Settings(llm=LLMConfig(**llm), answer=AnswerConfig(**answer))


def load_store_config(path: Path | None = None, environ: dict[str, str] | None = None) -> StoreConfig:
    """Return the [store] settings of the config file, overridden by RAG_STORE_* variables.

    Apart from `Settings`: only builds read it (a load follows its manifest), so a typo here never
    stops answers from an index already built."""
    environ = dict(os.environ if environ is None else environ)
    return _store_config(_config_file(path, environ)[1], environ)


def _config_file(path: Path | None, environ: dict[str, str]) -> tuple[Path, dict]:
    """Return the config file's path (`path`, else RAG_CONFIG, else rag.toml) and its tables ({} when absent)."""
    path = path or Path(environ.get("RAG_CONFIG", "rag.toml"))
    if not path.exists():
        return path, {}
    with open(path, "rb") as f:
        return path, tomllib.load(f)


_STORE_KEYS = ("backend", "path", "url", "api_key", "collection", "shards", "replicas")


def _store_config(data: dict, environ: dict[str, str]) -> StoreConfig:
    store = {k: str(v) for k, v in dict(data.get("store", {})).items()}
    for key in _STORE_KEYS:
        value = environ.get(f"RAG_STORE_{key.upper()}")
        if value:
            store[key] = value
    unknown = sorted(set(store) - set(_STORE_KEYS))
    if unknown:
        raise ValueError(f"unknown [store] setting {unknown[0]!r}: use {', '.join(_STORE_KEYS)}")
    return StoreConfig(**store)


def load_calibration(path: Path = CALIBRATION_FILE, reader: Path | None = None) -> dict:
    """Return the calibrated weights and thresholds: the sentence picker's shipped with the package, the
    reader's saved in its adapter folder (each adapter has its own, fitted by `rag calibrate`)."""
    from rag.reader.reader import read_abstention

    out: dict = {}
    if path.exists():
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        out = {k: data[k] for k in ("weights", "abstain_weights", "bias", "threshold", "threshold_english")
               if k in data}
    abstention = read_abstention(reader or reader_dir())
    out.update({f"reader_{k}": v for k, v in abstention.items()})
    return out
