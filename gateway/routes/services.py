"""The services route handlers receive, injected by the app. They are trusted objects, so Litestar does not
validate them per request (it cannot check a Protocol, and need not check the rest)."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Dependency

from gateway.engine_client import EngineClient
from gateway.jobs_client import JobsAPI
from gateway.serving.chat import ChatService
from gateway.serving.completions import CompletionService
from gateway.serving.embeddings import EmbeddingService
from gateway.serving.metrics import MetricsService
from gateway.serving.models import ModelCatalog
from gateway.serving.responses import ResponseService
from jobs.files import FileService
from jobs.uploads import UploadService

Engine = Annotated[EngineClient, Dependency(skip_validation=True)]
Chat = Annotated[ChatService, Dependency(skip_validation=True)]
Completions = Annotated[CompletionService, Dependency(skip_validation=True)]
Embeddings = Annotated[EmbeddingService, Dependency(skip_validation=True)]
Metrics = Annotated[MetricsService, Dependency(skip_validation=True)]
Responses = Annotated[ResponseService, Dependency(skip_validation=True)]
Models = Annotated[ModelCatalog, Dependency(skip_validation=True)]
Files = Annotated[FileService, Dependency(skip_validation=True)]
Uploads = Annotated[UploadService, Dependency(skip_validation=True)]
FineTuning = Annotated[JobsAPI, Dependency(skip_validation=True)]
