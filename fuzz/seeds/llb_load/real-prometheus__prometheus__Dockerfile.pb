
P>
<docker-image://quay.io/prometheus/busybox-linux-amd64:latestR
amd64linux
31
local://context
local.sharedkeyhintcontext
ÿ
I
Gsha256:5c592afa16a640a42769e232ca07458fc6de7d412571ea45f31b68189a87b852
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"WU"Q
/.build/linux-amd64/prometheus/bin/prometheus ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
û
I
Gsha256:6731b62d33a736bed357ca25e997977dbcd910a87c2564c15f41cc8101fe3cb0
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"SQ"M
/.build/linux-amd64/promtool/bin/promtool ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
–
I
Gsha256:bc7b1328173643b7a2507d3b6d5dd509f44fd26087a889336164945aa2e0c6bb
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"nl"h
&/documentation/examples/prometheus.yml/etc/prometheus/prometheus.yml ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
â
I
Gsha256:b2911c877364f1bacd0a22370e64b447ab3649347c2f874daa571ea156a1ec3a
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4":8"4
/LICENSE/LICENSE ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
à
I
Gsha256:42a984f5c364e108ed0d5221d26f255fd392e5d17bfe073adab6bb174472062b
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"86"2
/NOTICE/NOTICE ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
‰
I
Gsha256:1ed39e86036cca0db768c1c79d3f23787400127d1ff7ddd20080cfd9ba88ed6d",*ÿÿÿÿÿÿÿÿÿ2
/prometheusí(ÿÿÿÿÿÿÿÿÿR
amd64linux
¦
I
Gsha256:29f826b4003cdaae5ae881fb3874eb159935a7610eb3766d4d6e8b3247c72501È
À
/bin/sh
-c
Kchown -R nobody:nobody /etc/prometheus /prometheus && chmod g+w /prometheusAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ARCH=amd64OS=linux/prometheus/R
amd64linux
K
I
Gsha256:c0744fdd94b6969c80e2ff72a6f85e4ef1acc957ee38bd65136700ffee4425f9|
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb41/
llb.customname[internal] load build contextš
Gsha256:1ed39e86036cca0db768c1c79d3f23787400127d1ff7ddd20080cfd9ba88ed6dOM
llb.customname;[10/17] COPY NOTICE                                 /NOTICEz
Gsha256:29f826b4003cdaae5ae881fb3874eb159935a7610eb3766d4d6e8b3247c72501/-
llb.customname[11/17] WORKDIR /prometheus›
Gsha256:42a984f5c364e108ed0d5221d26f255fd392e5d17bfe073adab6bb174472062bPN
llb.customname<[ 9/17] COPY LICENSE                                /LICENSE™
Gsha256:5c592afa16a640a42769e232ca07458fc6de7d412571ea45f31b68189a87b852NL
llb.customname:[ 1/17] FROM quay.io/prometheus/busybox-linux-amd64:latest 
Gsha256:6731b62d33a736bed357ca25e997977dbcd910a87c2564c15f41cc8101fe3cb0US
llb.customnameA[ 6/17] COPY .build/linux-amd64/prometheus        /bin/prometheus±
Gsha256:b2911c877364f1bacd0a22370e64b447ab3649347c2f874daa571ea156a1ec3afd
llb.customnameR[ 8/17] COPY documentation/examples/prometheus.yml  /etc/prometheus/prometheus.ymlž
Gsha256:bc7b1328173643b7a2507d3b6d5dd509f44fd26087a889336164945aa2e0c6bbSQ
llb.customname?[ 7/17] COPY .build/linux-amd64/promtool          /bin/promtool¶
Gsha256:c0744fdd94b6969c80e2ff72a6f85e4ef1acc957ee38bd65136700ffee4425f9ki
llb.customnameW[12/17] RUN chown -R nobody:nobody /etc/prometheus /prometheus && chmod g+w /prometheusý
W
Gsha256:1ed39e86036cca0db768c1c79d3f23787400127d1ff7ddd20080cfd9ba88ed6d



W
Gsha256:29f826b4003cdaae5ae881fb3874eb159935a7610eb3766d4d6e8b3247c72501



W
Gsha256:42a984f5c364e108ed0d5221d26f255fd392e5d17bfe073adab6bb174472062b



W
Gsha256:5c592afa16a640a42769e232ca07458fc6de7d412571ea45f31b68189a87b852



W
Gsha256:6731b62d33a736bed357ca25e997977dbcd910a87c2564c15f41cc8101fe3cb0



W
Gsha256:b2911c877364f1bacd0a22370e64b447ab3649347c2f874daa571ea156a1ec3a



W
Gsha256:bc7b1328173643b7a2507d3b6d5dd509f44fd26087a889336164945aa2e0c6bb



W
Gsha256:c0744fdd94b6969c80e2ff72a6f85e4ef1acc957ee38bd65136700ffee4425f9


²

Dockerfile—ARG ARCH="amd64"
ARG OS="linux"
FROM quay.io/prometheus/busybox-${OS}-${ARCH}:latest
LABEL maintainer="The Prometheus Authors <prometheus-developers@googlegroups.com>"
LABEL org.opencontainers.image.authors="The Prometheus Authors" \
      org.opencontainers.image.vendor="Prometheus" \
      org.opencontainers.image.title="Prometheus" \
      org.opencontainers.image.description="The Prometheus monitoring system and time series database" \
      org.opencontainers.image.source="https://github.com/prometheus/prometheus" \
      org.opencontainers.image.url="https://github.com/prometheus/prometheus" \
      org.opencontainers.image.documentation="https://prometheus.io/docs" \
      org.opencontainers.image.licenses="Apache License 2.0" \
      io.prometheus.image.variant="busybox"

ARG ARCH="amd64"
ARG OS="linux"
COPY .build/${OS}-${ARCH}/prometheus        /bin/prometheus
COPY .build/${OS}-${ARCH}/promtool          /bin/promtool
COPY documentation/examples/prometheus.yml  /etc/prometheus/prometheus.yml
COPY LICENSE                                /LICENSE
COPY NOTICE                                 /NOTICE

WORKDIR /prometheus
RUN chown -R nobody:nobody /etc/prometheus /prometheus && chmod g+w /prometheus

USER       nobody
EXPOSE     9090
VOLUME     [ "/prometheus" ]
ENTRYPOINT [ "/bin/prometheus" ]
CMD        [ "--config.file=/etc/prometheus/prometheus.yml", \
             "--storage.tsdb.path=/prometheus" ]

Dockerfile