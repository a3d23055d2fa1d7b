"""POST /api/llm-finetuning/lora/start, /qlora/start (training tasks of model_type causal_lm), /test, /merge."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bentos.api.http.identity import CallerDep
from bentos.api.training.deps import TrainingDep
from bentos.api.training.schemas import LlmTest, LlmTestAnswer, MergeRequest, MergeStarted, TrainingStarted

router = APIRouter(prefix="/api/llm-finetuning", tags=["LLM fine-tuning (seed 001)"])
ERRORS = {404: {"description": "Unknown base model (the stored ones are listed) or unknown task"},
          409: {"description": "The fine-tuning has not completed"}}


class LoraStart(BaseModel):
    base_model: str = Field(min_length=1, max_length=63, description="A causal LM of the model store (task text-generation)")
    dataset_path: str = Field(min_length=1, max_length=255, description="A JSONL file of the files store (id or name): "
                              '{"instruction", "input", "output"} or {"prompt", "completion"} per line')
    output_dir: str = Field(min_length=1, max_length=255, description="A model-store name (a path's last segment is taken)")
    lora_r: int = Field(8, ge=1, le=256)
    lora_alpha: int = Field(16, ge=1, le=1024)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    epochs: int = Field(3, ge=1, le=100)
    batch_size: int = Field(4, ge=1, le=1024)
    learning_rate: float = Field(2e-4, gt=0, le=1)
    max_length: int = Field(512, ge=8, le=8192)
    gradient_accumulation_steps: int = Field(4, ge=1, le=1024)
    save_steps: int = Field(0, ge=0, le=1_000_000)
    max_steps: int = Field(0, ge=0, le=1_000_000)


@router.post("/lora/start", response_model=TrainingStarted, status_code=202, responses=ERRORS,
             summary="LoRA fine-tuning of a stored causal LM (a task running the Dagster job user_training)")
async def lora_start(body: LoraStart, training: TrainingDep, caller: CallerDep) -> dict:
    return await run_in_threadpool(training.start_lora, caller.owner_id, body.model_dump(), "none")


@router.post("/qlora/start", response_model=TrainingStarted, status_code=202, responses=ERRORS,
             summary="QLoRA: the same on a 4-bit (bitsandbytes nf4) base")
async def qlora_start(body: LoraStart, training: TrainingDep, caller: CallerDep) -> dict:
    return await run_in_threadpool(training.start_lora, caller.owner_id, body.model_dump(), "4bit")


@router.post("/test", response_model=LlmTestAnswer, responses=ERRORS,
             summary="Generate from a finished fine-tuning's adapter (base + adapter, full precision, kept loaded)")
async def test(body: LlmTest, training: TrainingDep, caller: CallerDep) -> dict:
    return await run_in_threadpool(training.test, body.task_id, caller.owner_id, caller.see_all, body.prompt,
                                   body.max_tokens, body.temperature, body.seed)


@router.post("/merge", response_model=MergeStarted, status_code=202, responses=ERRORS,
             summary="Merge the adapter into its base (an llm_merge task): a new stored model, registered in MLflow "
                     "with its lineage; GET /tasks/{task_id} gives the result")
async def merge(body: MergeRequest, training: TrainingDep, caller: CallerDep) -> dict:
    return await run_in_threadpool(training.merge, body.task_id, caller.owner_id, caller.see_all, body.output_path)
