"""The gateway service: Kiln's whole REST API, with model work delegated to the model worker and speech
to the audio service. It builds the backends the routes depend on and installs them on the API app."""

from __future__ import annotations

import logging

import bentoml

from bentos.api import app_shell, assemble
from bentos.audio import AudioService
from bentos.options import tracing
from bentos.worker import ModelWorker
from kiln.access.tokens import refuse_insecure_secret
from kiln.settings import get_settings

# BentoML imports this module in every process it starts (its arbiter, the model worker, the audio service):
# the app is an empty shell here, and the gateway fills it (routes, backends) in its own process only.
app = app_shell()
# A configuration the gateway would refuse fails here, in BentoML's arbiter, so `kiln serve` exits saying why
# instead of BentoML restarting a gateway worker that cannot start.
refuse_insecure_secret(get_settings())
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
        from bentos import prometheus
        from bentos.api.http.backends import Backends, install_backends
        from bentos.api.tasks.events import EventStream
        from bentos.clients import ModelRegistry, SpeechClient, WorkerClient
        from bentos.models import served_models
        from kiln.catalog import load_catalog
        from kiln.filestore.store import FileStore
        from kiln.integrations.dagster_graphql import DagsterGraphQL
        from kiln.logs import LogDirectory, setup_logging
        from kiln.scaling.service import ScalingService
        from kiln.serving.download_records import DownloadRecords
        from kiln.serving.downloads import DownloadManager
        from kiln.store import ModelStore
        from kiln.tasks.runner import Reaper
        from kiln.tasks.service import TaskService
        from kiln.tasks.worker import start_embedded
        from kiln.vision.records import FaceRegistry

        settings = get_settings()
        assemble(app, settings)
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
        database = app.state.access.database
        app.state.access.start()  # migrations (tasks, files) before the task workers look at their tables
        files = FileStore(settings, database)
        self.backends.files = files
        self.backends.tasks = TaskService(settings, database, services=files)
        self.backends.events = EventStream(database, settings, app.state.traffic)
        self.backends.scaling = ScalingService(settings, database, self.backends.tasks)
        self.backends.faces = FaceRegistry(database, files, settings.face_match_threshold)
        self.backends.faces.sync()  # the registered faces' descriptors into memory once, at start
        install_backends(app, self.backends)
        app.state.traffic.observers.append(prometheus.observe_request)
        self.task_gauges = prometheus.TaskGauges(self.backends.tasks).start()
        # The embedded task workers (KILN_TASK_WORKERS threads); with 0, `kiln worker` runs them elsewhere.
        self.task_workers = start_embedded(settings, database)
        self.reaper = None if self.task_workers else Reaper(settings, database).start()
        log.info("gateway ready", extra={"served_models": sorted(self.backends.models.models),
                                         "task_workers": settings.task_workers})

    @bentoml.on_shutdown
    def stop_task_workers(self) -> None:
        self.task_gauges.stop()
        if self.task_workers is not None:
            self.task_workers.stop(graceful=True)


def bento_routes_layer(inner, api):
    """Kiln's HTTP layer and permission checks on BentoML's own routes (/metrics, /livez, ...), imported when
    BentoML builds the gateway's server, not when a process imports this module."""
    from bentos.api.http.access import BentoRoutesLayer

    return BentoRoutesLayer(inner, api=api)


Gateway.add_asgi_middleware(bento_routes_layer, api=app)
