
K9
7docker-image://docker.io/library/golang:1.26.7-bookwormR
amd64linux
Î
I
Gsha256:2af147a939f7a2405b6ab3344bcff8beef4ff2a47e51932d0e73d520a0d35cb4ğ
è
/bin/sh
-c
ÿapt-get update && apt-get install -y --no-install-recommends 		build-essential 		curl 		cmake 		git 		libseccomp-dev 		ca-certificates 		e2fsprogs 		iptables 		pkg-config 		pigz 		procps 		xfsprogs 		xz-utils 				vim-common 	&& rm -rf /var/lib/apt/lists/*APATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/binGOTOOLCHAIN=local//R
amd64linux
±
,https://download.docker.com/linux/debian/gpgX
http.checksumGsha256:1500c1f56fa9e26b9b8f42452a553675796ade0807cdce11975eb98170b3a570
http.filenamegpgR
amd64linux
â
I
Gsha256:914e131f4d1ef978ad0ad2dada6c1a47d80873a6f29242f62119e80bdd4066d0
I
Gsha256:0bcd1a65cb4265d78a6e2984894b0f4e4aea61ab1d26977242b8e38a72f88430":8"4
/gpg/etc/apt/keyrings/docker.asc ¤@XÿÿÿÿÿÿÿÿÿR
amd64linux
Ì"¹¶ÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿ*
/EOT¤†Types: deb
URIs: https://download.docker.com/linux/debian
Suites: bookworm
Components: stable
Signed-By: /etc/apt/keyrings/docker.asc
(ÿÿÿÿÿÿÿÿÿR
amd64linux
ô
I
Gsha256:4b2cb0590ce5d508b8e471daa5a33f690271ae8c7a09ad8ef7495adcf5b293d1
I
Gsha256:fce301a93e3bd624fec0c5a7db6d65dea6421a0b633690ecd7d3489010801827"LJ"F
/EOT&/etc/apt/sources.list.d/docker.sources ÿÿÿÿÿÿÿÿÿ@XÿÿÿÿÿÿÿÿÿR
amd64linux
©
I
Gsha256:79dd3177febe063a43288a78da763f2a72861d4b1ced58ed182e28ecef51f536Ë
Ã
/bin/sh
-c
½apt-get update && apt-get install -y --no-install-recommends 		containerd.io 		tini 		docker-ce-cli 	&& rm -rf /var/lib/apt/lists/* 	&& ln -s /usr/bin/tini-static /usr/local/bin/docker-initAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/binGOTOOLCHAIN=localBASE_DEBIAN_DISTRO=bookworm//R
amd64linux
‹
I
Gsha256:f2b4e6be88f06cdb791619eba8fa03e24061576cc8ca726106046b356c85b829".,ÿÿÿÿÿÿÿÿÿ2
/usr/src/mobyí(ÿÿÿÿÿÿÿÿÿR
amd64linux
31
local://context
local.sharedkeyhintcontext
à
I
Gsha256:7413cfe5c03e1e3ae344de1cc17317e40e6bb3278da168e2ad7a863ae21e6df6
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"86"2
//usr/src/moby ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
K
I
Gsha256:ff8e37c1d7188299047b0f39fe1083ed457490c241e014ca38d94ee257ee91ac˜
Gsha256:0bcd1a65cb4265d78a6e2984894b0f4e4aea61ab1d26977242b8e38a72f88430ÌÉ
llb.customname¶[ 4/11] ADD --chmod=0644 --checksum=sha256:1500c1f56fa9e26b9b8f42452a553675796ade0807cdce11975eb98170b3a570 	https://download.docker.com/linux/debian/gpg /etc/apt/keyrings/docker.asc|
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb41/
llb.customname[internal] load build context”
Gsha256:2af147a939f7a2405b6ab3344bcff8beef4ff2a47e51932d0e73d520a0d35cb4IG
llb.customname5[ 1/11] FROM docker.io/library/golang:1.26.7-bookworm˜
Gsha256:4b2cb0590ce5d508b8e471daa5a33f690271ae8c7a09ad8ef7495adcf5b293d1ÌÉ
llb.customname¶[ 4/11] ADD --chmod=0644 --checksum=sha256:1500c1f56fa9e26b9b8f42452a553675796ade0807cdce11975eb98170b3a570 	https://download.docker.com/linux/debian/gpg /etc/apt/keyrings/docker.asc|
Gsha256:7413cfe5c03e1e3ae344de1cc17317e40e6bb3278da168e2ad7a863ae21e6df61/
llb.customname[10/11] WORKDIR /usr/src/moby˜
Gsha256:79dd3177febe063a43288a78da763f2a72861d4b1ced58ed182e28ecef51f536MK
llb.customname9[ 6/11] ADD <<-EOT /etc/apt/sources.list.d/docker.sourcesí
Gsha256:914e131f4d1ef978ad0ad2dada6c1a47d80873a6f29242f62119e80bdd4066d0¡
llb.customname‹[ 3/11] RUN apt-get update && apt-get install -y --no-install-recommends 		build-essential 		curl 		cmake 		git 		libseccomp-dev 		ca-certificates 		e2fsprogs 		iptables 		pkg-config 		pigz 		procps 		xfsprogs 		xz-utils 				vim-common 	&& rm -rf /var/lib/apt/lists/*«
Gsha256:f2b4e6be88f06cdb791619eba8fa03e24061576cc8ca726106046b356c85b829ßÜ
llb.customnameÉ[ 7/11] RUN apt-get update && apt-get install -y --no-install-recommends 		containerd.io 		tini 		docker-ce-cli 	&& rm -rf /var/lib/apt/lists/* 	&& ln -s /usr/bin/tini-static /usr/local/bin/docker-initƒ
Gsha256:fce301a93e3bd624fec0c5a7db6d65dea6421a0b633690ecd7d348901080182786
llb.customname$[internal] preparing inline document{
Gsha256:ff8e37c1d7188299047b0f39fe1083ed457490c241e014ca38d94ee257ee91ac0.
llb.customname[11/11] COPY . /usr/src/mobyí
W
Gsha256:0bcd1a65cb4265d78a6e2984894b0f4e4aea61ab1d26977242b8e38a72f88430


()
W
Gsha256:2af147a939f7a2405b6ab3344bcff8beef4ff2a47e51932d0e73d520a0d35cb4



W
Gsha256:4b2cb0590ce5d508b8e471daa5a33f690271ae8c7a09ad8ef7495adcf5b293d1


()
W
Gsha256:7413cfe5c03e1e3ae344de1cc17317e40e6bb3278da168e2ad7a863ae21e6df6


<<
W
Gsha256:79dd3177febe063a43288a78da763f2a72861d4b1ced58ed182e28ecef51f536


+1
W
Gsha256:914e131f4d1ef978ad0ad2dada6c1a47d80873a6f29242f62119e80bdd4066d0


#
W
Gsha256:f2b4e6be88f06cdb791619eba8fa03e24061576cc8ca726106046b356c85b829


27
W
Gsha256:ff8e37c1d7188299047b0f39fe1083ed457490c241e014ca38d94ee257ee91ac


==¢

Dockerfile‡# docker build -t docker:simple -f Dockerfile.simple .
# docker run --rm docker:simple hack/make.sh dynbinary
# docker run --rm --privileged docker:simple hack/dind hack/make.sh test-unit
# docker run --rm --privileged -v /var/lib/docker docker:simple hack/dind hack/make.sh dynbinary test-integration

# This represents the bare minimum required to build and test Docker.

ARG GO_VERSION=1.26.7

ARG BASE_DEBIAN_DISTRO="bookworm"
ARG GOLANG_IMAGE="golang:${GO_VERSION}-${BASE_DEBIAN_DISTRO}"

FROM ${GOLANG_IMAGE}
ENV GOTOOLCHAIN=local

# Compile and runtime deps
# https://github.com/moby/moby/blob/master/project/PACKAGERS.md#build-dependencies
# https://github.com/moby/moby/blob/master/project/PACKAGERS.md#runtime-dependencies
RUN apt-get update && apt-get install -y --no-install-recommends \
		build-essential \
		curl \
		cmake \
		git \
		libseccomp-dev \
		ca-certificates \
		e2fsprogs \
		iptables \
		pkg-config \
		pigz \
		procps \
		xfsprogs \
		xz-utils \
		\
		vim-common \
	&& rm -rf /var/lib/apt/lists/*

# Install containerd.io (includes runc), tini, and docker-ce-cli.
# The versions of these dependencies differ from the main Dockerfile,
# but it should be sufficient for minimal build and test purposes.
ADD --chmod=0644 --checksum=sha256:1500c1f56fa9e26b9b8f42452a553675796ade0807cdce11975eb98170b3a570 \
	https://download.docker.com/linux/debian/gpg /etc/apt/keyrings/docker.asc
ARG BASE_DEBIAN_DISTRO
ADD <<-EOT /etc/apt/sources.list.d/docker.sources
Types: deb
URIs: https://download.docker.com/linux/debian
Suites: ${BASE_DEBIAN_DISTRO}
Components: stable
Signed-By: /etc/apt/keyrings/docker.asc
EOT
RUN apt-get update && apt-get install -y --no-install-recommends \
		containerd.io \
		tini \
		docker-ce-cli \
	&& rm -rf /var/lib/apt/lists/* \
	&& ln -s /usr/bin/tini-static /usr/local/bin/docker-init

ENV PATH=/usr/local/cli:$PATH

ENV AUTO_GOPATH 1
WORKDIR /usr/src/moby
COPY . /usr/src/moby

Dockerfile