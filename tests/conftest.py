"""Settings shared by every test tier."""

from __future__ import annotations

from hypothesis import settings

# Wall-clock deadlines make property tests flaky on a loaded 2-core CI machine; slowness is the benchmarks' job.
settings.register_profile("goqueue", deadline=None, print_blob=True)
settings.load_profile("goqueue")
