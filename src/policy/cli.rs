//! STUB
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokenCommand {
    List {
        #[arg(long)]
        access_file: std::path::PathBuf,
    },
}
pub fn run(_: TokenCommand) -> std::process::ExitCode {
    std::process::ExitCode::FAILURE
}
