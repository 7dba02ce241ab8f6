
N<
:docker-image://docker.io/library/python:3.12-slim-bookwormR
amd64linux

I
Gsha256:c59468087a2b350342028033a0ff7d5c590fca7e846b3eb791058f2584602028¿
·
/bin/sh
-c
bgroupadd --system --gid 999 nonroot  && useradd --system --gid 999 --uid 999 --create-home nonrootAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
P>
<docker-image://ghcr.io/astral-sh/uv:python3.12-bookworm-slimR
amd64linux
‚
I
Gsha256:fea7988a8fc65bb920fd75dea20f39131f300e0add508be2e4fcdc4f84915f0a"%#ÿÿÿÿÿÿÿÿÿ2
/appí(ÿÿÿÿÿÿÿÿÿR
amd64linux
31
local://context
local.sharedkeyhintcontext
›
I
Gsha256:3f7ebb328ffcaff880a5ef9b11e28dd8db3803e947209f506150c01f8bd8c866
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4ò
Ë
/bin/sh
-c
%uv sync --locked --no-install-projectAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/binUV_COMPILE_BYTECODE=1UV_LINK_MODE=copyUV_NO_DEV=1UV_PYTHON_DOWNLOADS=0/app/=ÿÿÿÿÿÿÿÿÿ/root/.cache/uv ÿÿÿÿÿÿÿÿÿ0¢
/root/.cache/uv'/uv.lock/app/uv.lock ÿÿÿÿÿÿÿÿÿ(5/pyproject.toml/app/pyproject.toml ÿÿÿÿÿÿÿÿÿ(R
amd64linux
×
I
Gsha256:f9ffccdb177c8d68fac90775c7f85dca30db7aa07917a62072fe4d78ba12fe2b
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"/-")
//app ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
Û
I
Gsha256:a7f38bd76927aaad4cd0d8d215d05d05b075bd2744dc637d8e92d9959b2e3ed8ý
¶
/bin/sh
-c
uv sync --lockedAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/binUV_COMPILE_BYTECODE=1UV_LINK_MODE=copyUV_NO_DEV=1UV_PYTHON_DOWNLOADS=0/app/=ÿÿÿÿÿÿÿÿÿ/root/.cache/uv ÿÿÿÿÿÿÿÿÿ0¢
/root/.cache/uvR
amd64linux
ö
I
Gsha256:c026d54ec13ddb27bf875ddad422acaa652e2a5021a80253eb41840cc9a2b0c4
I
Gsha256:e4482afaecccddcd55f260a13fee4961ade8dd03367035c23d7e9e799cba80df"NL"H
/app/app

	
nonroot
	
