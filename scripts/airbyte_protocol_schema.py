"""Write the Airbyte protocol's JSON Schema that the protocol tests validate against.

The protocol is published on PyPI as `airbyte-protocol-models` (pydantic models
generated from the protocol's YAML). That package brings pydantic, which the tap
must not depend on, so run this once in a scratch environment and commit the
output:

    python -m venv /tmp/gen && /tmp/gen/bin/pip install airbyte-protocol-models==0.18.0
    /tmp/gen/bin/python scripts/airbyte_protocol_schema.py > tests/airbyte/protocol.json
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

from airbyte_protocol.models import AirbyteMessage  # type: ignore[import-not-found]

schema = json.loads(AirbyteMessage.schema_json())
schema["$comment"] = (
    "AirbyteMessage from airbyte-protocol-models "
    f"{version('airbyte-protocol-models')} (PyPI), by scripts/airbyte_protocol_schema.py"
)
json.dump(schema, sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")
