
@.
,docker-image://docker.io/library/alpine:3.24R
amd64linux
„
I
Gsha256:737c57432835083e4d26584112a7d8de06ae9c3564b16a403eb6816c992c5bcf¦
ž
/bin/sh
-c
Ÿapk --update --no-cache add     avahi     bash     coreutils     jq     s6-overlay     samba=${SAMBA_VERSION}-${SAMBA_REVISION}     shadow     tzdata     yq   && sed -i 's/^#*enable-dbus=.*/enable-dbus=no/' /etc/avahi/avahi-daemon.conf   && rm -f /etc/avahi/services/*   && rm -rf /tmp/*APATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/binSAMBA_VERSION=4.23.8SAMBA_REVISION=r0//R
amd64linux
ö
I
Gsha256:737c57432835083e4d26584112a7d8de06ae9c3564b16a403eb6816c992c5bcf˜

/bin/sh
-c
;apk --update --no-cache add linux-headers gcc make musl-devAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
‚
I
Gsha256:ffb98ae5dcd193735e828c170eb075db407db3d89f6b66a3a92590e91c8219cf"%#ÿÿÿÿÿÿÿÿÿ2
/srcí(ÿÿÿÿÿÿÿÿÿR
amd64linux
‚
I
Gsha256:737c57432835083e4d26584112a7d8de06ae9c3564b16a403eb6816c992c5bcf"%#ÿÿÿÿÿÿÿÿÿ2
/srcí(ÿÿÿÿÿÿÿÿÿR
amd64linux
™†
Mgit://github.com/crazy-max/wsdd2.git#0098d86d2998cff056ec19e734e17bf99d5314ae5
git.fullurl&https://github.com/crazy-max/wsdd2.gitR
amd64linux
Ò
I
Gsha256:846a8b1c3d6decb012f659c0fa9b1af21aa0ad4430632569ab70810959171dd5
I
Gsha256:a9f1276374c09e8399c3a51145562a6b669960cc546946e72b022a12823b6e4b"*("$
//src/ ÿÿÿÿÿÿÿÿÿ0@XÿÿÿÿÿÿÿÿÿR
amd64linux
Ú
I
Gsha256:173c0f9d4a85147e88130eac0fd369d625e3cfaa2c66dda73f94fc76bb0c10f7
I
Gsha256:0c4b71b129cbe9b8880034684d5c512d1d6d3594a5265646568d37f2962b5f8a"20",
/src/src ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
Ö
I
Gsha256:ca997ab6f6240f0d7e4c4a3bfca59d07d181b8e57de5ddd5d8bf030acb835bb0y
r
/bin/sh
-c
make DESTDIR=/dist installAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin/src/R
amd64linux
ï
I
Gsha256:81d5bd7c44c1f895e0ef16fd5c38e94975e82a2bfcab5cc46e6d433c964cbb10
I
Gsha256:30471f135635a186985bbd133ecb2ee02399b32ed32fe97bf85c4e6e979494b9"GE"A
/dist/usr/sbin/wsdd2	/usr/bin/ ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
31
local://context
local.sharedkeyhintcontext
Ú
I
Gsha256:b36816fb39cd291c9e028a3bd149d14383f12039e160a058acfd0ffc67c7011f
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"20",
/rootfs/ ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
K
I
Gsha256:0e4c0a717cb6a5946a2883f18a5326dc59a1036f94f873b5e88cb29d43a16ae1Æ
Gsha256:0c4b71b129cbe9b8880034684d5c512d1d6d3594a5265646568d37f2962b5f8a{y
llb.customnameg[wsdd2-src 4/4] ADD "https://github.com/crazy-max/wsdd2.git#0098d86d2998cff056ec19e734e17bf99d5314ae" .|
Gsha256:0e4c0a717cb6a5946a2883f18a5326dc59a1036f94f873b5e88cb29d43a16ae11/
llb.customname[stage-2  6/11] COPY rootfs /|
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb41/
llb.customname[internal] load build contextw
Gsha256:173c0f9d4a85147e88130eac0fd369d625e3cfaa2c66dda73f94fc76bb0c10f7,*
llb.customname[wsdd2 3/5] WORKDIR /src‰
Gsha256:30471f135635a186985bbd133ecb2ee02399b32ed32fe97bf85c4e6e979494b9><
llb.customname*[wsdd2 5/5] RUN make DESTDIR=/dist install‘
Gsha256:737c57432835083e4d26584112a7d8de06ae9c3564b16a403eb6816c992c5bcfFD
llb.customname2[stage-2  1/11] FROM docker.io/library/alpine:3.24ü
Gsha256:81d5bd7c44c1f895e0ef16fd5c38e94975e82a2bfcab5cc46e6d433c964cbb10°­
llb.customnameš[stage-2  4/11] RUN apk --update --no-cache add     avahi     bash     coreutils     jq     s6-overlay     samba=4.23.8-r0     shadow     tzdata     yq   && sed -i 's/^#*enable-dbus=.*/enable-dbus=no/' /etc/avahi/avahi-daemon.conf   && rm -f /etc/avahi/services/*   && rm -rf /tmp/*{
Gsha256:846a8b1c3d6decb012f659c0fa9b1af21aa0ad4430632569ab70810959171dd50.
llb.customname[wsdd2-src 2/4] WORKDIR /srcÆ
Gsha256:a9f1276374c09e8399c3a51145562a6b669960cc546946e72b022a12823b6e4b{y
llb.customnameg[wsdd2-src 4/4] ADD "https://github.com/crazy-max/wsdd2.git#0098d86d2998cff056ec19e734e17bf99d5314ae" .Ÿ
Gsha256:b36816fb39cd291c9e028a3bd149d14383f12039e160a058acfd0ffc67c7011fTR
llb.customname@[stage-2  5/11] COPY --from=wsdd2 /dist/usr/sbin/wsdd2 /usr/bin/Š
Gsha256:ca997ab6f6240f0d7e4c4a3bfca59d07d181b8e57de5ddd5d8bf030acb835bb0?=
llb.customname+[wsdd2 4/5] COPY --from=wsdd2-src /src /srcª
Gsha256:ffb98ae5dcd193735e828c170eb075db407db3d89f6b66a3a92590e91c8219cf_]
llb.customnameK[wsdd2 2/5] RUN apk --update --no-cache add linux-headers gcc make musl-dev‚
W
Gsha256:0c4b71b129cbe9b8880034684d5c512d1d6d3594a5265646568d37f2962b5f8a



