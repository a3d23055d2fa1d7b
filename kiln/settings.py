"""The one settings class. Every knob is a ``KILN_*`` environment variable (or a line in ``.env``)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The workspace is the checkout that holds assets/, notebooks/ and mlflow/ (kiln is installed editable).
WORKSPACE = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KILN_", env_file=".env", extra="ignore")

    home: Path | None = Field(None, description="Root of all state; default <workspace>/.kiln")
    workspace: Path = Field(WORKSPACE, description="The Kiln checkout (catalog, notebooks, mlflow/)")
    catalog_path: Path | None = Field(None, description="Model catalog; default assets/catalog.yaml")

    mlflow_tracking_uri: str | None = Field(
        None, description="Default sqlite:///mlflow/mlflow.db, or under KILN_HOME when that is set"
    )
    mlflow_artifact_root: Path | None = Field(None, description="Default mlflow/artifacts (or KILN_HOME/mlflow)")
    mlflow_experiment: str = "kiln"
    mlflow_backend_store_uri: str | None = Field(
        None, description="Scale-out: the database `kiln up` starts an `mlflow server` on (e.g. postgresql://...); "
        "the pipeline and the API then track through that server (KILN_MLFLOW_TRACKING_URI=http://host:port)"
    )

    # --- scale-out: stores on servers (see assets/profiles/shared.env and README "Scaling out") ---
    dagster_postgres_url: str | None = Field(None, description="Dagster's run, event and schedule storage on Postgres")
    dagster_celery_broker: str | None = Field(
        None, description="Run the pipeline's steps on Celery workers (`kiln pipeline-worker`) through this broker "
        "(e.g. pyamqp://guest:guest@127.0.0.1:5672//); unset: steps run in the run's own process"
    )
    shared_dir: Path | None = Field(
        None, description="Scale-out: a folder every machine mounts at the same path; the model store, BentoML's "
        "store (served models), MLflow's artifacts, the task files and Dagster's step outputs go there"
    )
    bentoml_home_dir: Path | None = Field(None, description="BentoML's store (served models); default KILN_HOME/bentoml, "
                                          "or KILN_SHARED_DIR/bentoml. Replicas that share it serve the same champions")

    environment: str = Field("development", description="development | production")
    host: str = "127.0.0.1"
    shutdown_timeout_seconds: float = Field(
        10.0, gt=0, description="kiln serve/api: seconds a stop (SIGTERM, Ctrl-C) waits for in-flight work before "
        "the server's remaining processes are killed")
    port: int = 8000
    dagster_port: int = 3000
    mlflow_port: int = 5000

    enable_batching: bool = Field(True, description="Route /predict through the adaptive-batching worker API")
    max_batch_size: int = 64
    max_latency_ms: int = 20_000
    batch_max_wait_ms: float = Field(
        2.0, ge=0, le=1000, description="Longest adaptive batching holds a request back to gather a batch. BentoML's own "
        "estimate (the mean of recent waits) feeds on itself after one slow request; Kiln bounds it"
    )
    max_inputs_per_request: int = 256
    max_text_chars: int = 10_000
    torch_threads: int = Field(0, description="0 lets torch pick (one per core)")

    # --- model imports (POST /models/download of models outside the catalog; the catalog is trusted) ---
    model_import_roots: list[Path] = Field(
        default_factory=list, description="JSON list of folders under which source: path imports may sit; empty: "
        "none (name other folders in the catalog file instead)")
    model_packages: list[str] = Field(
        default_factory=list, description="JSON list of Python packages (import names) that carry model weights and "
        "may be imported with source: package besides the catalog's; they are located, never imported")
    model_store_quota_bytes: int | None = Field(
        None, gt=0, description="Most bytes the model store may hold; an import that would pass it is refused before "
        "it starts (413). Default: the free space on the store's disk")

    # --- pipeline: datasets, optimization, fine-tuning ---
    hf_token: str | None = Field(None, description="Hugging Face token for gated/private hub models (never logged)")

    # --- serving: autoscaler, devices, logs ---
    idle_ttl_seconds: float = Field(900.0, description="Unload a model idle this long (scale to zero); 0 keeps models loaded")
    autoscaler_interval_seconds: float = Field(10.0, description="How often the idle reaper looks for idle models")
    max_instances: int = Field(4, description="Upper bound for /autoscaler/scale target_instances per model")
    autoscale_max_instances: int = Field(
        0, ge=0, description="Instances a model's pool grows to by itself under load (0: one per CPU core, "
        "at most max_instances; 1: never grows). Extra instances go after scale_down_idle_seconds idle"
    )
    scale_up_utilization: float = Field(
        0.75, gt=0, le=1, description="A pool whose instances were busy this share of the last second adds an instance"
    )
    scale_down_idle_seconds: float = Field(60.0, gt=0, description="An instance the load added is dropped after this long idle")
    preload_models: str = Field("", description="Comma-separated models to load at start ('all' for every one); others load on first request")
    worker_threads: int = Field(4, description="Concurrent calls the model worker runs (instances of different models work in parallel)")
    instance_threads: int = Field(
        1, description="torch intra-op threads in the model worker unless KILN_TORCH_THREADS is set: one per instance "
        "(scale instances for parallelism); 2-thread OpenMP forward passes stall badly when cores are shared"
    )
    serve_variant: str = Field(
        "auto", description="Which variant of each model the worker serves: auto (the fastest the pipeline measured "
        "that passes the catalog's agreement gate) | eager | onnx-fp32 | onnx-int8, globally or per model "
        "(e.g. 'auto,minilm=eager'). A variant that is not packaged or fails to load falls back to eager with a warning"
    )
    min_split_items: int = Field(4, ge=1, description="A batch is split over idle instances in chunks of at least this many items")
    coalesce_in_flight: int = Field(
        1, ge=0, description="With batching on: concurrent gateway->worker calls per model; requests arriving meanwhile "
        "share the next call, which the worker splits over the model's instances (0: one call per request)"
    )
    request_tracing: bool = Field(
        False, description="OpenTelemetry spans for every HTTP request (BentoML tracing: set an exporter and sample_rate in "
        "BENTOML_CONFIG). Off, no span is created: about a fifth of the gateway's per-request CPU"
    )
    stats_window_seconds: float = Field(300.0, description="Sliding window for /stats and /autoscaler/metrics")
    log_level: str = Field("INFO", description="Level of the JSON log files in KILN_HOME/logs")
    log_max_bytes: int = Field(10 << 20, description="Rotate a log file at this size")
    log_backups: int = Field(5, description="Rotated log files kept")

    # --- devices (seed 004): where models run, device sessions, the model cache, memory reservations ---
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="Where Kiln's models run: auto (the best CUDA GPU "
        "torch can use, else the CPU), cpu, or cuda:N. On a CPU build of torch auto means the CPU (GET /api/device/optimal says why)")
    model_cache_bytes: int | None = Field(
        None, gt=0, description="Bytes the loaded device sessions may hold together (POST /api/model/cache); past it the "
        "least recently used idle session is unloaded. Default: no budget (only KILN_IDLE_TTL_SECONDS unloads)")
    device_max_sessions: int = Field(
        0, ge=0, description="Sessions a device holds at once (more: 409 DEVICE_BUSY); 0: from its memory, one per "
        "KILN_DEVICE_SESSION_MEMORY_MB available, at least 1, at most 8")
    device_session_memory_mb: int = Field(2048, gt=0, description="Memory set aside per session for maxConcurrentSessions")
    device_queue_seconds: float = Field(
        30.0, ge=0, description="Longest an inference waits for its session's running work; then 409 DEVICE_BUSY")
    device_memory_headroom_mb: int = Field(
        512, ge=0, description="Memory a reservation (POST /api/memory/allocations/allocate) must leave free on its device")
    device_max_batch_items: int = Field(100, gt=0, description="Largest itemCount of a batch")
    device_max_concurrent_batches: int = Field(5, gt=0, description="Batches one caller may have running at once (seed 004)")
    rate_limit_devices: str = Field("100/minute", description="Seed 004's routes, per key")
    rate_limit_device_inference: str = Field("10/minute", description="Seed 004's inference, per device")

    # --- access control: users, keys, rate limits, security headers ---
    enable_auth: bool = Field(False, description="Require credentials on every non-public route (see bentos/api/permissions.py)")
    database_url: str | None = Field(None, description="Kiln's records (users, keys, audit); default sqlite:///<home>/kiln.db")
    jwt_secret: SecretStr | None = Field(None, description="JWT signing secret; unset: generated once into <home>/jwt_secret (refused in production)")
    jwt_algorithm: str = "HS256"
    access_token_minutes: int = Field(60, gt=0)
    refresh_token_days: int = Field(7, gt=0)
    api_key: SecretStr | None = Field(None, description="One admin API key (user id 'default')")
    api_keys: dict[str, SecretStr] = Field(
        default_factory=dict, description='JSON {"user id": "key"}; "admin" gets read+write+admin, the others read+write'
    )
    admin_username: str = "admin"
    admin_password: SecretStr | None = Field(None, description="When set, the admin user exists with this password")
    allow_registration: bool | None = Field(
        None, description="Open POST /auth/register and /users/register to anyone; default: open exactly when auth "
        "is off (with auth on, admins create users, or set this to true)")
    registration_permissions: list[str] = Field(["read", "write"], description="Permissions (the role) of "
                                                "self-registered users, e.g. [\"read\"]")
    rate_limit_enabled: bool | None = Field(None, description="Default: on exactly when auth is on")
    rate_limit_generation: str = Field("100/minute", description="Write routes (predict, synthesize, ...)")
    rate_limit_status: str = Field("1000/minute", description="Read and admin routes")
    rate_limit_auth: str = Field("20/minute", description="Login, register, refresh (per client IP)")
    redis_url: str | None = Field(None, description="Redis for rate limits (and caches); default in process")
    rate_limit_prefix: str = "kiln-ratelimit"
    cors_origins: list[str] = Field(default_factory=list, description='JSON list; empty: no CORS headers')
    allowed_hosts: list[str] = Field(
        default_factory=list, description='JSON list of Host header values allowed besides the bind address, localhost, '
        '127.0.0.1 and [::1] (other Host headers get 400: DNS rebinding); "*.example.com" matches subdomains, '
        '"*" allows any'
    )
    bind_host: str | None = Field(None, description="The address the server listens on; set by kiln serve/api "
                                  "(default KILN_HOST)")
    max_body_bytes: int = Field(100 * 1024 * 1024, gt=0, description="Larger request bodies get 413")
    hsts: Literal["tls", "always", "off"] = Field(
        "tls", description="Strict-Transport-Security: on answers served over TLS (tls), on every answer (always: "
        "behind a TLS-terminating proxy that does not send X-Forwarded-Proto), or never (off)"
    )
    speech_require_credentials: bool = Field(
        False, description="With auth on, TTSKit's and seed 001's 'Authentication: Optional' speech routes need "
        "credentials too (by default they answer anonymous callers under the per-IP rate limit)"
    )

    @property
    def records_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'kiln.db'}"

    @property
    def trusted_hosts(self) -> list[str]:
        """Host header values the server answers: the bind address, loopback names, and KILN_ALLOWED_HOSTS."""
        from urllib.parse import urlsplit

        bind = self.bind_host or self.host
        hosts = [*self.allowed_hosts, "localhost", "127.0.0.1", "[::1]"]
        if self.task_server_url:  # the name this server's own workers reach it by (a Kubernetes Service...)
            hosts.append(urlsplit(self.task_server_url).hostname or "")
        if bind in ("0.0.0.0", "::", ""):
            # Bound to every interface: the machine's own name and addresses are ours too (an attacker's
            # name is not): a pod's IP, which Kubernetes' probes send as Host.
            import socket

            name = socket.gethostname()
            hosts.append(name)
            try:
                hosts += socket.gethostbyname_ex(name)[2]
            except OSError:
                pass
        else:
            hosts.append(f"[{bind}]" if ":" in bind else bind)
        return list(dict.fromkeys(h.lower() for h in hosts))

    @property
    def registration_open(self) -> bool:
        return not self.enable_auth if self.allow_registration is None else self.allow_registration

    @property
    def rate_limiting(self) -> bool:
        return self.enable_auth if self.rate_limit_enabled is None else self.rate_limit_enabled

    # --- tasks: records in Kiln's database, executed by Huey (SQLite queue file, or Redis to scale out) ---
    task_queue: Literal["sqlite", "redis"] = Field(
        "sqlite", description="sqlite: a queue file in KILN_HOME, no server (one machine); redis: a Redis broker "
        "(KILN_TASK_BROKER_URL, else KILN_REDIS_URL) that workers on several machines share"
    )
    task_broker_url: str | None = Field(None, description="Redis URL of the task queue (task_queue=redis)")
    task_workers: int = Field(4, ge=0, description="Task worker threads kiln serve runs in the gateway (0: run `kiln worker` instead)")
    task_batched_workers: int = Field(
        32, ge=1, description="Threads of the batched lane, per task worker process: text-to-image requests on a "
        "batchable model, which wait on a shared batcher (so this is also the largest batch they can form)"
    )
    task_heartbeat_seconds: float = Field(5.0, gt=0, description="How often a worker says it is alive")
    task_lost_after_seconds: float = Field(
        30.0, gt=0, description="A running task whose worker has not been heard from this long ends failed ('worker lost')"
    )
    task_poll_seconds: float = Field(0.05, gt=0, description="Longest wait of an idle worker between looks at the SQLite queue")
    task_progress_seconds: float = Field(0.5, ge=0, description="Least time between two stored progress updates of a task")
    task_server_url: str | None = Field(None, description="The API that task workers call for model work; default http://KILN_HOST:KILN_PORT")
    task_server_key: SecretStr | None = Field(None, description="The key task workers call it with; default KILN_HOME/worker.key")
    event_retention_hours: float = Field(24.0, gt=0, description="Events (task progress, scaling) are kept this long")
    # --- predictive scaling (seed 002's ML Controller): traffic history and the scaling predictor ---
    predictive_scaling: Literal["off", "preview", "apply"] = Field(
        "off", description="off; preview: record what the predictor would do (ml_prediction decisions) without "
        "acting; apply: grow a pool before a predicted rise, within the memory headroom and the instance cap"
    )
    traffic_sample_seconds: float = Field(60.0, gt=0, description="How often the model worker records each model's traffic")
    traffic_cycle_seconds: float = Field(
        86400.0, ge=60, description="The period of the traffic's cycle that the scaling predictor's time-of-day features "
        "follow: a day; shorter only to replay a compressed day (benchmarks/scaling_replay.py)")
    traffic_retention_hours: float = Field(336.0, gt=0, description="Traffic samples are kept this long (default 14 days)")
    scaling_horizon_minutes: float = Field(5, ge=0.05, le=60, description="How far ahead the scaling predictor forecasts "
                                           "(under a minute only with samples seconds apart, as the replay benchmark does)")
    scaling_training_hours: int = Field(168, ge=1, le=24 * 90, description="History the scaling predictor trains on")
    scaling_min_history_samples: int = Field(
        60, ge=10, description="Fewer samples of a model than this: no forecast for it (confidence 0, with the reason)"
    )
    # --- files: uploads and task outputs ---
    files_dir: Path | None = Field(None, description="Where file contents live; default KILN_HOME/files")
    max_upload_bytes: int = Field(100 * 1024 * 1024, gt=0, description="Larger uploads get 413")
    files_allowed_types: list[str] = Field(
        default_factory=lambda: [
            "text/csv", "application/json", "application/x-ndjson", "text/plain", "image/png", "image/jpeg",
            "image/gif", "image/webp", "audio/wav", "audio/flac", "audio/ogg", "audio/mpeg", "video/mp4",
            "application/zip", "application/x-tar", "application/gzip",
        ],
        description="Content types an upload may have, checked against its bytes (415 otherwise)",
    )

    dataset_roots: list[Path] = Field(
        default_factory=list, description="JSON list of directories a training's dataset_path may name by path "
        "(image folders: class_name/*.jpg); KILN_HOME/datasets always is one. Anything else is uploaded to the files store")
    training_archive_max_bytes: int = Field(
        2 * 1024**3, gt=0, description="Most bytes of images an uploaded dataset archive (.zip/.tar) may unpack to")

    # --- audio: speech synthesis and recognition ---
    audio_enabled: bool = Field(True, description="Load the speech engines in the gateway's AudioService")
    audio_voices_dir: Path | None = Field(None, description="Extra piper voices (<name>.onnx + .onnx.json); default KILN_HOME/voices")
    audio_outputs_dir: Path | None = Field(None, description="Files served under /outputs/ (seed 001's audio_url); default KILN_HOME/outputs")
    audio_piper_noise_scale: float | None = Field(
        None, ge=0, description="piper's generator noise (None: the voice's own, about 0.667); 0 with "
        "KILN_AUDIO_PIPER_NOISE_W=0 makes synthesis deterministic (the test suite does)")
    audio_piper_noise_w: float | None = Field(None, ge=0, description="piper's phoneme-width noise (None: the voice's own)")
    audio_tts_engines: str = Field("piper,transformers,espeak", description="TTS engines in routing preference order")
    audio_stt_engines: str = Field("faster-whisper,whisper,pocketsphinx", description="STT engines in routing preference order")
    audio_default_lang: str = "en"
    audio_default_format: str = Field("ogg", description="TTSKit's default output format")
    audio_max_text_length: int = Field(1000, description="Characters per synthesis request (TTSKIT_MAX_CHARS); the schema caps at 5000")
    audio_max_batch_texts: int = 10
    audio_chunk_chars: int = Field(400, description="Long texts are synthesized in sentence chunks of at most this size")
    audio_max_upload_mb: int = 25
    audio_max_decoded_samples: int = Field(
        96_000_000, gt=0, description="Most samples (frames x channels, read from the header before decoding) an "
        "upload may decode to; more is a 413. Default: an hour of 16 kHz stereo")
    audio_whisper_beam_size: int = 5
    audio_whisper_temperature_fallback: bool = Field(True, description="openai-whisper retries at higher temperatures when decoding fails")
    audio_cache_enabled: bool = True
    audio_cache_ttl: int = Field(3600, description="Seconds a synthesized clip stays cached")
    audio_cache_type: str = Field("auto", description="memory | redis | auto (redis when a Redis URL is set)")
    audio_cache_max_entries: int = 1000
    # vision (kiln/vision, bentos/api/vision): uploads, the models the routes use, faces, the camera stream
    vision_max_upload_mb: int = Field(20, gt=0, description="Larger image uploads get 413")
    vision_max_pixels: int = Field(
        50_000_000, gt=0, description="Most pixels (width x height, read from the header before decoding) an image "
        "may have; more is a 413 (decompression bombs)")
    vision_classifier: str = Field("efficientnet-lite0", description="The catalog model /image-recognition/classify uses by default")
    vision_detector: str = Field("opencv-detectors", description="The catalog model /image-recognition/detect uses by default")
    vision_faces: str = Field("dlib-faces", description="The catalog model the face routes use")
    face_match_threshold: float = Field(
        0.6, gt=0, le=2, description="Largest descriptor distance (Euclidean, 128-d dlib) still taken for the same person")
    vision_timeout_seconds: float = Field(60.0, gt=0, description="A vision model call (queue + load + run) gives up after this")
    camera_max_frame_bytes: int = Field(4 * 1024 * 1024, gt=0, description="Larger camera frames are refused (the socket stays open)")
    camera_max_fps: float = Field(15.0, gt=0, description="Frames per second a camera socket answers at most; faster ones are skipped")
    # `kiln api` (TTSKit's `ttskit api` options that act inside the app rather than on bentoml serve)
    api_headers: list[str] = Field(default_factory=list, description="Extra response headers, 'Name: value'")
    api_proxy_headers: bool = Field(False, description="Trust X-Forwarded-For/-Proto from api_forwarded_allow_ips")
    api_forwarded_allow_ips: str = Field("127.0.0.1", description="Comma-separated proxies trusted for forwarded headers, or *")
    api_root_path: str = Field("", description="ASGI root_path when served behind a path prefix")
    api_access_log: bool = Field(True, description="One log line per request (kiln api --no-access-log turns it off)")

    @property
    def explicit_home(self) -> bool:
        return self.home is not None

    @property
    def home_dir(self) -> Path:
        return (self.home or self.workspace / ".kiln").resolve()

    @property
    def training_dataset_roots(self) -> list[Path]:
        return [self.home_dir / "datasets", *self.dataset_roots]

    @property
    def catalog_file(self) -> Path:
        return self.catalog_path or self.workspace / "assets" / "catalog.yaml"

    @property
    def mlflow_dir(self) -> Path:
        # The default store lives in the checkout's mlflow/; an explicit KILN_HOME takes it along.
        return self.home_dir / "mlflow" if self.explicit_home else self.workspace / "mlflow"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        default = self.shared_dir / "mlflow-artifacts" if self.shared_dir else self.mlflow_dir / "artifacts"
        return (self.mlflow_artifact_root or default).resolve()

    @property
    def data_dir(self) -> Path:
        """Where the bulky, shareable stores live: KILN_SHARED_DIR when set, else KILN_HOME."""
        return (self.shared_dir or self.home_dir).resolve()

    @property
    def model_store_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def dagster_storage_dir(self) -> Path:
        """Dagster's step outputs (its IO manager): shared, so a step on one machine reads the one before it."""
        return self.shared_dir / "dagster-storage" if self.shared_dir else self.dagster_home / "storage"

    @property
    def bentoml_home(self) -> Path:
        return self.bentoml_home_dir or self.data_dir / "bentoml"

    @property
    def dagster_home(self) -> Path:
        return self.home_dir / "dagster"

    @property
    def logs_dir(self) -> Path:
        return self.home_dir / "logs"

    @property
    def voices_dir(self) -> Path:
        return self.audio_voices_dir or self.home_dir / "voices"

    @property
    def file_store_dir(self) -> Path:
        return self.files_dir or self.data_dir / "files"

    @property
    def task_queue_file(self) -> Path:
        return self.home_dir / "queue.db"

    @property
    def task_broker(self) -> str | None:
        return self.task_broker_url or self.redis_url

    @property
    def api_url(self) -> str:
        return self.task_server_url or f"http://{self.host}:{self.port}"

    @property
    def outputs_dir(self) -> Path:
        return self.audio_outputs_dir or self.home_dir / "outputs"

    @property
    def mlflow_ui_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def configure_environment(settings: Settings | None = None) -> Settings:
    """Everything before Kiln's commands run: the environment (``set_environment``) and KILN_HOME's folders."""
    settings = set_environment(settings)
    prepare_home(settings)
    return settings


