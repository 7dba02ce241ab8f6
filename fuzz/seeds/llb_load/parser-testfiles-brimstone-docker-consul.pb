
C1
/docker-image://docker.io/brimstone/ubuntu:14.04R
amd64linux
¶
I
Gsha256:cfdee63796d8dfe0ec6d870bbf0810fb8e45f172f1a48329b40cf6319d707842Ø
Ð
/bin/sh
-c
{apt-get update     && apt-get --no-install-recommends install -y unzip wget 	&& apt-get clean 	&& rm -rf /var/lib/apt/listsAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
à
I
Gsha256:ecbf18935dd16a7926f1bd9c334573416c7522ccb83a0b7d607924d95035c5d2‚
ú
/bin/sh
-c
¤cd /tmp     && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip        -O web_ui.zip     && unzip web_ui.zip     && mv dist /webui     && rm web_ui.zipAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
È
I
Gsha256:4da3d515ba7b6f830044e53bd16cabcdba41e26a7381ede56c19cd3c7c066d66ê
â
/bin/sh
-c
Œapt-get update 	&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean     && apt-get --no-install-recommends install -y unzip wget     && apt-get clean     && rm -rf /var/lib/apt/lists     && cd /tmp     && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip        -O web_ui.zip     && unzip web_ui.zip     && mv dist /webui     && rm web_ui.zip 	&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty 	&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') 	&& rm /tmp/dpkg.*APATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
¯
I
Gsha256:24066516ede6fe3d9f815fe1770cacdfd16f4dd4a033d0538830508a5a73212aÑ
É
/bin/sh
-c
çapt-get update 	&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean     && apt-get --no-install-recommends install -y git golang ca-certificates build-essential     && apt-get clean     && rm -rf /var/lib/apt/lists 	&& go get -v github.com/hashicorp/consul 	&& mv $GOPATH/bin/consul /usr/bin/consul 	&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty 	&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') 	&& rm /tmp/dpkg.* 	&& rm -rf $GOPATHAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
GOPATH=/go//R
amd64linux
K
I
Gsha256:ba27630e0f5c94d14c0c31d78793cce7b98dabcf9656f5f98329f91b4e2a8c29ø
Gsha256:24066516ede6fe3d9f815fe1770cacdfd16f4dd4a033d0538830508a5a73212a¬©
llb.customname–[7/9] RUN apt-get update 	&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean     && apt-get --no-install-recommends install -y unzip wget     && apt-get clean     && rm -rf /var/lib/apt/lists     && cd /tmp     && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip        -O web_ui.zip     && unzip web_ui.zip     && mv dist /webui     && rm web_ui.zip 	&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty 	&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') 	&& rm /tmp/dpkg.*
Gsha256:4da3d515ba7b6f830044e53bd16cabcdba41e26a7381ede56c19cd3c7c066d66ÄÁ
llb.customname®[6/9] RUN cd /tmp     && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip        -O web_ui.zip     && unzip web_ui.zip     && mv dist /webui     && rm web_ui.zipË
Gsha256:ba27630e0f5c94d14c0c31d78793cce7b98dabcf9656f5f98329f91b4e2a8c29ÿü
llb.customnameé[9/9] RUN apt-get update 	&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean     && apt-get --no-install-recommends install -y git golang ca-certificates build-essential     && apt-get clean     && rm -rf /var/lib/apt/lists 	&& go get -v github.com/hashicorp/consul 	&& mv /go/bin/consul /usr/bin/consul 	&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty 	&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') 	&& rm /tmp/dpkg.* 	&& rm -rf /goŠ
Gsha256:cfdee63796d8dfe0ec6d870bbf0810fb8e45f172f1a48329b40cf6319d707842?=
llb.customname+[1/9] FROM docker.io/brimstone/ubuntu:14.04ç
Gsha256:ecbf18935dd16a7926f1bd9c334573416c7522ccb83a0b7d607924d95035c5d2›˜
llb.customname…[5/9] RUN apt-get update     && apt-get --no-install-recommends install -y unzip wget 	&& apt-get clean 	&& rm -rf /var/lib/apt/listsŠ
W
Gsha256:24066516ede6fe3d9f815fe1770cacdfd16f4dd4a033d0538830508a5a73212a


$
W
Gsha256:4da3d515ba7b6f830044e53bd16cabcdba41e26a7381ede56c19cd3c7c066d66



W
Gsha256:ba27630e0f5c94d14c0c31d78793cce7b98dabcf9656f5f98329f91b4e2a8c29


(4
W
Gsha256:cfdee63796d8dfe0ec6d870bbf0810fb8e45f172f1a48329b40cf6319d707842



W
Gsha256:ecbf18935dd16a7926f1bd9c334573416c7522ccb83a0b7d607924d95035c5d2


	Ê

Dockerfile¯FROM brimstone/ubuntu:14.04

CMD []

ENTRYPOINT ["/usr/bin/consul", "agent", "-server", "-data-dir=/consul", "-client=0.0.0.0", "-ui-dir=/webui"]

EXPOSE 8500 8600 8400 8301 8302

RUN apt-get update \
    && apt-get --no-install-recommends install -y unzip wget \
	&& apt-get clean \
	&& rm -rf /var/lib/apt/lists

RUN cd /tmp \
    && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip \
       -O web_ui.zip \
    && unzip web_ui.zip \
    && mv dist /webui \
    && rm web_ui.zip

RUN apt-get update \
	&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean \
    && apt-get --no-install-recommends install -y unzip wget \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists \

    && cd /tmp \
    && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip \
       -O web_ui.zip \
    && unzip web_ui.zip \
    && mv dist /webui \
    && rm web_ui.zip \

	&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \
	&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \
	&& rm /tmp/dpkg.*

ENV GOPATH /go

RUN apt-get update \
	&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean \
    && apt-get --no-install-recommends install -y git golang ca-certificates build-essential \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists \

	&& go get -v github.com/hashicorp/consul \
	&& mv $GOPATH/bin/consul /usr/bin/consul \

	&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \
	&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \
	&& rm /tmp/dpkg.* \
	&& rm -rf $GOPATH

Dockerfile