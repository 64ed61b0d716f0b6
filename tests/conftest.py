from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# "ci" keeps CI fast and deterministic; "thorough" is for local bug hunts.
settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=3000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
