"""Stripe: a platform service (billing). The org provides nothing; connecting enables it.

Credentials: ``STRIPE_SECRET_KEY``; ``STRIPE_PUBLISHABLE_KEY`` and ``STRIPE_WEBHOOK_SECRET`` are
read when set.
"""

from app.providers.base import Provider
from config import CredentialSpec

provider = Provider(
    name="stripe",
    title="Stripe",
    credentials=CredentialSpec(
        alternatives=(("STRIPE_SECRET_KEY",),),
        optional=("STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET"),
        public=("STRIPE_PUBLISHABLE_KEY",),
    ),
    docs_url="https://docs.stripe.com/api",
)
