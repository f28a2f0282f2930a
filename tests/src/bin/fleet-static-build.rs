//! Builds the static `fleet` of the container test (`fleet_tests::static_fleet`) and
//! prints its path: `cargo xtask test` runs this beside the other tests, so that the
//! container test finds it built.

fn main() -> std::process::ExitCode {
    match fleet_tests::static_fleet::build() {
        Ok(path) => {
            #[allow(clippy::print_stdout)]
            {
                println!("{}", path.display());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("fleet-static-build: error: {error:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
