
B0
.docker-image://docker.io/wjdp/htmltest:v0.17.0R
amd64linux
—
I
Gsha256:eb71798307d6d74264870d122e526ad366c095cfc8d6c3e61a1c9fd05e938de1":8ÿÿÿÿÿÿÿÿÿ2+
/test/public/distributioní(ÿÿÿÿÿÿÿÿÿR
amd64linux
M;
9docker-image://docker.io/library/golang:1.25.9-alpine3.23R
amd64linux
Ï
I
Gsha256:57bc46422a14cf0e225baf8063714777c1e06cd043793c4d93e007c9fa7d7674r
k
/bin/sh
-c
apk add --no-cache gitAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
¼
I
Gsha256:b2225bc89d02d8d83ce840a7324978b68ff8d8c9f3b16a08d5235df6e2c6d643Þ
Ÿ
/bin/sh
-c
4go install github.com/gohugoio/hugo@v${HUGO_VERSION}APATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/binHUGO_VERSION=0.136.5//5ÿÿÿÿÿÿÿÿÿ/go/mod/pkg ÿÿÿÿÿÿÿÿÿ0¢
/go/mod/pkgR
amd64linux
ä
I
Gsha256:b2225bc89d02d8d83ce840a7324978b68ff8d8c9f3b16a08d5235df6e2c6d643
I
Gsha256:588b34e655d3516947b971c10e9d7a6af0bf432f14bc8e5994a54861b6fb26ad"<:"6
	/bin/hugo	/bin/hugo ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
‚
I
Gsha256:25bb48d8772a130b581046715623b1ee848e213fd9874b062149b8f1428b5cc6"%#ÿÿÿÿÿÿÿÿÿ2
/srcí(ÿÿÿÿÿÿÿÿÿR
amd64linux
31
local://context
local.sharedkeyhintcontext
É
I
Gsha256:3f9dc2645decae7bee5e766a4fd8477f0b6b3b1b80302f3938bfb2050da99df7
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4 
}
/bin/sh
-c
%hugo --gc --minify --destination /outAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin/src//docs/src ÿÿÿÿÿÿÿÿÿR
amd64linux
ð
I
Gsha256:1d1eb1c58c8a388c40d7292972eb2b5180eb19a57430f12c564cb6865ca01987
I
Gsha256:3667c9d7f65f264c7e2ef0c8d458ee8e44675c3507581490d1b5ca2176b75a73"HF"B
/out/test/public/distribution/ ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
ƒ
I
Gsha256:3edd66250311a890f04349d21061f5c20d95536e42702f4bca46f5d3d326745a"&$ÿÿÿÿÿÿÿÿÿ2
/testí(ÿÿÿÿÿÿÿÿÿR
amd64linux
ú
I
Gsha256:477973437dd4bef94d8dda9c8a7d287903e429163d9077080615638a05e6052d
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"RP"L
/docs/.htmltest.yml/test/.htmltest.yml ÿÿÿÿÿÿÿÿÿ(08@HPXÿÿÿÿÿÿÿÿÿR
amd64linux

I
Gsha256:88bc2bc0957877ff2c186d1e311d91d8e997ba754acbf1bbd46cc8ec000e8023¯
a
/bin/sh
-c
htmltestAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin/test/Eÿÿÿÿÿÿÿÿÿ/test/tmp/.htmltest ÿÿÿÿÿÿÿÿÿ0¢
/test/tmp/.htmltestR
amd64linux
K
I
Gsha256:548ebda4f01da566100f8de82eb8ee006134dc37912099048fea68f0b2a95c38|
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb41/
llb.customname[internal] load build context‹
Gsha256:1d1eb1c58c8a388c40d7292972eb2b5180eb19a57430f12c564cb6865ca01987@>
llb.customname,[test 2/6] WORKDIR /test/public/distribution›
Gsha256:25bb48d8772a130b581046715623b1ee848e213fd9874b062149b8f1428b5cc6PN
llb.customname<[build-base 2/3] COPY --from=hugo $GOPATH/bin/hugo /bin/hugoÂ
Gsha256:3667c9d7f65f264c7e2ef0c8d458ee8e44675c3507581490d1b5ca2176b75a73wu
llb.customnamec[build 2/2] RUN --mount=type=bind,rw,source=docs,target=.     hugo --gc --minify --destination /out‚
Gsha256:3edd66250311a890f04349d21061f5c20d95536e42702f4bca46f5d3d326745a75
llb.customname#[test 3/6] COPY --from=build /out .|
Gsha256:3f9dc2645decae7bee5e766a4fd8477f0b6b3b1b80302f3938bfb2050da99df71/
llb.customname[build-base 3/3] WORKDIR /srcw
Gsha256:477973437dd4bef94d8dda9c8a7d287903e429163d9077080615638a05e6052d,*
llb.customname[test 4/6] WORKDIR /test¢
Gsha256:548ebda4f01da566100f8de82eb8ee006134dc37912099048fea68f0b2a95c38WU
llb.customnameC[test 6/6] RUN --mount=type=cache,target=tmp/.htmltest     htmltest™
Gsha256:57bc46422a14cf0e225baf8063714777c1e06cd043793c4d93e007c9fa7d7674NL
llb.customname:[base 1/2] FROM docker.io/library/golang:1.25.9-alpine3.23Ä
Gsha256:588b34e655d3516947b971c10e9d7a6af0bf432f14bc8e5994a54861b6fb26adyw
llb.customnamee[hugo 3/3] RUN --mount=type=cache,target=/go/mod/pkg     go install github.com/gohugoio/hugo@v0.136.5Ž
Gsha256:88bc2bc0957877ff2c186d1e311d91d8e997ba754acbf1bbd46cc8ec000e8023CA
llb.customname/[test 5/6] ADD docs/.htmltest.yml .htmltest.yml„
Gsha256:b2225bc89d02d8d83ce840a7324978b68ff8d8c9f3b16a08d5235df6e2c6d64397
llb.customname%[base 2/2] RUN apk add --no-cache gitŽ
Gsha256:eb71798307d6d74264870d122e526ad366c095cfc8d6c3e61a1c9fd05e938de1CA
llb.customname/[test 1/6] FROM docker.io/wjdp/htmltest:v0.17.0Ð
W
Gsha256:1d1eb1c58c8a388c40d7292972eb2b5180eb19a57430f12c564cb6865ca01987


((
W
Gsha256:25bb48d8772a130b581046715623b1ee848e213fd9874b062149b8f1428b5cc6



W
Gsha256:3667c9d7f65f264c7e2ef0c8d458ee8e44675c3507581490d1b5ca2176b75a73



W
Gsha256:3edd66250311a890f04349d21061f5c20d95536e42702f4bca46f5d3d326745a


))
W
Gsha256:3f9dc2645decae7bee5e766a4fd8477f0b6b3b1b80302f3938bfb2050da99df7



W
Gsha256:477973437dd4bef94d8dda9c8a7d287903e429163d9077080615638a05e6052d


**
W
Gsha256:548ebda4f01da566100f8de82eb8ee006134dc37912099048fea68f0b2a95c38


,-
W
Gsha256:57bc46422a14cf0e225baf8063714777c1e06cd043793c4d93e007c9fa7d7674



W
Gsha256:588b34e655d3516947b971c10e9d7a6af0bf432f14bc8e5994a54861b6fb26ad



W
Gsha256:88bc2bc0957877ff2c186d1e311d91d8e997ba754acbf1bbd46cc8ec000e8023


++
W
Gsha256:b2225bc89d02d8d83ce840a7324978b68ff8d8c9f3b16a08d5235df6e2c6d643



W
Gsha256:eb71798307d6d74264870d122e526ad366c095cfc8d6c3e61a1c9fd05e938de1


$$¡

Dockerfile†# syntax=docker/dockerfile:1

# GO_VERSION sets the version of the golang base image to use.
# It must be a supported tag in the docker.io/library/golang image repository.
ARG GO_VERSION=1.25.9

# ALPINE_VERSION sets the version of the alpine base image to use, including for the golang image.
# It must be a supported tag in the docker.io/library/alpine image repository
# that's also available as alpine image variant for the Golang version used.
ARG ALPINE_VERSION=3.23

FROM golang:${GO_VERSION}-alpine${ALPINE_VERSION} AS base
RUN apk add --no-cache git

FROM base AS hugo
ARG HUGO_VERSION=0.136.5
RUN --mount=type=cache,target=/go/mod/pkg \
    go install github.com/gohugoio/hugo@v${HUGO_VERSION}

FROM base AS build-base
COPY --from=hugo $GOPATH/bin/hugo /bin/hugo
WORKDIR /src

FROM build-base AS build
RUN --mount=type=bind,rw,source=docs,target=. \
    hugo --gc --minify --destination /out

FROM build-base AS server
COPY docs .
ENTRYPOINT [ "hugo", "server", "--bind", "0.0.0.0" ]
EXPOSE 1313

FROM scratch AS out
COPY --from=build /out /

FROM wjdp/htmltest:v0.17.0 AS test
# Copy the site to a public/distribution subdirectory
# This is a workaround for a limitation in htmltest, see:
# https://github.com/wjdp/htmltest/issues/45
WORKDIR /test/public/distribution
COPY --from=build /out .
WORKDIR /test
ADD docs/.htmltest.yml .htmltest.yml
RUN --mount=type=cache,target=tmp/.htmltest \
    htmltest

Dockerfile