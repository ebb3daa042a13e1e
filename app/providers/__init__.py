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


def check_credentials(credentials) -> None:
    """Map keys are account identifiers: canonicalise them with the provider's own rule, once,
    at start-up — a key that is not a valid identifier, or two keys naming one account
    (``Demo-Store`` and ``demo-store``), refuse start-up."""
    from app.errors import ValidationFailed
    from config import ConfigError

    for provider in PROVIDERS.values():
        entry = credentials[provider.name]
        for variable in provider.credentials.json_maps:
            if variable not in entry.maps:
                continue
            canonical = {}
            for key, secret in entry.maps[variable].items():
                try:
                    name = provider.identifier.canonical(key)
                except ValidationFailed:
                    raise ConfigError(f"{variable} has a key that is not a valid {provider.identifier.name}") from None
                if name in canonical:
                    raise ConfigError(f"{variable} names the same {provider.identifier.name} twice")
                canonical[name] = secret
            entry.maps[variable] = canonical


def init_app(app, api) -> None:
    for provider in PROVIDERS.values():
        if provider.blueprint is not None:
            api.register_blueprint(provider.blueprint)
