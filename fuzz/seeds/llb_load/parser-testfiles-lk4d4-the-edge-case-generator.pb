
N<
:docker-image://docker.io/library/busybox:buildroot-2014.02R
amd64linux
³
I
Gsha256:fb4704f77d12506a3be333353ef7606b6add1eb00f8b31652dfcc4002e411feaV
O
ls
-laAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
¸
I
Gsha256:a9c306e9ae539ba4341bcc9808c44b02c2fe04e39b152008590cea9c26fb97ba[
T
echo
'1234'APATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
Ä
I
Gsha256:a30be32cac005ec00ba036c4d260d159979f968d9b7de9baf71bc0e9e573dc98g
`
/bin/sh
-c
echo "1234"APATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
Â
I
Gsha256:de550bcdb396dce5cacc295d7665484fbccb284f8974a8deedcac82a823b1912e
^
/bin/sh
-c
	echo 1234APATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
è
I
Gsha256:502473c80805792d67dc3ac5082b094eeab04caa1cccb10522d37b47373c0925Š
‚
/bin/sh
-c
-echo '1234' &&     echo "456" &&     echo 789APATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
ë
I
Gsha256:2b881a8c1b22dadddc24d21823066cb505ac53d23574155e5572fafdcc94ca1c
…
/bin/sh
-c
0sh -c 'echo root:testpass         > /tmp/passwd'APATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
Ú
I
Gsha256:0688929869c65322eac9395c0eb0b07b8e708560a34d3a61b171d62b45a84795}
v
/bin/sh
-c
!mkdir -p /test /test2 /test3/testAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
›
I
Gsha256:5556ad7d17f7f5a7c83e758441944ed1197cf6975b295ca789ff9fd4504979c0"><ÿÿÿÿÿÿÿÿÿ2/
/testí"



docker

root(ÿÿÿÿÿÿÿÿÿR
amd64linux
31
local://context
local.sharedkeyhintcontext
Ö
I
Gsha256:9cedc39fe9a956c504aaf9eb04bec666039748177a8374069a0a5ea59f147ff3
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4".,"(
// ÿÿÿÿÿÿÿÿÿ(08@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
Ý
I
Gsha256:d898be980449b3779a8b483218ad100f865a0b2d5ac39d05752a916ebea25c32
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"53"/
/
/test/copy ÿÿÿÿÿÿÿÿÿ(0@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
K
I
Gsha256:b637bfa93206bfcadb3f995b17d22dcfd0492a9d76d4866cf6dfe5911dad20afž
Gsha256:0688929869c65322eac9395c0eb0b07b8e708560a34d3a61b171d62b45a84795SQ
llb.customname?[11/29] RUN    sh -c 'echo root:testpass         > /tmp/passwd'|
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb41/
llb.customname[internal] load build context˜
Gsha256:2b881a8c1b22dadddc24d21823066cb505ac53d23574155e5572fafdcc94ca1cMK
llb.customname9[10/29] RUN echo '1234' &&     echo "456" &&     echo 789t
Gsha256:502473c80805792d67dc3ac5082b094eeab04caa1cccb10522d37b47373c0925)'
llb.customname[ 9/29] RUN echo 1234Œ
Gsha256:5556ad7d17f7f5a7c83e758441944ed1197cf6975b295ca789ff9fd4504979c0A?
llb.customname-[12/29] RUN mkdir -p /test /test2 /test3/testt
Gsha256:9cedc39fe9a956c504aaf9eb04bec666039748177a8374069a0a5ea59f147ff3)'
llb.customname[27/29] WORKDIR /test}
Gsha256:a30be32cac005ec00ba036c4d260d159979f968d9b7de9baf71bc0e9e573dc9820
llb.customname[ 7/29] RUN ["echo", "'1234'"]x
Gsha256:a9c306e9ae539ba4341bcc9808c44b02c2fe04e39b152008590cea9c26fb97ba-+
llb.customname[ 6/29] RUN ["ls", "-la"]r
Gsha256:b637bfa93206bfcadb3f995b17d22dcfd0492a9d76d4866cf6dfe5911dad20af'%
llb.customname[29/29] COPY . copyn
Gsha256:d898be980449b3779a8b483218ad100f865a0b2d5ac39d05752a916ebea25c32#!
llb.customname[28/29] ADD . /v
Gsha256:de550bcdb396dce5cacc295d7665484fbccb284f8974a8deedcac82a823b1912+)
llb.customname[ 8/29] RUN echo "1234"—
Gsha256:fb4704f77d12506a3be333353ef7606b6add1eb00f8b31652dfcc4002e411feaLJ
llb.customname8[ 1/29] FROM docker.io/library/busybox:buildroot-2014.02Ç
W
Gsha256:0688929869c65322eac9395c0eb0b07b8e708560a34d3a61b171d62b45a84795



W
Gsha256:2b881a8c1b22dadddc24d21823066cb505ac53d23574155e5572fafdcc94ca1c



W
Gsha256:502473c80805792d67dc3ac5082b094eeab04caa1cccb10522d37b47373c0925



W
Gsha256:5556ad7d17f7f5a7c83e758441944ed1197cf6975b295ca789ff9fd4504979c0



W
Gsha256:9cedc39fe9a956c504aaf9eb04bec666039748177a8374069a0a5ea59f147ff3


--
W
Gsha256:a30be32cac005ec00ba036c4d260d159979f968d9b7de9baf71bc0e9e573dc98



W
Gsha256:a9c306e9ae539ba4341bcc9808c44b02c2fe04e39b152008590cea9c26fb97ba



W
Gsha256:b637bfa93206bfcadb3f995b17d22dcfd0492a9d76d4866cf6dfe5911dad20af


00
W
Gsha256:d898be980449b3779a8b483218ad100f865a0b2d5ac39d05752a916ebea25c32


//
W
Gsha256:de550bcdb396dce5cacc295d7665484fbccb284f8974a8deedcac82a823b1912



W
Gsha256:fb4704f77d12506a3be333353ef7606b6add1eb00f8b31652dfcc4002e411fea


ñ

DockerfileÖFROM busybox:buildroot-2014.02

LABEL maintainer docker <docker@docker.io>

ONBUILD RUN ["echo", "test"]
ONBUILD RUN echo test
ONBUILD COPY . /


# RUN Commands \
# linebreak in comment \
RUN ["ls", "-la"]
RUN ["echo", "'1234'"]
RUN echo "1234"
RUN echo 1234
RUN echo '1234' && \
    echo "456" && \
    echo 789
RUN    sh -c 'echo root:testpass \
        > /tmp/passwd'
RUN mkdir -p /test /test2 /test3/test

# ENV \
ENV SCUBA 1 DUBA 3
ENV SCUBA "1 DUBA 3"

# CMD \
CMD ["echo", "test"]
CMD echo test
CMD echo "test"
CMD echo 'test'
CMD echo 'test' | wc -

#EXPOSE\
EXPOSE 3000
EXPOSE 9000 5000 6000

USER docker
USER docker:root

VOLUME ["/test"]
VOLUME ["/test", "/test2"]
VOLUME /test3

WORKDIR /test

ADD . /
COPY . copy

Dockerfile