//! The `sync-run` command: parses the options, starts the runtime and hands the command to
//! [`sync_run::app::dispatch`]; everything else lives in the library.

use clap::CommandFactory;
use std::time::Duration;
use sync_run::app::{Cli, Command, dispatch};
use sync_run::cli::session;
use sync_run::exit;

fn main() {
    let cli = sync_run::app::parse(std::env::args_os());
    if let Some(Command::Completions { shell }) = &cli.command {
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "sync-run",
            &mut std::io::stdout(),
        );
        return;
    }
    session::init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sync-run: cannot start the async runtime: {e}");
            std::process::exit(exit::FAILED);
        }
    };
    let code = runtime.block_on(dispatch(cli));
    runtime.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}
