//! `kiln debug llb` and `kiln debug parse`: what the frontend makes of a Dockerfile.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::args::{Cli, LlbArgs};
use crate::build::{compile_request, load_inputs};
use crate::progress::{Display, Style};
use crate::render::CliError;
use crate::setup::open_engine;

/// `kiln debug llb`: the LLB graph, one op per line.
pub(crate) async fn llb(cli: &Cli, args: &LlbArgs) -> Result<ExitCode, CliError> {
    let mut request = compile_request(&args.compile)?;
    let file = args.compile.file.as_deref();
    let source = crate::context::classify(&args.compile.context, file).map_err(CliError::Usage)?;
    // Kept until compiling ends: a context from standard input lives in its directory.
    let _inputs = load_inputs(&mut request, &source, file).await?;
    let definition = if args.offline {
        engine::compile_offline(&request)
            .await
            .map_err(|e| CliError::Build(Box::new(e), None))?
    } else {
        let engine = open_engine(cli).await?;
        let display = Display::new(Style::Plain, false);
        let result = engine.compile(&request, false, display.clone()).await;
        display.finish();
        result.map_err(|e| CliError::Build(Box::new(e), None))?
    };
    let graph = llb::Graph::load(&definition.pb).context("the compiled definition does not load")?;
    print!("{}", llb::dump(&graph));
    Ok(ExitCode::SUCCESS)
}

/// `kiln debug parse`: the parse tree in BuildKit's test dump format.
pub(crate) fn parse(file: &Path) -> Result<ExitCode, CliError> {
    let text = std::fs::read_to_string(file).with_context(|| format!("failed to read {}", file.display()))?;
    let ast = dockerfile::parser::parse(&text);
    if let Some(d) = ast.first_error() {
        return Err(CliError::Usage(format!(
            "{}:{}: {}",
            file.display(),
            d.start_line,
            d.message
        )));
    }
    print!("{}", ast.dump());
    Ok(ExitCode::SUCCESS)
}
