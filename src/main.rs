//! The `seqlab` command-line tool; all of it lives in `seqlab-cli`.

fn main() -> std::process::ExitCode {
    seqlab_cli::main()
}
