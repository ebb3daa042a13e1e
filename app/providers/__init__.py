"""The provider registry: name → ``Provider``. An unknown name is a 404, never ``None``."""

from __future__ import annotations

from app.errors import NotFound
from app.providers import klaviyo, kustomer, messenger, openai, shopify, stripe, whatsapp
from app.providers.base import Provider

PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        shopify.provider,
        klaviyo.provider,
        kustomer.provider,
        messenger.provider,
        whatsapp.provider,
        stripe.provider,
        openai.provider,
    )
}


def get_provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise NotFound(f"Unknown provider '{name[:50]}'.", code="unknown_provider") from None


def credential_specs():
    return {name: p.credentials for name, p in PROVIDERS.items()}


def init_app(app, api) -> None:
    for provider in PROVIDERS.values():
        if provider.blueprint is not None:
            api.register_blueprint(provider.blueprint)
