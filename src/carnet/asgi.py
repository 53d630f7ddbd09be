"""ASGI entry point: ``uvicorn carnet.asgi:app``."""

from carnet.app import create_app

app = create_app()
