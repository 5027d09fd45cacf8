"""Talking to the outside: OCI registries (with their credentials) and S3 for remote datasets.

Every network call lives here, behind timeouts and bounded retries."""
