"""The index: built offline (`build`), loaded read-only (`live`), checked for staleness (`staleness`);
what is embedded is in `units`, and the search backends, picked by name, in `stores/`.

Everything other modules use is importable from `rag.index` itself.
"""

from rag.index.build import EXACT_SEARCH_MAX, BuildReport, build_index, choose_dense_kind, domain_terms
from rag.index.live import Index, load_index
from rag.index.lock import BUILD_LOCK_TIMEOUT, IndexBusy, build_lock, clean_leftovers
from rag.index.manifest import FORMAT_VERSION, NORMALIZATION, IndexProblem, current_build, read_manifest
from rag.index.staleness import stale_message, staleness
from rag.index.units import dense_units, embedding_text, passage_text, unit_text

__all__ = [
    "BUILD_LOCK_TIMEOUT", "EXACT_SEARCH_MAX", "FORMAT_VERSION", "NORMALIZATION", "BuildReport", "Index",
    "IndexBusy", "IndexProblem", "build_index", "build_lock", "choose_dense_kind", "clean_leftovers",
    "current_build", "dense_units", "domain_terms", "embedding_text", "load_index", "passage_text",
    "read_manifest", "stale_message", "staleness", "unit_text",
]
