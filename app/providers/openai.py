"""OpenAI: a platform service. The org provides nothing; connecting enables it.

Credentials: ``OPENAI_API_KEY`` and, when set, ``OPENAI_ORG_ID``. (The seed's ``VITE_`` names are
for a browser build; a server reads these.)
"""

from app.providers.base import Provider
from config import CredentialSpec

provider = Provider(
    name="openai",
    title="OpenAI",
    credentials=CredentialSpec(
        alternatives=(("OPENAI_API_KEY",),),
        optional=("OPENAI_ORG_ID",),
        public=("OPENAI_ORG_ID",),
    ),
    docs_url="https://platform.openai.com/docs/api-reference",
)
