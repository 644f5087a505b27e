# The explorer as an image: `docker compose up` builds it for the CPU and serves on port 8000.
# Layers, the largest and least often changed first: torch; the other dependencies, read from
# pyproject.toml alone; then the sources, installed in editable mode, so uvicorn and the `infogan`
# CLI both import /app and the image holds one copy of the code and of the shipped model.
# TORCH_INDEX picks the torch wheel: PyTorch's CPU index by default (the default PyPI wheel
# brings gigabytes of CUDA). Compose's `train` service builds a CUDA variant with it and
# WITH_COMPILER=1: torch.compile (`--compile on`) needs a C compiler at run time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# /data is where compose mounts its volumes; a new named volume takes this owner.
RUN useradd --create-home explorer && mkdir -p /data/checkpoints /data/runs && chown -R explorer /data

# gcc and g++ for torch.compile (Triton builds its launchers with gcc against Python.h, Inductor's CPU
# kernels need g++); Python's headers come from the apt package only where the base image lacks them.
ARG WITH_COMPILER=0
RUN if [ "$WITH_COMPILER" = 1 ]; then \
        packages="gcc g++ libc6-dev"; \
        include=$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])'); \
        [ -f "$include/Python.h" ] || packages="$packages python3-dev"; \
        apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages >/dev/null \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# torch in its own layer. Each pip layer then drops test suites no import needs: `tests` folders
# (numpy, scipy, sympy, ...) and torch's C++ unit-test binaries (torch/test): 0.18 GB in all.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install torch==2.13.0 --index-url "$TORCH_INDEX" \
    && site=$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
    && rm -rf "$site/torch/test" && find "$site" -type d -name tests -prune -exec rm -rf {} +

# The other dependencies and the build backend, from pyproject.toml only: editing anything else
# reuses this layer. (torch==2.13.0 is already satisfied by the wheel above.)
WORKDIR /app
COPY pyproject.toml ./
RUN python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb")); \
print(*p["build-system"]["requires"], *p["project"]["dependencies"], sep="\n")' >/tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt \
    && site=$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
    && find "$site" -type d -name tests -prune -exec rm -rf {} +

# Sources, the page (frontend/) and the shipped model (models/pretrained/); .dockerignore lets in
# nothing else. The editable install only links site-packages to /app and adds the CLI.
COPY . .
RUN pip install --no-deps --no-build-isolation --editable . && rm -rf build ./*.egg-info
USER explorer

EXPOSE 8000
CMD ["uvicorn", "backend.app:app", "--host", "0.0.0.0", "--port", "8000"]
