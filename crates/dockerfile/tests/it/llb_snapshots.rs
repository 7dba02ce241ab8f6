//! Snapshots of the Dockerfile → LLB dump for representative Dockerfiles: any change to what
//! the compiler emits shows up as a reviewed diff (`cargo insta review`, or
//! `INSTA_UPDATE=always cargo test` and read the `.snap` files).

use std::collections::BTreeMap;

use dockerfile::{BuildOptions, ImageResolver, ResolvedImage};
use oci::{ImageConfig, Platform, Reference};

/// Resolves every image to a fixed digest and a small config, like a registry would.
struct FakeRegistry;

impl ImageResolver for FakeRegistry {
    async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<ResolvedImage, dockerfile::ResolveError> {
        let digest = oci::Digest::of(reference.to_string().as_bytes());
        let mut config = ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            ..ImageConfig::default()
        };
        config.config.env = Some(vec![
            "PATH=/usr/local/bin:/usr/bin:/bin".into(),
            "LANG=C.UTF-8".into(),
        ]);
        config.config.working_dir = Some("/".into());
        if reference.repository().contains("never") {
            return Err(format!("{reference} must never be resolved").into());
        }
        if reference.tag() == Some("onbuild") {
            config.config.on_build = Some(vec!["COPY . /app/src".into(), "RUN make -C /app/src".into()]);
        }
        Ok(ResolvedImage {
            reference: reference.with_digest(digest),
            config,
        })
    }
}

async fn dump(text: &str, options: BuildOptions) -> String {
    let compiled = dockerfile::compile(text, &options, &FakeRegistry).await.unwrap();
    let graph = llb::Graph::load(&compiled.definition.pb).unwrap();
    let history: Vec<String> = compiled
        .image
        .history
        .iter()
        .map(|h| {
            format!(
                "{}{}",
                if h.empty_layer { "  (empty) " } else { "  " },
                h.created_by.clone().unwrap_or_default()
            )
        })
        .collect();
    let config = serde_json::to_string_pretty(&compiled.image.config).unwrap();
    format!(
        "{}\nhistory:\n{}\nconfig:\n{config}\n",
        llb::dump(&graph),
        history.join("\n")
    )
}

macro_rules! check {
    ($name:ident, $text:expr) => {
        check!($name, $text, BuildOptions::default());
    };
    ($name:ident, $text:expr, $options:expr) => {
        #[tokio::test]
        async fn $name() {
            insta::assert_snapshot!(dump($text, $options).await);
        }
    };
}

check!(
    single_stage,
    "FROM busybox\nRUN echo hello > /greeting\nCMD [\"cat\", \"/greeting\"]\n"
);

check!(
    multi_stage_with_copy_from,
    "FROM golang:1.22 AS build\nWORKDIR /src\nCOPY go.mod go.sum ./\nRUN go mod download\nCOPY . .\nRUN go build -o /out/app ./cmd/app\n\nFROM gcr.io/distroless/static\nCOPY --from=build /out/app /app\nUSER 65532:65532\nENTRYPOINT [\"/app\"]\n"
);

check!(
    global_args_and_platform_args,
    "ARG VERSION=3.19\nARG BASE=alpine:${VERSION}\nFROM --platform=$BUILDPLATFORM ${BASE} AS base\nARG TARGETARCH\nARG VERSION\nRUN echo \"arch=$TARGETARCH version=$VERSION\" > /info\n",
    BuildOptions {
        build_args: BTreeMap::from([("VERSION".into(), "3.20".into())]),
        ..BuildOptions::default()
    }
);

check!(
    env_label_expose_volume_healthcheck,
    "FROM debian:bookworm\nENV APP_HOME=/srv/app PORT=8080\nENV URL=http://localhost:$PORT/\nLABEL org.opencontainers.image.title=\"my app\" version=1\nEXPOSE $PORT 9000-9001/udp\nVOLUME [\"/data\", \"$APP_HOME/cache\"]\nSTOPSIGNAL SIGINT\nHEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD curl -f $URL || exit 1\nSHELL [\"/bin/bash\", \"-eo\", \"pipefail\", \"-c\"]\nRUN echo ok\n"
);

