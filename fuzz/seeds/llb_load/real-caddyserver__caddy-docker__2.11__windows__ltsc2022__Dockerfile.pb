
P>
<docker-image://mcr.microsoft.com/windows/servercore:ltsc2022R
amd64linux
Ê
I
Gsha256:b5ae627b9bff64919754732887099b8ed25b1cade09c1fb807a2787bf4750962ì
ä

powershell
-Command
J$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue';
¹mkdir /config;     mkdir /data;     mkdir /etc/caddy;     mkdir /usr/share/caddy;     Invoke-WebRequest         -Uri "https://github.com/caddyserver/dist/raw/33ae08ff08d168572df2956ed14fbc4949880d94/config/Caddyfile"         -OutFile "/etc/caddy/Caddyfile";     Invoke-WebRequest         -Uri "https://github.com/caddyserver/dist/raw/33ae08ff08d168572df2956ed14fbc4949880d94/welcome/index.html"         -OutFile "/usr/share/caddy/index.html"APATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin//R
amd64linux

I
Gsha256:71b0f53b3333bf7ec15c5e86784740dafe97af90dd15a6371481adb21d700e60±
©

powershell
-Command
J$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue';
çInvoke-WebRequest         -Uri "https://github.com/caddyserver/caddy/releases/download/v2.11.2/caddy_2.11.2_windows_amd64.zip"         -OutFile "/caddy.zip";     if (!(Get-FileHash -Path /caddy.zip -Algorithm SHA512).Hash.ToLower().Equals('77db9ab02b0dbfc3a8b3928e1c88e48f2b328adcdb02affbc49442ce183cc901d1f4d2ce2a5d1dc897a318948133b1f98f209e1cad56b050bb98336c2ffddd04')) { exit 1; };     Expand-Archive -Path "/caddy.zip" -DestinationPath "/" -Force;     Remove-Item "/caddy.zip" -ForceAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/binCADDY_VERSION=v2.11.2//R
amd64linux
…
I
Gsha256:b7490764be0fad64f783586554056539b1dd8185bbb9ab14c2b8a455ae98f861§
Ÿ
caddy
versionAPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/binCADDY_VERSION=v2.11.2XDG_CONFIG_HOME=c:/configXDG_DATA_HOME=c:/data//R
amd64linux
K
I
Gsha256:8f4b97207844bb21d14268406655e89b9eddca8e6cce1fa20e1f3e97e3053a62§
Gsha256:71b0f53b3333bf7ec15c5e86784740dafe97af90dd15a6371481adb21d700e60ÛØ
llb.customnameÅ[ 3/21] RUN mkdir /config;     mkdir /data;     mkdir /etc/caddy;     mkdir /usr/share/caddy;     Invoke-WebRequest         -Uri "https://github.com/caddyserver/dist/raw/33ae08ff08d168572df2956ed14fbc4949880d94/config/Caddyfile"         -OutFile "/etc/caddy/Caddyfile";     Invoke-WebRequest         -Uri "https://github.com/caddyserver/dist/raw/33ae08ff08d168572df2956ed14fbc4949880d94/welcome/index.html"         -OutFile "/usr/share/caddy/index.html"
Gsha256:8f4b97207844bb21d14268406655e89b9eddca8e6cce1fa20e1f3e97e3053a6242
llb.customname [20/21] RUN ["caddy", "version"]™
Gsha256:b5ae627b9bff64919754732887099b8ed25b1cade09c1fb807a2787bf4750962NL
llb.customname:[ 1/21] FROM mcr.microsoft.com/windows/servercore:ltsc2022Õ
Gsha256:b7490764be0fad64f783586554056539b1dd8185bbb9ab14c2b8a455ae98f861‰†
llb.customnameó[ 5/21] RUN Invoke-WebRequest         -Uri "https://github.com/caddyserver/caddy/releases/download/v2.11.2/caddy_2.11.2_windows_amd64.zip"         -OutFile "/caddy.zip";     if (!(Get-FileHash -Path /caddy.zip -Algorithm SHA512).Hash.ToLower().Equals('77db9ab02b0dbfc3a8b3928e1c88e48f2b328adcdb02affbc49442ce183cc901d1f4d2ce2a5d1dc897a318948133b1f98f209e1cad56b050bb98336c2ffddd04')) { exit 1; };     Expand-Archive -Path "/caddy.zip" -DestinationPath "/" -Force;     Remove-Item "/caddy.zip" -Forceª
W
Gsha256:71b0f53b3333bf7ec15c5e86784740dafe97af90dd15a6371481adb21d700e60



W
Gsha256:8f4b97207844bb21d14268406655e89b9eddca8e6cce1fa20e1f3e97e3053a62


--
W
Gsha256:b5ae627b9bff64919754732887099b8ed25b1cade09c1fb807a2787bf4750962



W
Gsha256:b7490764be0fad64f783586554056539b1dd8185bbb9ab14c2b8a455ae98f861


Ã

Dockerfile¨FROM mcr.microsoft.com/windows/servercore:ltsc2022

SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue';"]

RUN mkdir /config; \
    mkdir /data; \
    mkdir /etc/caddy; \
    mkdir /usr/share/caddy; \
    Invoke-WebRequest \
        -Uri "https://github.com/caddyserver/dist/raw/33ae08ff08d168572df2956ed14fbc4949880d94/config/Caddyfile" \
        -OutFile "/etc/caddy/Caddyfile"; \
    Invoke-WebRequest \
        -Uri "https://github.com/caddyserver/dist/raw/33ae08ff08d168572df2956ed14fbc4949880d94/welcome/index.html" \
        -OutFile "/usr/share/caddy/index.html"

# https://github.com/caddyserver/caddy/releases
ENV CADDY_VERSION=v2.11.2

RUN Invoke-WebRequest \
        -Uri "https://github.com/caddyserver/caddy/releases/download/v2.11.2/caddy_2.11.2_windows_amd64.zip" \
        -OutFile "/caddy.zip"; \
    if (!(Get-FileHash -Path /caddy.zip -Algorithm SHA512).Hash.ToLower().Equals('77db9ab02b0dbfc3a8b3928e1c88e48f2b328adcdb02affbc49442ce183cc901d1f4d2ce2a5d1dc897a318948133b1f98f209e1cad56b050bb98336c2ffddd04')) { exit 1; }; \
    Expand-Archive -Path "/caddy.zip" -DestinationPath "/" -Force; \
    Remove-Item "/caddy.zip" -Force

# See https://caddyserver.com/docs/conventions#file-locations for details
ENV XDG_CONFIG_HOME=c:/config
ENV XDG_DATA_HOME=c:/data

LABEL org.opencontainers.image.version=v2.11.2
LABEL org.opencontainers.image.title=Caddy
LABEL org.opencontainers.image.description="a powerful, enterprise-ready, open source web server with automatic HTTPS written in Go"
LABEL org.opencontainers.image.url=https://caddyserver.com
LABEL org.opencontainers.image.documentation=https://caddyserver.com/docs
LABEL org.opencontainers.image.vendor="Light Code Labs"
LABEL org.opencontainers.image.licenses=Apache-2.0
LABEL org.opencontainers.image.source="https://github.com/caddyserver/caddy-docker"

EXPOSE 80
EXPOSE 443
EXPOSE 443/udp
EXPOSE 2019

# Make sure it runs and reports its version
RUN ["caddy", "version"]

CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]

Dockerfile