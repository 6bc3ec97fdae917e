"""The search service: a FastAPI app over a built store, and the examiner's page.

Modules, one role each:
- ``config``: the service's settings (``LOGOSIM_API_*`` environment variables).
- ``querymodel``: the exported ONNX model run by OpenVINO / ONNX Runtime (no PyTorch).
- ``catalog``: mark metadata and thumbnails, read from the source without its image bytes.
- ``engine``: a loaded index snapshot (memory-mapped), filtered search, re-rank, hot reload.
- ``pgvector``: the optional PostgreSQL + pgvector backend.
- ``security``: API keys, rate limits keyed on the key, body caps, content-type checks.
- ``schemas``: the JSON the API answers with.
- ``app``: the FastAPI factory (``uvicorn --factory logosim.service.app:create_app``).
- ``static/``: the examiner's page (plain HTML/JS/CSS, no build step).

Nothing here imports PyTorch or Prefect.
"""