check!(
    run_mounts,
    "# syntax=docker/dockerfile:1\nFROM rust:1 AS build\nWORKDIR /src\nRUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \\\n    --mount=type=bind,source=Cargo.toml,target=Cargo.toml \\\n    --mount=type=tmpfs,target=/tmp,size=64m \\\n    --mount=type=secret,id=token,env=TOKEN \\\n    --mount=type=secret,id=npmrc,target=/root/.npmrc,required \\\n    --mount=type=ssh \\\n    --mount=type=cache,id=target,target=target,uid=1000,gid=1000,mode=0700 \\\n    cargo build --release\n"
);

check!(
    run_network_security_and_proxies,
    "FROM alpine\nRUN --network=none --security=sandbox echo isolated\nRUN --network=host echo host\nARG HTTP_PROXY\nRUN wget example.com\n",
    BuildOptions {
        build_args: BTreeMap::from([
            ("https_proxy".into(), "http://proxy:3128".into()),
            ("HTTP_PROXY".into(), "http://declared:3128".into())
        ]),
        ..BuildOptions::default()
    }
);

check!(
    heredocs,
    "FROM alpine\nRUN <<EOF\napk add curl\necho done\nEOF\nRUN <<'PY' python3\nprint(\"hi\")\nPY\nRUN <<EOF\n#!/usr/bin/env python3\nprint(\"script\")\nEOF\nCOPY <<-EOT /etc/motd\n\tWelcome $HOSTNAME\n\tEOT\nCOPY <<A <<B /files/\na\nA\nb\nB\n"
);

check!(
    copy_flags,
    "FROM alpine\nCOPY --chown=app:app --chmod=0640 config.yml /etc/app/\nCOPY --chmod=u=rwX,go=rX scripts/ /usr/local/bin/\nCOPY --link --from=busybox /bin/busybox /bin/\nCOPY --parents ./src/**/*.go /build/\nCOPY --exclude=*.md --exclude=tests docs/ /docs/\nWORKDIR relative\nCOPY . .\n"
);

check!(
    add_sources,
    "FROM alpine\nADD rootfs.tar.gz /\nADD --unpack=false archive.tar /archives/\nADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/tool-1.0.tar.gz /opt/\nADD --keep-git-dir https://github.com/moby/buildkit.git#v0.14.0:docs /docs\nADD git@github.com:example/private.git?ref=main&subdir=conf /conf\n"
);

check!(
    onbuild_triggers,
    "FROM example/app:onbuild AS app\nRUN echo after triggers\n\nFROM scratch AS base\nONBUILD RUN echo from base trigger\nCOPY --from=app /app /app\n\nFROM base\nCMD [\"/app\"]\n"
);

check!(
    target_prunes_unused_stages,
    "FROM this/image/is/never:resolved AS broken\nRUN exit 1\n\nFROM busybox AS wanted\nRUN echo wanted\n\nFROM wanted AS later\nRUN echo later\n",
    BuildOptions {
        target: Some("wanted".into()),
        ..BuildOptions::default()
    }
);

check!(
    named_contexts,
    "FROM base\nCOPY --from=assets /logo.png /usr/share/logo.png\nRUN --mount=from=tools,target=/tools /tools/build\n",
    BuildOptions {
        named_contexts: BTreeMap::from([
            (
                "base".into(),
                dockerfile::convert::NamedContext::Image(Reference::parse("debian:bookworm").unwrap())
            ),
            (
                "assets".into(),
                dockerfile::convert::NamedContext::Local("named-assets".into())
            ),
            (
                "tools".into(),
                dockerfile::convert::NamedContext::Local("named-tools".into())
            ),
        ]),
        ..BuildOptions::default()
    }
);

check!(
    windows_escape_and_shell,
    "# escape=`\nFROM mcr.microsoft.com/windows/servercore:ltsc2022\nSHELL [\"powershell\", \"-Command\"]\nRUN Write-Host `\n    'hello'\nENV PATH=\"C:\\tools;${PATH}\"\n"
);