W
Gsha256:0e4c0a717cb6a5946a2883f18a5326dc59a1036f94f873b5e88cb29d43a16ae1


((
W
Gsha256:173c0f9d4a85147e88130eac0fd369d625e3cfaa2c66dda73f94fc76bb0c10f7



W
Gsha256:30471f135635a186985bbd133ecb2ee02399b32ed32fe97bf85c4e6e979494b9



W
Gsha256:737c57432835083e4d26584112a7d8de06ae9c3564b16a403eb6816c992c5bcf



W
Gsha256:81d5bd7c44c1f895e0ef16fd5c38e94975e82a2bfcab5cc46e6d433c964cbb10


%
W
Gsha256:846a8b1c3d6decb012f659c0fa9b1af21aa0ad4430632569ab70810959171dd5



W
Gsha256:a9f1276374c09e8399c3a51145562a6b669960cc546946e72b022a12823b6e4b



W
Gsha256:b36816fb39cd291c9e028a3bd149d14383f12039e160a058acfd0ffc67c7011f


''
W
Gsha256:ca997ab6f6240f0d7e4c4a3bfca59d07d181b8e57de5ddd5d8bf030acb835bb0



W
Gsha256:ffb98ae5dcd193735e828c170eb075db407db3d89f6b66a3a92590e91c8219cf


¬


Dockerfile‘
# syntax=docker/dockerfile:1

ARG ALPINE_VERSION=3.24

ARG SAMBA_VERSION=4.23.8
ARG SAMBA_REVISION=r0

ARG WSDD2_VERSION=0098d86d2998cff056ec19e734e17bf99d5314ae

FROM --platform=${BUILDPLATFORM} alpine:${ALPINE_VERSION} AS wsdd2-src
WORKDIR /src
ARG WSDD2_VERSION
ADD "https://github.com/crazy-max/wsdd2.git#${WSDD2_VERSION}" .

# TODO: do cross-compilation in this stage to build wsdd2
FROM alpine:${ALPINE_VERSION} AS wsdd2
RUN apk --update --no-cache add linux-headers gcc make musl-dev
WORKDIR /src
COPY --from=wsdd2-src /src /src
RUN make DESTDIR=/dist install

FROM alpine:${ALPINE_VERSION}
ARG SAMBA_VERSION
ARG SAMBA_REVISION
RUN apk --update --no-cache add \
    avahi \
    bash \
    coreutils \
    jq \
    s6-overlay \
    samba=${SAMBA_VERSION}-${SAMBA_REVISION} \
    shadow \
    tzdata \
    yq \
  && sed -i 's/^#*enable-dbus=.*/enable-dbus=no/' /etc/avahi/avahi-daemon.conf \
  && rm -f /etc/avahi/services/* \
  && rm -rf /tmp/*

COPY --from=wsdd2 /dist/usr/sbin/wsdd2 /usr/bin/
COPY rootfs /
ENV S6_BEHAVIOUR_IF_STAGE2_FAILS=2 \
    S6_STAGE2_HOOK=/etc/s6-overlay/scripts/runtime-bundles

EXPOSE 445 5353/udp 3702/tcp 3702/udp 5355/tcp 5355/udp
VOLUME [ "/data" ]
ENTRYPOINT [ "/init" ]

HEALTHCHECK --interval=30s --timeout=10s \
  CMD ["sh", "/usr/local/bin/healthcheck"]

Dockerfile