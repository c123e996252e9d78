"""Registry service: `uvicorn --factory services.registry.main:app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.registry.api import ROUTERS
from services.registry.api.chains import builtin_templates
from services.registry.config import RegistrySettings
from services.registry.handlers.people import Keys
from services.registry.pii import PiiCipher
from shared import identity, logs
from shared.contracts import registry
from shared.http import build_app
from shared.lag import lag_parts
from shared.runtime import service_parts


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()
    app = build_app(
        settings,
        title="Registry",
        routers=ROUTERS,
        parts=[
            *service_parts(settings, publishes=registry.TOPIC),
            builtin_templates,
            *lag_parts(settings, publishes=registry.TOPIC),
        ],
        description="Places, households, people, responsible parties and chains.",
        body_limits={"/v1/imports/": settings.max_import_bytes},
    )
    app.state.keys = Keys(PiiCipher(settings.pii_keys), identity.hmac_key(settings.id_hmac_key))
    return app


def app() -> FastAPI:
    settings = RegistrySettings()
    logs.configure(settings.service, settings.log_level)
    return create_app(settings)
