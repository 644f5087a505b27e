# The explorer as an image: `docker compose up` builds it for the CPU and serves on port 8000.
# TORCH_INDEX picks the torch wheel: PyTorch's CPU index by default (the default PyPI wheel
# brings gigabytes of CUDA); compose's `train` service builds a CUDA variant with it.
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, in its own layer: it is by far the largest and changes least.
RUN pip install torch==2.13.0 --index-url "$TORCH_INDEX"

WORKDIR /app
# Sources, the page (frontend/) and the shipped model (models/pretrained/); .dockerignore keeps
# virtual environments, runs and caches out.
COPY . .
RUN pip install . \
    && useradd --create-home explorer \
    && mkdir -p /data/checkpoints /data/runs \
    && chown -R explorer /data
USER explorer

EXPOSE 8000
CMD ["uvicorn", "backend.app:app", "--host", "0.0.0.0", "--port", "8000"]