nonroot ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
‘
I
Gsha256:0b283240dfa8a86e52a1b15168d2268365429427e581f86f653b808468b16701"42ÿÿÿÿÿÿÿÿÿ2%
/appí"

	
nonroot(ÿÿÿÿÿÿÿÿÿR
amd64linux
K
I
Gsha256:9ab17926ba3c716c086946d995bd5da180309ab1a5326e751d4f80d7ce7c04dd¢
Gsha256:0b283240dfa8a86e52a1b15168d2268365429427e581f86f653b808468b16701WU
llb.customnameC[stage-1 3/7] COPY --from=builder --chown=nonroot:nonroot /app /app|
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb41/
llb.customname[internal] load build contexty
Gsha256:3f7ebb328ffcaff880a5ef9b11e28dd8db3803e947209f506150c01f8bd8c866.,
llb.customname[builder 5/8] WORKDIR /appy
Gsha256:9ab17926ba3c716c086946d995bd5da180309ab1a5326e751d4f80d7ce7c04dd.,
llb.customname[stage-1 6/7] WORKDIR /appx
Gsha256:a7f38bd76927aaad4cd0d8d215d05d05b075bd2744dc637d8e92d9959b2e3ed8-+
llb.customname[builder 7/8] COPY . /appÕ
Gsha256:c026d54ec13ddb27bf875ddad422acaa652e2a5021a80253eb41840cc9a2b0c4‰†
llb.customnamet[stage-1 2/7] RUN groupadd --system --gid 999 nonroot  && useradd --system --gid 999 --uid 999 --create-home nonroot
Gsha256:c59468087a2b350342028033a0ff7d5c590fca7e846b3eb791058f2584602028RP
llb.customname>[stage-1 1/7] FROM docker.io/library/python:3.12-slim-bookworm¯
Gsha256:e4482afaecccddcd55f260a13fee4961ade8dd03367035c23d7e9e799cba80dfdb
llb.customnameP[builder 8/8] RUN --mount=type=cache,target=/root/.cache/uv     uv sync --locked½
Gsha256:f9ffccdb177c8d68fac90775c7f85dca30db7aa07917a62072fe4d78ba12fe2bñî
llb.customnameÛ[builder 6/8] RUN --mount=type=cache,target=/root/.cache/uv     --mount=type=bind,source=uv.lock,target=uv.lock     --mount=type=bind,source=pyproject.toml,target=pyproject.toml     uv sync --locked --no-install-projectŸ
Gsha256:fea7988a8fc65bb920fd75dea20f39131f300e0add508be2e4fcdc4f84915f0aTR
llb.customname@[builder 1/8] FROM ghcr.io/astral-sh/uv:python3.12-bookworm-slimØ
W
Gsha256:0b283240dfa8a86e52a1b15168d2268365429427e581f86f653b808468b16701


&&
W
Gsha256:3f7ebb328ffcaff880a5ef9b11e28dd8db3803e947209f506150c01f8bd8c866



W
Gsha256:9ab17926ba3c716c086946d995bd5da180309ab1a5326e751d4f80d7ce7c04dd


//
W
Gsha256:a7f38bd76927aaad4cd0d8d215d05d05b075bd2744dc637d8e92d9959b2e3ed8



W
Gsha256:c026d54ec13ddb27bf875ddad422acaa652e2a5021a80253eb41840cc9a2b0c4


"#
W
Gsha256:c59468087a2b350342028033a0ff7d5c590fca7e846b3eb791058f2584602028



W
Gsha256:e4482afaecccddcd55f260a13fee4961ade8dd03367035c23d7e9e799cba80df



W
Gsha256:f9ffccdb177c8d68fac90775c7f85dca30db7aa07917a62072fe4d78ba12fe2b



W
Gsha256:fea7988a8fc65bb920fd75dea20f39131f300e0add508be2e4fcdc4f84915f0a


´

Dockerfile™# An example using multi-stage image builds to create a final image without uv.

# First, build the application in the `/app` directory.
# See `Dockerfile` for details.
FROM ghcr.io/astral-sh/uv:python3.12-bookworm-slim AS builder
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy

# Omit development dependencies
ENV UV_NO_DEV=1

# Disable Python downloads, because we want to use the system interpreter
# across both images. If using a managed Python version, it needs to be
# copied from the build image into the final image; see `standalone.Dockerfile`
# for an example.
ENV UV_PYTHON_DOWNLOADS=0

WORKDIR /app
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --locked --no-install-project
COPY . /app
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked


# Then, use a final image without uv
FROM python:3.12-slim-bookworm
# It is important to use the image that matches the builder, as the path to the
# Python executable must be the same, e.g., using `python:3.11-slim-bookworm`
# will fail.

# Setup a non-root user
RUN groupadd --system --gid 999 nonroot \
 && useradd --system --gid 999 --uid 999 --create-home nonroot

# Copy the application from the builder
COPY --from=builder --chown=nonroot:nonroot /app /app

# Place executables in the environment at the front of the path
ENV PATH="/app/.venv/bin:$PATH"

# Use the non-root user to run our application
USER nonroot

# Use `/app` as the working directory
WORKDIR /app

# Run the FastAPI application by default
CMD ["fastapi", "run", "--host", "0.0.0.0", "src/uv_docker_example"]

Dockerfile