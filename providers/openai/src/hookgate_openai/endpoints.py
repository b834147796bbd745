"""OpenAI's endpoints beyond chat, completions, embeddings and models, declared by the
plugin that serves them (see :mod:`hookgate.endpoints`).

Each passes through as it came (JSON, a multipart form, or no body) to the ``openai``
provider and to the OpenAI-compatible presets whose ``endpoints`` list it (Groq's audio,
Mistral's moderations, Together's images; a deployment extends the list per upstream). Any
other provider answers the 404 naming itself and the endpoint. Through the whole pipeline:
gateway key, routing, retries, fallbacks, logs and, where the answer reports usage (images,
transcriptions), tokens and cost.
"""

from __future__ import annotations

from typing import Annotated, Any

from hookgate.endpoints import EndpointSpec
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OPENAI_API"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)


class ModerationRequest(_Open):
    input: str | list[Any]
    model: str | None = None


class ImageGenerationRequest(_Open):
    prompt: Annotated[str, Field(min_length=1)]
    model: str | None = None
    n: Annotated[int, Field(ge=1, le=10)] | None = None
    size: str | None = None


class SpeechRequest(_Open):
    model: Annotated[str, Field(min_length=1)]
    input: Annotated[str, Field(min_length=1)]
    voice: str | dict[str, Any]
    response_format: str | None = None


class TranscriptionForm(_Open):
    """The text fields of ``/v1/audio/transcriptions``; the audio is the ``file`` part."""

    model: Annotated[str, Field(min_length=1)]
    language: str | None = None
    prompt: str | None = None
    response_format: str | None = None


class FileForm(_Open):
    """The text fields of ``POST /v1/files``; the content is the ``file`` part."""

    purpose: Annotated[str, Field(min_length=1)]


class BatchRequest(_Open):
    input_file_id: Annotated[str, Field(min_length=1)]
    endpoint: Annotated[str, Field(min_length=1)]
    completion_window: str = "24h"


_AUDIO = "audio/mpeg"

OPENAI_API = (
    EndpointSpec(
        name="moderations",
        path="/v1/moderations",
        request_model=ModerationRequest,
        cacheable=True,
        summary="Classify text or images for harmful content",
        tag="moderations",
    ),
    EndpointSpec(
        name="images.generations",
        path="/v1/images/generations",
        request_model=ImageGenerationRequest,
        summary="Generate images from a prompt",
        tag="images",
    ),
    EndpointSpec(
        name="audio.speech",
        path="/v1/audio/speech",
        request_model=SpeechRequest,
        byte_stream=True,
        response_media_type=_AUDIO,
        summary="Text to speech; the audio is relayed as it is generated",
        tag="audio",
    ),
    EndpointSpec(
        name="audio.transcriptions",
        path="/v1/audio/transcriptions",
        body="multipart",
        request_model=TranscriptionForm,
        files=("file",),
        summary="Transcribe an audio file (multipart/form-data)",
        tag="audio",
    ),
    EndpointSpec(
        name="audio.translations",
        path="/v1/audio/translations",
        body="multipart",
        request_model=TranscriptionForm,
        files=("file",),
        summary="Translate an audio file into English text (multipart/form-data)",
        tag="audio",
    ),
    EndpointSpec(
        name="files.create",
        path="/v1/files",
        body="multipart",
        request_model=FileForm,
        files=("file",),
        summary="Upload a file (batch input, fine-tuning data, ...)",
        tag="files",
    ),
    EndpointSpec(
        name="files.list",
        path="/v1/files",
        method="GET",
        body="none",
        summary="List files",
        tag="files",
    ),
    EndpointSpec(
        name="files.retrieve",
        path="/v1/files/{file_id}",
        method="GET",
        body="none",
        summary="A file's metadata",
        tag="files",
    ),
    EndpointSpec(
        name="files.delete",
        path="/v1/files/{file_id}",
        method="DELETE",
        body="none",
        summary="Delete a file",
        tag="files",
    ),
    EndpointSpec(
        name="files.content",
        path="/v1/files/{file_id}/content",
        method="GET",
        body="none",
        response_media_type="application/octet-stream",
        summary="A file's content, as stored",
        tag="files",
    ),
    EndpointSpec(
        name="batches.create",
        path="/v1/batches",
        request_model=BatchRequest,
        summary="Create a batch from an uploaded JSONL file",
        tag="batches",
    ),
    EndpointSpec(
        name="batches.list",
        path="/v1/batches",
        method="GET",
        body="none",
        summary="List batches",
        tag="batches",
    ),
    EndpointSpec(
        name="batches.retrieve",
        path="/v1/batches/{batch_id}",
        method="GET",
        body="none",
        summary="A batch's status",
        tag="batches",
    ),
    EndpointSpec(
        name="batches.cancel",
        path="/v1/batches/{batch_id}/cancel",
        method="POST",
        body="none",
        summary="Cancel a batch",
        tag="batches",
    ),
)
