//! Compile time of Dockerfiles made of one instruction kind repeated 1 000, 5 000 and 20 000
//! times (compiled offline, as `kiln debug llb --offline` does), and of a small Dockerfile on a
//! base image whose config has 100 000 `Env` entries. Every instruction must cost about the same
//! however many came before it, so each row should grow linearly with its size.
//!
//! Run with `cargo bench -p dockerfile` (one kind: `cargo bench -p dockerfile -- env`).

use dockerfile::{BuildOptions, ImageResolver, OfflineResolver, ResolvedImage};
use oci::{ImageConfig, Platform, Reference};

const SIZES: [usize; 3] = [1_000, 5_000, 20_000];

fn compile_with<R: ImageResolver>(text: &str, resolver: &R) -> dockerfile::Compiled {
    testkit::block_on(dockerfile::compile(text, &BuildOptions::default(), resolver))
        .unwrap_or_else(|e| panic!("the benchmark's Dockerfile must compile: {e}"))
}

/// `head`, then `line(i)` for `i` in `0..n`, then `tail`.
fn repeated(head: &str, n: usize, line: impl Fn(usize) -> String, tail: &str) -> String {
    let mut text = String::from(head);
    for i in 0..n {
        text.push_str(&line(i));
        text.push('\n');
    }
    text.push_str(tail);
    text
}

fn bench_text(bencher: divan::Bencher, text: impl Fn() -> String) {
    bencher
        .with_inputs(text)
        .bench_local_refs(|text| divan::black_box(compile_with(text, &OfflineResolver)));
}

#[divan::bench(args = SIZES, sample_count = 5)]
fn env(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated("FROM scratch\n", n, |i| format!("ENV VAR{i}=value{i}"), "")
    });
}

/// One variable set again and again: the entry keeps its place, the environment stays small.
#[divan::bench(args = SIZES, sample_count = 5)]
fn env_same_name(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated("FROM scratch\n", n, |i| format!("ENV VAR=value{i}"), "")
    });
}

/// One ENV instruction with `n` pairs on continuation lines.
#[divan::bench(args = SIZES, sample_count = 5)]
fn env_one_instruction(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated(
            "FROM scratch\nENV \\\n",
            n,
            |i| format!("  VAR{i}=value{i} \\"),
            "  LAST=1\n",
        )
    });
}

#[divan::bench(args = SIZES, sample_count = 5)]
fn arg(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated("FROM scratch\n", n, |i| format!("ARG ARG{i}=value{i}"), "")
    });
}

/// ARGs before the first FROM (the global scope), each default using the one before.
#[divan::bench(args = SIZES, sample_count = 5)]
fn global_arg(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        let mut text = repeated("ARG G0=x\n", n, |i| format!("ARG G{}=${{G{i}}}", i + 1), "");
        text.push_str("FROM scratch\nARG G1\n");
        text
    });
}

#[divan::bench(args = SIZES, sample_count = 5)]
fn label(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated("FROM scratch\n", n, |i| format!("LABEL label{i}=value{i}"), "")
    });
}

#[divan::bench(args = SIZES, sample_count = 5)]
fn run(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated("FROM scratch\n", n, |i| format!("RUN echo {i}"), "")
    });
}

/// RUN steps with a cache and a secret mount each.
#[divan::bench(args = SIZES, sample_count = 5)]
fn run_mounts(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated(
            "FROM scratch\n",
            n,
            |i| {
                format!("RUN --mount=type=cache,target=/c{i} --mount=type=secret,id=s{i},env=S{i} echo $S{i}")
            },
            "",
        )
    });
}

/// One RUN of `n` continuation lines.
#[divan::bench(args = SIZES, sample_count = 5)]
fn run_continuation(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated(
            "FROM scratch\nRUN true \\\n",
            n,
            |i| format!("  && echo {i} \\"),
            "  && true\n",
        )
    });
}

