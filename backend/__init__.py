"""The explorer's web service: FastAPI routes over models/ (checkpoints, generator, Q head)."""
