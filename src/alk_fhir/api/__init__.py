"""The HTTP service: one FastAPI app composing the faces (knowledge, validation, apply, CDS, overview)."""
