"""The data model: one module per table. Schema changes only through migrations/."""

from app.models.api_key import ApiKey
from app.models.audit_log import AuditLog
from app.models.idempotency_key import IdempotencyKey
from app.models.integration import Integration
from app.models.messaging_window import MessagingWindow
from app.models.organization import Organization
from app.models.webhook import Delivery, InboundEvent, WebhookEndpoint

__all__ = ["ApiKey", "AuditLog", "Delivery", "IdempotencyKey", "InboundEvent", "Integration", "MessagingWindow",
           "Organization", "WebhookEndpoint"]
