
K9
7docker-image://docker.io/library/golang:1.26-alpine3.23R
amd64linux
@.
,docker-image://docker.io/tonistiigi/xx:1.9.0R
amd64linux
Ô
I
Gsha256:9ffe3715ca515f540b6dc638ee3563509d892b5c82bc84bd55e9408526893ea2
I
Gsha256:a5c524851c2b390cb67b3d7038eba6364e9f3a5a8b81394c407f3154a3100b1c",*"&
// ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
ú
I
Gsha256:d9a315572463aebbd88650e83c320febff16b707e9ac44f9a551b5c48d18dcf3œ
”
/bin/sh
-c
apk add --no-cache file gitAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/binGOFLAGS=-mod=vendorCGO_ENABLED=0//R
amd64linux
‚
I
Gsha256:dc4b21ce832a6173b49de0deb81ce62a2411da4f359213c103e8d5d845a530ce"%#ÿÿÿÿÿÿÿÿÿ2
/srcí(ÿÿÿÿÿÿÿÿÿR
amd64linux
31
local://context
local.sharedkeyhintcontext
€
I
Gsha256:8d4f5bf50e2f1527ee4e1f1850d57dcc982bacc7a40b14e535f1a37282977b51
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4×
¸
/bin/sh
-c
»  set -e
  case "$GIT_REF" in
    refs/tags/v*) version="${GIT_REF#refs/tags/}" ;;
    *) version=$(git describe --match 'v[0-9]*' --dirty='.m' --always --tags) ;;
  esac
  pkg=github.com/docker/buildkit-syft-scanner
  echo "${version}" | tee /tmp/.version
  echo "-extldflags -static -X ${pkg}/version.Version=${version} -X ${pkg}/version.SyftVersion=$(go list -mod=mod -u -m -f '{{.Version}}' 'github.com/anchore/syft')" | tee /tmp/.ldflags
APATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/binGOFLAGS=-mod=vendorCGO_ENABLED=0/src//src ÿÿÿÿÿÿÿÿÿ(R
amd64linux
ž
I
Gsha256:8d4f5bf50e2f1527ee4e1f1850d57dcc982bacc7a40b14e535f1a37282977b51
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4
I
Gsha256:4e63387f69272ac000ac98ac284985e5e8cd107c936b243778f829eeff0afeb9ª
£
/bin/sh
-c
Š  set -ex
  case "$(xx-info os)" in
    windows) out=/usr/local/bin/syft-scanner.exe ;;
    *) out=/usr/local/bin/syft-scanner ;;
  esac
  xx-go version
  xx-go build -trimpath -ldflags "$(cat /tmp/.ldflags)" -o "$out" ./cmd/syft-scanner
  xx-verify --static "$out"
APATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/binGOFLAGS=-mod=vendorCGO_ENABLED=0TARGETPLATFORM=linux/amd64/src//src ÿÿÿÿÿÿÿÿÿ(-/tmp/.ldflags/tmp/.ldflags ÿÿÿÿÿÿÿÿÿ(7ÿÿÿÿÿÿÿÿÿ/root/.cache ÿÿÿÿÿÿÿÿÿ0¢
/root/.cacheR
amd64linux
¼
I
Gsha256:39fc5d45300df6badafb7e27a7b63c90f3a1835d0b2bd5b6a6cf7d10cc8dce7f"_]ÿÿÿÿÿÿÿÿÿ"P
/usr/local/bin/syft-scanner/bin/syft-scanner ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
K
I
Gsha256:1a91c82a1da38794006b040c00cd51a73c027803a950431e812901e0a6ff4018|
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb41/
llb.customname[internal] load build contextª
Gsha256:1a91c82a1da38794006b040c00cd51a73c027803a950431e812901e0a6ff4018_]
llb.customnameK[linux 2/4] COPY --from=build /usr/local/bin/syft-scanner /bin/syft-scanner—
Gsha256:39fc5d45300df6badafb7e27a7b63c90f3a1835d0b2bd5b6a6cf7d10cc8dce7fËÈ
llb.customnameµ[build 3/3] RUN --mount=type=bind,target=.     --mount=type=bind,from=version,source=/tmp/.ldflags,target=/tmp/.ldflags     --mount=type=cache,target=/root/.cache <<EOT (set -ex...)“
Gsha256:4e63387f69272ac000ac98ac284985e5e8cd107c936b243778f829eeff0afeb9HF
llb.customname4[version 3/3] RUN --mount=target=. <<EOT (set -e...)v
Gsha256:8d4f5bf50e2f1527ee4e1f1850d57dcc982bacc7a40b14e535f1a37282977b51+)
llb.customname[base 6/6] WORKDIR /src—
Gsha256:9ffe3715ca515f540b6dc638ee3563509d892b5c82bc84bd55e9408526893ea2LJ
llb.customname8[base 1/6] FROM docker.io/library/golang:1.26-alpine3.23Š
Gsha256:a5c524851c2b390cb67b3d7038eba6364e9f3a5a8b81394c407f3154a3100b1c?=
llb.customname+[xx 1/1] FROM docker.io/tonistiigi/xx:1.9.0|
Gsha256:d9a315572463aebbd88650e83c320febff16b707e9ac44f9a551b5c48d18dcf31/
llb.customname[base 2/6] COPY --from=xx / /‰
Gsha256:dc4b21ce832a6173b49de0deb81ce62a2411da4f359213c103e8d5d845a530ce><
llb.customname*[base 5/6] RUN apk add --no-cache file git¨
W
Gsha256:1a91c82a1da38794006b040c00cd51a73c027803a950431e812901e0a6ff4018


