
A/
-docker-image://docker.io/library/ubuntu:14.04R
amd64linux
œ
I
Gsha256:e735c9664eb722d0387f5e63352a2788ea30f1df74d7b4d854e98ad9995c2d48¾
¶
/bin/sh
-c
aapt-get update -qy && apt-get install mutt offlineimap vim-nox abook elinks curl tmux cron zsh -yAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
31
local://context
local.sharedkeyhintcontext
Ý
I
Gsha256:b16e06e8980ae702b3744a653f4f3b892fb37411cfb5940d6dadbff129fb2e55
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"53"/
/.muttrc/ ÿÿÿÿÿÿÿÿÿ(08@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
ä
I
Gsha256:937cfdaa9b44745ca96cbf3a0bcf50bb2376797859f4bff365ce1c4770482ddd
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"<:"6
/.offlineimaprc/ ÿÿÿÿÿÿÿÿÿ(08@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
à
I
Gsha256:9727c6b073fc7ae3ac995e88ba26357bf39a43873723c5efca4ae594a60f7657
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"86"2
/.tmux.conf/ ÿÿÿÿÿÿÿÿÿ(08@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
ß
I
Gsha256:4a79376a2cdbc043277c3a9f75bf4872fbc41ee635e36bae317d892b5b979efd
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"75"1
/mutt/.mutt ÿÿÿÿÿÿÿÿÿ(08@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
Ý
I
Gsha256:59e29b03124e9d588a26e47ee0cac57f04b910d900351c402f176d161fd49790
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"53"/
/vim/.vim ÿÿÿÿÿÿÿÿÿ(08@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
á
I
Gsha256:360b690f70f09a4aa22404f544ec3d1679483ee9886bf50cf169b3400c2b9926
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"97"3
/vimrc/.vimrc ÿÿÿÿÿÿÿÿÿ(08@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
è
I
Gsha256:ad28a1ec0189795bfe60d0e27483dfe7fb85a8f47f0326e7dd941a0bd08e00d1
I
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb4"@>":
/crontab/etc/crontab ÿÿÿÿÿÿÿÿÿ(08@HPXÿÿÿÿÿÿÿÿÿR
amd64linux
Ï
I
Gsha256:22e71ed14ee4c8d170a87a311413f512bb1853cc061cbd0fd831aa3a95ad4114r
k
/bin/sh
-c
chmod 644 /etc/crontabAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
Ä
I
Gsha256:7b3a1f40313c5faf9f873aa348d84062229bff75c8d5c363bc88de357ddff22eg
`
/bin/sh
-c
mkdir /MailAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
Ì
I
Gsha256:6e5b1fce181cde5b0831e9249fe729d75d3fe4b2e6da71648f7bc4e2e3337acdo
h
/bin/sh
-c
mkdir /.offlineimapAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
ç
I
Gsha256:0b9d80c4b8886770ce9050b50cc306abfb22d92f8862f6a334fff7fb7c34f6d2‰

/bin/sh
-c
,echo "export TERM=screen-256color" >/.zshenvAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux
K
I
Gsha256:7b7472d63fa5e209ae5f5288a887834b20ef18e50b219937b84b09929722c0a2~
Gsha256:0b9d80c4b8886770ce9050b50cc306abfb22d92f8862f6a334fff7fb7c34f6d231
llb.customname[12/14] RUN mkdir /.offlineimap|
Gsha256:16f98a7e5653bd2c6aa04e876f3bce99d627ecb29490cdf82710f62678f46bb41/
llb.customname[internal] load build context
Gsha256:22e71ed14ee4c8d170a87a311413f512bb1853cc061cbd0fd831aa3a95ad411442
llb.customname [ 9/14] ADD crontab /etc/crontabt
Gsha256:360b690f70f09a4aa22404f544ec3d1679483ee9886bf50cf169b3400c2b9926)'
llb.customname[ 7/14] ADD vim /.vimw
Gsha256:4a79376a2cdbc043277c3a9f75bf4872fbc41ee635e36bae317d892b5b979efd,*
llb.customname[ 5/14] ADD .tmux.conf /v
Gsha256:59e29b03124e9d588a26e47ee0cac57f04b910d900351c402f176d161fd49790+)
llb.customname[ 6/14] ADD mutt /.muttv
Gsha256:6e5b1fce181cde5b0831e9249fe729d75d3fe4b2e6da71648f7bc4e2e3337acd+)
llb.customname[11/14] RUN mkdir /Mail
Gsha256:7b3a1f40313c5faf9f873aa348d84062229bff75c8d5c363bc88de357ddff22e64
llb.customname"[10/14] RUN chmod 644 /etc/crontab—
Gsha256:7b7472d63fa5e209ae5f5288a887834b20ef18e50b219937b84b09929722c0a2LJ
llb.customname8[13/14] RUN echo "export TERM=screen-256color" >/.zshenvt
Gsha256:937cfdaa9b44745ca96cbf3a0bcf50bb2376797859f4bff365ce1c4770482ddd)'
llb.customname[ 3/14] ADD .muttrc /{
Gsha256:9727c6b073fc7ae3ac995e88ba26357bf39a43873723c5efca4ae594a60f76570.
llb.customname[ 4/14] ADD .offlineimaprc /x
Gsha256:ad28a1ec0189795bfe60d0e27483dfe7fb85a8f47f0326e7dd941a0bd08e00d1-+
llb.customname[ 8/14] ADD vimrc /.vimrcÍ
Gsha256:b16e06e8980ae702b3744a653f4f3b892fb37411cfb5940d6dadbff129fb2e55
llb.customnamem[ 2/14] RUN apt-get update -qy && apt-get install mutt offlineimap vim-nox abook elinks curl tmux cron zsh -yŠ
Gsha256:e735c9664eb722d0387f5e63352a2788ea30f1df74d7b4d854e98ad9995c2d48?=
llb.customname+[ 1/14] FROM docker.io/library/ubuntu:14.04§
W
Gsha256:0b9d80c4b8886770ce9050b50cc306abfb22d92f8862f6a334fff7fb7c34f6d2



W
Gsha256:22e71ed14ee4c8d170a87a311413f512bb1853cc061cbd0fd831aa3a95ad4114





W
Gsha256:360b690f70f09a4aa22404f544ec3d1679483ee9886bf50cf169b3400c2b9926



W
Gsha256:4a79376a2cdbc043277c3a9f75bf4872fbc41ee635e36bae317d892b5b979efd



W
Gsha256:59e29b03124e9d588a26e47ee0cac57f04b910d900351c402f176d161fd49790



W
Gsha256:6e5b1fce181cde5b0831e9249fe729d75d3fe4b2e6da71648f7bc4e2e3337acd



W
Gsha256:7b3a1f40313c5faf9f873aa348d84062229bff75c8d5c363bc88de357ddff22e



W
Gsha256:7b7472d63fa5e209ae5f5288a887834b20ef18e50b219937b84b09929722c0a2



W
Gsha256:937cfdaa9b44745ca96cbf3a0bcf50bb2376797859f4bff365ce1c4770482ddd



W
Gsha256:9727c6b073fc7ae3ac995e88ba26357bf39a43873723c5efca4ae594a60f7657



W
Gsha256:ad28a1ec0189795bfe60d0e27483dfe7fb85a8f47f0326e7dd941a0bd08e00d1


		
W
Gsha256:b16e06e8980ae702b3744a653f4f3b892fb37411cfb5940d6dadbff129fb2e55



W
Gsha256:e735c9664eb722d0387f5e63352a2788ea30f1df74d7b4d854e98ad9995c2d48


Ÿ

Dockerfile„FROM ubuntu:14.04

RUN apt-get update -qy && apt-get install mutt offlineimap vim-nox abook elinks curl tmux cron zsh -y
ADD .muttrc /
ADD .offlineimaprc /
ADD .tmux.conf /
ADD mutt /.mutt
ADD vim /.vim
ADD vimrc /.vimrc
ADD crontab /etc/crontab
RUN chmod 644 /etc/crontab
RUN mkdir /Mail
RUN mkdir /.offlineimap
RUN echo "export TERM=screen-256color" >/.zshenv

CMD setsid cron; tmux -2

Dockerfile