/// One RUN with a heredoc of `n` lines.
#[divan::bench(args = SIZES, sample_count = 5)]
fn run_heredoc(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated("FROM scratch\nRUN <<EOF\n", n, |i| format!("echo {i}"), "EOF\n")
    });
}

#[divan::bench(args = SIZES, sample_count = 5)]
fn copy(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated("FROM scratch\n", n, |i| format!("COPY file{i} /dest/"), "")
    });
}

#[divan::bench(args = SIZES, sample_count = 5)]
fn add(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated("FROM scratch\n", n, |i| format!("ADD file{i}.tar /dest/"), "")
    });
}

#[divan::bench(args = SIZES, sample_count = 5)]
fn workdir(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated("FROM scratch\n", n, |i| format!("WORKDIR /work/{i}"), "")
    });
}

#[divan::bench(args = SIZES, sample_count = 5)]
fn user(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated("FROM scratch\n", n, |i| format!("USER user{i}"), "")
    });
}

#[divan::bench(args = SIZES, sample_count = 5)]
fn expose(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated("FROM scratch\n", n, |i| format!("EXPOSE {}", i % 60_000 + 1), "")
    });
}

#[divan::bench(args = SIZES, sample_count = 5)]
fn volume(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated("FROM scratch\n", n, |i| format!("VOLUME /volume{i}"), "")
    });
}

#[divan::bench(args = SIZES, sample_count = 5)]
fn cmd(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated("FROM scratch\n", n, |i| format!("CMD echo {i}"), "")
    });
}

/// `n` ONBUILD triggers in a stage, all run by the stage built on it.
#[divan::bench(args = SIZES, sample_count = 5)]
fn onbuild(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated(
            "FROM scratch AS base\n",
            n,
            |i| format!("ONBUILD RUN echo {i}"),
            "FROM base\n",
        )
    });
}

/// `n / 2` stages, each built on the one before and setting one more variable.
#[divan::bench(args = SIZES, sample_count = 5)]
fn stage_chain(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        repeated(
            "FROM scratch AS s0\n",
            n / 2,
            |i| format!("FROM s{i} AS s{}\nENV VAR{i}=value{i}", i + 1),
            "",
        )
    });
}

/// `n / 2` stages from images (`FROM … AS`), each copied from by the last stage.
#[divan::bench(args = SIZES, sample_count = 5)]
fn stages_from_images(bencher: divan::Bencher, n: usize) {
    bench_text(bencher, || {
        let mut text = repeated("", n / 2, |i| format!("FROM alpine:3.{} AS s{i}", i % 20), "");
        text.push_str("FROM scratch\n");
        repeated(&text, n / 2, |i| format!("COPY --from=s{i} /a /a{i}"), "")
    });
}

/// Answers every image with one config whose `Env` has 100 000 entries.
struct BigEnvResolver {
    config: ImageConfig,
}

impl ImageResolver for BigEnvResolver {
    async fn resolve(
        &self,
        reference: &Reference,
        _platform: &Platform,
    ) -> Result<ResolvedImage, dockerfile::ResolveError> {
        Ok(ResolvedImage {
            reference: reference.clone(),
            config: self.config.clone(),
        })
    }
}

/// A base image with 100 000 `Env` entries, then 1 000 ENV lines and a RUN.
#[divan::bench(sample_count = 5)]
fn base_image_with_100k_env(bencher: divan::Bencher) {
    let mut config = ImageConfig::default();
    config.config.env = Some((0..100_000).map(|i| format!("IMAGE_VAR{i}=value{i}")).collect());
    let resolver = BigEnvResolver { config };
    let text = repeated(
        "FROM big\n",
        1_000,
        |i| format!("ENV VAR{i}=value{i}"),
        "RUN true\n",
    );
    bencher.bench_local(|| divan::black_box(compile_with(&text, &resolver)));
}

fn main() {
    divan::main();
}
