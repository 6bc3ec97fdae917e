"""Helpers shared by the API tests: a started engine and an in-process client."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from PIL import Image

from logosim.service.app import create_app
from logosim.service.config import ServiceSettings
from logosim.service.engine import Engine

LOCAL = ("127.0.0.1", 50000)


def started_engine(settings: ServiceSettings) -> Engine:
    engine = Engine(settings)
    engine.start()
    assert engine.error is None, engine.error
    assert engine.snapshot is not None and engine.snapshot.texts.ready.wait(60)
    return engine


def client(settings: ServiceSettings, engine: Engine, address=LOCAL) -> TestClient:
    return TestClient(create_app(settings, engine=engine), client=address)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
