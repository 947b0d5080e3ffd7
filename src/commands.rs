//! Dispatch: one function per subcommand, each thin over the domain modules.

pub mod compose;
pub mod ensure;
pub mod load;
pub mod rotate;
pub mod sync;
pub mod verify;

use crate::cli::{Cli, Command, DebugCommand};
use crate::context::Context;
use crate::error::{exit, Result};
use crate::output::Reporter;

pub async fn run(cli: Cli, reporter: Reporter) -> Result<u8> {
    let cli = match cli {
        Cli {
            global,
            command: Command::Compose(verb),
        } => return compose::run(global, verb).await,
        cli => cli,
    };
    if let Command::Completions { shell } = cli.command {
        let mut cmd = crate::cli::command();
        // Into a buffer first: clap_complete panics when a write fails, as it does when the
        // reader of a pipe (`| head`) has gone.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd, "compose-secrets", &mut script);
        let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), &script);
        return Ok(exit::OK);
    }
    if let Command::Debug(DebugCommand::Man) = cli.command {
        let page =
            crate::man::page().map_err(crate::error::Error::io("stdout", "render the man page"))?;
        let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), &page);
        return Ok(exit::OK);
    }
    if let Command::Debug(DebugCommand::Hardening) = cli.command {
        println!("{}", crate::hardening::report());
        return Ok(exit::OK);
    }
    let template = match &cli.command {
        Command::Ensure(opts) => opts.template.as_deref(),
        _ => None,
    };
    let context = Context::new(&cli.global, template, reporter)?;
    if let Command::Debug(DebugCommand::Settings) = cli.command {
        print!("{}", settings_table(&context, cli.global.json));
        return Ok(exit::OK);
    }
    if let Command::Debug(DebugCommand::Model) = cli.command {
        let project = context.project()?;
        println!(
            "{}",
            serde_json::to_string_pretty(&project.debug_json()).unwrap_or_default()
        );
        return Ok(exit::OK);
    }
    match cli.command {
        Command::Ensure(opts) => ensure::run(&context, &opts).await,
        Command::Load(opts) => load::run(&context, &opts).await,
        Command::Rotate(opts) => rotate::run(&context, &opts).await,
        Command::Sync(opts) => sync::run(&context, &opts).await,
        Command::Verify(opts) => verify::run(&context, &opts).await,
        Command::Completions { .. } | Command::Debug(_) | Command::Compose(_) => Ok(exit::OK),
    }
}

/// `debug settings`: compose-secrets' own settings, then those Compose resolved and those the
/// store and Docker read, each with its value and the layer it came from.
fn settings_table(ctx: &Context, json: bool) -> String {
    use crate::settings::Row;
    let layers = ctx.layers();
    let mut rows = ctx.settings.rows();
    rows.extend(ctx.compose_rows());
    rows.extend([
        Row::variable("kv-concurrency", "COMPOSE_SECRETS_KV_CONCURRENCY", &layers),
        Row::variable("ca-file", "COMPOSE_SECRETS_CA_FILE", &layers),
        Row::variable("credential", "AZURE_CREDENTIAL", &layers),
        Row::variable("tenant-id", "AZURE_TENANT_ID", &layers),
        Row::variable("client-id", "AZURE_CLIENT_ID", &layers),
    ]);
    crate::settings::render(&rows, json)
}