def set_environment(settings: Settings | None = None) -> Settings:
    """Point the libraries Kiln drives at KILN_HOME and keep them offline and quiet. Environment
    variables only, no files: importing ``bentos`` or ``pipelines`` does this and nothing more.

    Must run before bentoml, mlflow or dagster read their environment (at import for bentoml).
    """
    settings = settings or get_settings()
    defaults = {
        "BENTOML_HOME": str(settings.bentoml_home),
        "DAGSTER_HOME": str(settings.dagster_home),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "BENTOML_DO_NOT_TRACK": "true",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
        "TOKENIZERS_PARALLELISM": "false",
    }
    if settings.dagster_postgres_url:  # dagster.yaml names it: Dagster reads it from the environment
        defaults["KILN_DAGSTER_POSTGRES_URL"] = settings.dagster_postgres_url
    # Stores always follow Kiln's settings (change them with KILN_* variables); the rest are defaults.
    stores = {"BENTOML_HOME", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"}
    for key, value in defaults.items():
        if key in stores:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
    return settings


def prepare_home(settings: Settings | None = None) -> None:
    """KILN_HOME's folders, and DAGSTER_HOME's dagster.yaml (the workspace's copy is the source of truth)."""
    settings = settings or get_settings()
    for directory in (settings.home_dir, settings.mlflow_dir, settings.artifact_root, settings.dagster_home):
        directory.mkdir(parents=True, exist_ok=True)
    source = settings.workspace / "dagster.yaml"
    target = settings.dagster_home / "dagster.yaml"
    if not source.exists():
        return
    content = source.read_text()
    if settings.dagster_postgres_url:  # scale-out: every machine's Dagster on the same storage
        content += ("\n# Added by Kiln (KILN_DAGSTER_POSTGRES_URL): runs, events and schedules on Postgres.\n"
                    "storage:\n  postgres:\n    postgres_url:\n      env: KILN_DAGSTER_POSTGRES_URL\n")
    if not target.exists() or target.read_text() != content:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
