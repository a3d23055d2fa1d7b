"""The gateway service: Kiln's whole REST API, with model work delegated to the model worker and speech
to the audio service. It builds the backends the routes depend on and installs them on the API app."""

from __future__ import annotations

import logging

import bentoml

from bentos.api import create_app
from bentos.api.http.access import BentoRoutesLayer
from bentos.api.http.backends import Backends, install_backends
from bentos.audio import AudioService
from bentos.clients import ModelRegistry, SpeechClient, WorkerClient
from bentos.models import served_models
from bentos.options import tracing
from bentos.worker import ModelWorker
from kiln.catalog import load_catalog
from kiln.integrations.dagster_graphql import DagsterGraphQL
from kiln.logs import LogDirectory, setup_logging
from kiln.serving.download_records import DownloadRecords
from kiln.serving.downloads import DownloadManager
from kiln.settings import get_settings
from kiln.store import ModelStore

app = create_app()
log = logging.getLogger("kiln.gateway")


# BentoML's access log is off: the API's own middleware writes one structured line per request.
@bentoml.service(
    name="kiln-gateway", traffic={"timeout": 300}, logging={"access": {"enabled": False}}, tracing=tracing(get_settings())
)
@bentoml.asgi_app(app, path="/")
class Gateway:
    worker = bentoml.depends(ModelWorker)
    audio = bentoml.depends(AudioService)

    def __init__(self) -> None:
        settings = get_settings()
        setup_logging("gateway", settings.logs_dir, settings.log_level, settings.log_max_bytes, settings.log_backups)
        logging.getLogger("uvicorn.access").disabled = True  # kiln.access writes one structured line per request
        self.backends = Backends(
            settings=settings,
            models=ModelRegistry(load_catalog(settings.catalog_file), served_models),
            worker=WorkerClient(self.worker, settings),
            speech=SpeechClient(self.audio),
            downloads=DownloadManager(
                ModelStore(settings.model_store_dir),
                DagsterGraphQL(f"http://{settings.host}:{settings.dagster_port}"),
                records=DownloadRecords(app.state.access.database),  # migrated by the app's start-up
            ),
            logs=LogDirectory(settings.logs_dir),
        )
        install_backends(app, self.backends)
        log.info("gateway ready", extra={"served_models": sorted(self.backends.models.models)})


Gateway.add_asgi_middleware(BentoRoutesLayer, api=app)  # BentoML's own routes: /metrics, /livez, ...
