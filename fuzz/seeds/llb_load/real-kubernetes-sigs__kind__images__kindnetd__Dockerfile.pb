
YG
Edocker-image://registry.k8s.io/build-image/distroless-iptables:v0.8.7R
amd64linux
B0
.docker-image://docker.io/library/golang:latestR
amd64linux
…
I
Gsha256:223bd56a9d7a9b14b076a3d9e7bc10602717e59c06f838190a577c83994d42d4"(&ÿÿÿÿÿÿÿÿÿ2
/go/srcí(ÿÿÿÿÿÿÿÿÿR
amd64linux
31
local://context
local.sharedkeyhintcontext
ù
I
Gsha256:c1a5fda04b23fe452dc7ca50c129d80006dd618e446702e6e2a32ce49b51646c
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"QO"K
 /scripts/third_party/gimme/gimme/usr/local/bin/ í(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
§
I
Gsha256:d840755934e85ab252958c518d74f23ade0c009c7d735c3a0e77b6fe44568dcf
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"Bÿÿÿÿÿÿÿÿÿ"3
/go.mod/go/src/ ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿ9"3
/go.sum/go/src/ ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
ð
I
Gsha256:901b8a1d9e844934b80824706767f88cb6e03d173afab2640f6db23e19585311’
Š
/bin/sh
-c
®eval "$(gimme "${GO_VERSION}")"     && export GOTOOLCHAIN="go${GO_VERSION}"     && go mod download     && GOBIN=/usr/local/bin go install github.com/google/go-licenses@latestAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin/go/src/R
amd64linux
Û
I
Gsha256:5864ae6245e2a30c496f48d03be981549ceaa03ab14428991e69ade41cdb64b0
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"31"-
//go/src/ ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
¾
I
Gsha256:6e8bd80291410103b82e71b3b76d086a06c33d946bb476d865e6eca4791e7693à
Ø
/bin/sh
-c
êeval "$(gimme "${GO_VERSION}")"     && export GOTOOLCHAIN="go${GO_VERSION}"     && CGO_ENABLED=0 GOARCH=$TARGETARCH go build -o ./kindnetd ./cmd/kindnetd     && GOARCH=$TARGETARCH go-licenses save --save_path=/_LICENSES ./cmd/kindnetdAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/binTARGETARCH=amd64/go/src/R
amd64linux
…
I
Gsha256:1f5ee1bf03aaca55494a61cc47a40eb1388c982b76fc76ccbc5db68f9d56ede6
I
Gsha256:bb0161d6b5a02d03f64696bc0fd963b1440999372d57f480f68a687f8d918509"]["W
/go/src/kindnetd/bin/kindnetd


root

root ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
è
I
Gsha256:752ab34e06c060872ae3fad324443b0f8b8501d8014101f63d6e0e2d3c7653b6
I
Gsha256:bb0161d6b5a02d03f64696bc0fd963b1440999372d57f480f68a687f8d918509"@>":
/_LICENSES/*
/LICENSES/ ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
æ
I
Gsha256:a0ebaa3d0e62aeff8d71c96db4282daf85615c0b87dc7b6df926bb262ea5458f
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"><"8
/files/LICENSES/*/LICENSES/* ¤(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
K
I
Gsha256:f4013d812f429909bf84ec7b849602b7938079673f8662ce5b4e8cf881a77b6d|
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb41/
llb.customname[internal] load build context¨
Gsha256:1f5ee1bf03aaca55494a61cc47a40eb1388c982b76fc76ccbc5db68f9d56ede6][
llb.customnameI[stage-1 1/5] FROM registry.k8s.io/build-image/distroless-iptables:v0.8.7‘
Gsha256:223bd56a9d7a9b14b076a3d9e7bc10602717e59c06f838190a577c83994d42d4FD
llb.customname2[stage-0 1/9] FROM docker.io/library/golang:latest¢
Gsha256:5864ae6245e2a30c496f48d03be981549ceaa03ab14428991e69ade41cdb64b0ÖÓ
llb.customnameÀ[stage-0 6/9] RUN eval "$(gimme "${GO_VERSION}")"     && export GOTOOLCHAIN="go${GO_VERSION}"     && go mod download     && GOBIN=/usr/local/bin go install github.com/google/go-licenses@latestu
Gsha256:6e8bd80291410103b82e71b3b76d086a06c33d946bb476d865e6eca4791e7693*(
llb.customname[stage-0 7/9] COPY . .¬
Gsha256:752ab34e06c060872ae3fad324443b0f8b8501d8014101f63d6e0e2d3c7653b6a_
llb.customnameM[stage-1 2/5] COPY --from=0 --chown=root:root ./go/src/kindnetd /bin/kindnetd‚
Gsha256:901b8a1d9e844934b80824706767f88cb6e03d173afab2640f6db23e1958531175
llb.customname#[stage-0 4/9] COPY go.mod go.sum ./’
Gsha256:a0ebaa3d0e62aeff8d71c96db4282daf85615c0b87dc7b6df926bb262ea5458fGE
llb.customname3[stage-1 3/5] COPY --from=0 /_LICENSES/* /LICENSES/Ò
Gsha256:bb0161d6b5a02d03f64696bc0fd963b1440999372d57f480f68a687f8d918509†ƒ
llb.customnameð[stage-0 9/9] RUN eval "$(gimme "${GO_VERSION}")"     && export GOTOOLCHAIN="go${GO_VERSION}"     && CGO_ENABLED=0 GOARCH=amd64 go build -o ./kindnetd ./cmd/kindnetd     && GOARCH=amd64 go-licenses save --save_path=/_LICENSES ./cmd/kindnetd|
Gsha256:c1a5fda04b23fe452dc7ca50c129d80006dd618e446702e6e2a32ce49b51646c1/
llb.customname[stage-0 2/9] WORKDIR /go/src®
Gsha256:d840755934e85ab252958c518d74f23ade0c009c7d735c3a0e77b6fe44568dcfca
llb.customnameO[stage-0 3/9] COPY --chmod=0755 scripts/third_party/gimme/gimme /usr/local/bin/›
Gsha256:f4013d812f429909bf84ec7b849602b7938079673f8662ce5b4e8cf881a77b6dPN
llb.customname<[stage-1 4/5] COPY --chmod=0644 files/LICENSES/* /LICENSES/*Ú
W
Gsha256:1f5ee1bf03aaca55494a61cc47a40eb1388c982b76fc76ccbc5db68f9d56ede6


%%
W
Gsha256:223bd56a9d7a9b14b076a3d9e7bc10602717e59c06f838190a577c83994d42d4



W
Gsha256:5864ae6245e2a30c496f48d03be981549ceaa03ab14428991e69ade41cdb64b0



W
Gsha256:6e8bd80291410103b82e71b3b76d086a06c33d946bb476d865e6eca4791e7693



W
Gsha256:752ab34e06c060872ae3fad324443b0f8b8501d8014101f63d6e0e2d3c7653b6


&&
W
Gsha256:901b8a1d9e844934b80824706767f88cb6e03d173afab2640f6db23e19585311



W
Gsha256:a0ebaa3d0e62aeff8d71c96db4282daf85615c0b87dc7b6df926bb262ea5458f


''
W
Gsha256:bb0161d6b5a02d03f64696bc0fd963b1440999372d57f480f68a687f8d918509


"
W
Gsha256:c1a5fda04b23fe452dc7ca50c129d80006dd618e446702e6e2a32ce49b51646c



W
Gsha256:d840755934e85ab252958c518d74f23ade0c009c7d735c3a0e77b6fe44568dcf



W
Gsha256:f4013d812f429909bf84ec7b849602b7938079673f8662ce5b4e8cf881a77b6d


((„

Dockerfileé# Copyright 2019 The Kubernetes Authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

# first stage build kindnetd binary
# NOTE: the actual go version will be overridden
FROM --platform=$BUILDPLATFORM docker.io/library/golang:latest
WORKDIR /go/src
COPY --chmod=0755 scripts/third_party/gimme/gimme /usr/local/bin/
# make deps fetching cacheable
COPY go.mod go.sum ./
# set by makefile to .go-version
ARG GO_VERSION
RUN eval "$(gimme "${GO_VERSION}")" \
    && export GOTOOLCHAIN="go${GO_VERSION}" \
    && go mod download \
    && GOBIN=/usr/local/bin go install github.com/google/go-licenses@latest
# build
COPY . .
ARG TARGETARCH
RUN eval "$(gimme "${GO_VERSION}")" \
    && export GOTOOLCHAIN="go${GO_VERSION}" \
    && CGO_ENABLED=0 GOARCH=$TARGETARCH go build -o ./kindnetd ./cmd/kindnetd \
    && GOARCH=$TARGETARCH go-licenses save --save_path=/_LICENSES ./cmd/kindnetd

# build real kindnetd image
FROM registry.k8s.io/build-image/distroless-iptables:v0.8.7
COPY --from=0 --chown=root:root ./go/src/kindnetd /bin/kindnetd
COPY --from=0 /_LICENSES/* /LICENSES/
COPY --chmod=0644 files/LICENSES/* /LICENSES/*
CMD ["/bin/kindnetd"]

Dockerfile