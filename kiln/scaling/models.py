"""Per-model traffic, one row per sampling interval (a minute by default), from the model worker's real
counters: what the scaling predictor learns from and what its decisions are judged against."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kiln.db import Base


class TrafficSample(Base):
    __tablename__ = "traffic_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(63), index=True)
    sampled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)  # end of the interval
    seconds: Mapped[float] = mapped_column(Float)  # length of the interval
    requests: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    p95_ms: Mapped[float] = mapped_column(Float)
    instances: Mapped[int] = mapped_column(Integer)  # at the end of the interval
    busy_share: Mapped[float] = mapped_column(Float)  # busy instance-seconds / (instances x seconds)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0