<<
W
Gsha256:39fc5d45300df6badafb7e27a7b63c90f3a1835d0b2bd5b6a6cf7d10cc8dce7f


.9
W
Gsha256:4e63387f69272ac000ac98ac284985e5e8cd107c936b243778f829eeff0afeb9


!*
W
Gsha256:8d4f5bf50e2f1527ee4e1f1850d57dcc982bacc7a40b14e535f1a37282977b51



W
Gsha256:9ffe3715ca515f540b6dc638ee3563509d892b5c82bc84bd55e9408526893ea2



W
Gsha256:a5c524851c2b390cb67b3d7038eba6364e9f3a5a8b81394c407f3154a3100b1c



W
Gsha256:d9a315572463aebbd88650e83c320febff16b707e9ac44f9a551b5c48d18dcf3



W
Gsha256:dc4b21ce832a6173b49de0deb81ce62a2411da4f359213c103e8d5d845a530ce


Ý

DockerfileÂ# syntax=docker/dockerfile-upstream:1

# Copyright 2022 buildkit-syft-scanner authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

ARG GO_VERSION="1.26"
ARG ALPINE_VERSION="3.23"
ARG XX_VERSION="1.9.0"
ARG WINDOWS_VERSION="ltsc2025"

FROM --platform=$BUILDPLATFORM tonistiigi/xx:${XX_VERSION} AS xx

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine${ALPINE_VERSION} AS base
COPY --from=xx / /
ENV GOFLAGS=-mod=vendor
ENV CGO_ENABLED=0
RUN apk add --no-cache file git
WORKDIR /src

FROM base AS version
ARG GIT_REF
RUN --mount=target=. <<EOT
  set -e
  case "$GIT_REF" in
    refs/tags/v*) version="${GIT_REF#refs/tags/}" ;;
    *) version=$(git describe --match 'v[0-9]*' --dirty='.m' --always --tags) ;;
  esac
  pkg=github.com/docker/buildkit-syft-scanner
  echo "${version}" | tee /tmp/.version
  echo "-extldflags -static -X ${pkg}/version.Version=${version} -X ${pkg}/version.SyftVersion=$(go list -mod=mod -u -m -f '{{.Version}}' 'github.com/anchore/syft')" | tee /tmp/.ldflags
EOT

FROM base AS build
ARG TARGETPLATFORM
RUN --mount=type=bind,target=. \
    --mount=type=bind,from=version,source=/tmp/.ldflags,target=/tmp/.ldflags \
    --mount=type=cache,target=/root/.cache <<EOT
  set -ex
  case "$(xx-info os)" in
    windows) out=/usr/local/bin/syft-scanner.exe ;;
    *) out=/usr/local/bin/syft-scanner ;;
  esac
  xx-go version
  xx-go build -trimpath -ldflags "$(cat /tmp/.ldflags)" -o "$out" ./cmd/syft-scanner
  xx-verify --static "$out"
EOT

FROM scratch AS linux
COPY --from=build /usr/local/bin/syft-scanner /bin/syft-scanner
ENV LOG_LEVEL="warn"
ENTRYPOINT [ "/bin/syft-scanner" ]

FROM --platform=windows/amd64 mcr.microsoft.com/windows/nanoserver:${WINDOWS_VERSION} AS windows
COPY --from=build /usr/local/bin/syft-scanner.exe /syft-scanner.exe
ENV LOG_LEVEL="warn"
ENTRYPOINT [ "C:\\syft-scanner.exe" ]

ARG TARGETOS
FROM ${TARGETOS}

Dockerfile