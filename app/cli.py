"""Operator commands: ``flask orgs …``, ``flask keys …``, ``flask providers …``,
``flask integrations …``. Each docstring is its help; each calls the same services as the admin API."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app import services
from app.errors import SwitchboardError
from app.providers import PROVIDERS

orgs = AppGroup("orgs", help="Organizations.")
keys_cli = AppGroup("keys", help="Organization API keys.")
providers_cli = AppGroup("providers", help="Providers and the platform's credentials.")
integrations_cli = AppGroup("integrations", help="Org integrations.")


def _fail(exc: SwitchboardError):
    raise click.ClickException(exc.detail)


@orgs.command("create")
@click.argument("slug")
@click.option("--name", help="Display name (defaults to the slug).")
@click.option("--rate-limit", help="Override of ORG_RATE_LIMIT, e.g. 600/minute.")
def create_org(slug, name, rate_limit):
    """Create an organization."""
    try:
        org = services.create_org(slug, name, rate_limit, actor="cli")
    except SwitchboardError as exc:
        _fail(exc)
    click.echo(f"{org.id}\t{org.slug}")


@orgs.command("list")
def list_orgs():
    """List organizations."""
    from app.extensions import db
    from app.models import Organization

    for org in db.session.execute(db.select(Organization).order_by(Organization.slug)).scalars():
        click.echo(f"{org.id}\t{org.slug}\t{org.status}\t{org.rate_limit or 'default'}")


@keys_cli.command("issue")
@click.argument("org")
@click.option("--name", default="default", help="A label for the key.")
def issue_key(org, name):
    """Issue an API key for ORG (slug or id). The key is printed once."""
    try:
        api_key, plaintext = services.issue_key(services.find_org(org), name, actor="cli")
    except SwitchboardError as exc:
        _fail(exc)
    click.echo(f"key id: {api_key.id}", err=True)
    click.echo(plaintext)


@keys_cli.command("revoke")
@click.argument("key_id")
def revoke_key(key_id):
    """Revoke the API key KEY_ID."""
    try:
        services.revoke_key(key_id, actor="cli")
    except SwitchboardError as exc:
        _fail(exc)
    click.echo(f"revoked {key_id}")


@providers_cli.command("list")
def list_providers():
    """List providers, the identifier each needs, and whether this process's environment configures them."""
    registry = current_app.extensions["credentials"]
    # Said on stderr so stdout stays one tab-separated line per provider. `make run` gives the
    # emulators' credentials to its own process only; an operator comparing the two must know.
    mode = "SANDBOX=true: the providers are the local emulators" if current_app.config["SANDBOX"] else "SANDBOX=false"
    click.echo(f"Credentials as this process's environment sets them ({mode}). `make run` starts the "
               f"sandbox emulators and sets their credentials for its own process only; they are not "
               f"seen here.", err=True)
    for provider in PROVIDERS.values():
        creds = registry[provider.name]
        field = provider.identifier.name if provider.identifier else "-"
        state = "configured" if creds.configured else f"not configured ({creds.hint()})"
        click.echo(f"{provider.name}\t{field}\t{state}")


@integrations_cli.command("list")
@click.option("--status", default="pending", show_default=True,
              type=click.Choice(["pending", "connected", "error", "disconnected"]))
def list_integrations(status):
    """List integrations of every org in one status: id, org, provider, account."""
    from app.extensions import db
    from app.models import Integration, Organization

    rows = db.session.execute(
        db.select(Integration, Organization.slug).join(Organization, Organization.id == Integration.organization_id)
        .where(Integration.status == status).order_by(Integration.created_at))
    for integration, slug in rows:
        click.echo(f"{integration.id}\t{slug}\t{integration.provider}\t{integration.account_key or '-'}")


def _decision(command, integration_id, account):
    try:
        integration = command(integration_id, account, actor="cli")
    except SwitchboardError as exc:
        _fail(exc)
    click.echo(f"{integration.id}\t{integration.provider}\t{integration.status}")


@integrations_cli.command("approve")
@click.argument("integration_id")
@click.argument("account", required=False)
def approve(integration_id, account):
    """Approve a pending integration that still names ACCOUNT (the store name etc. you reviewed;
    omit only for platform services such as stripe)."""
    _decision(services.approve, integration_id, account)


@integrations_cli.command("reject")
@click.argument("integration_id")
@click.argument("account", required=False)
def reject(integration_id, account):
    """Reject a pending integration (if ACCOUNT is given, only while it names ACCOUNT)."""
    _decision(services.reject, integration_id, account)


@integrations_cli.command("release")
@click.argument("integration_id")
@click.argument("account", required=False)
def release(integration_id, account):
    """Release the claim an org holds (connected, pending or error); the account is free again."""
    _decision(services.release, integration_id, account)


@integrations_cli.command("assign")
@click.argument("org")
@click.argument("provider")
@click.argument("account", required=False)
def assign(org, provider, account):
    """Assign ACCOUNT of PROVIDER to ORG (slug or id): verified, connected at once."""
    from app.providers import get_provider

    try:
        field = get_provider(provider).identifier
        identifier = {field.name: account} if field is not None and account is not None else {}
        integration, _ = services.assign(services.find_org(org), provider, identifier, actor="cli")
    except SwitchboardError as exc:
        _fail(exc)
    click.echo(f"{integration.id}\t{integration.provider}\t{integration.status}")


def init_app(app: Flask) -> None:
    for group in (orgs, keys_cli, providers_cli, integrations_cli):
        app.cli.add_command(group)
