//! `bespin`: the Bespin HTTP server.
//!
//! ```text
//! bespin [serve] [--listen ADDR] [--db PATH] [--trust-proxy]
//! ```
//! Flags override `BESPIN_LISTEN`, `BESPIN_DB` and `BESPIN_TRUST_PROXY`; the contract's other
//! variables (`PLATFORM_ADMIN_KEY`, `RATE_LIMIT_*`, `CORS_ORIGINS`, `PLAYGROUND_UI_ENABLED`,
//! `DEV_CONSOLE_*`) are read from the environment. Logs go to stderr, filtered by `RUST_LOG`
//! (default `info`).

use bespin_http::Config;
use std::process::ExitCode;

const USAGE: &str = "usage: bespin [serve] [--listen ADDR] [--db PATH] [--trust-proxy]";

fn parse(mut config: Config, args: &[String]) -> Result<Config, String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "serve" => {}
            "--listen" => {
                let v = it.next().ok_or("--listen needs an address")?;
                config.listen = v
                    .parse()
                    .map_err(|_| format!("--listen: not an address: {v}"))?;
            }
            "--db" => config.db_path = it.next().ok_or("--db needs a path")?.into(),
            "--trust-proxy" => config.trust_proxy = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(config)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match Config::from_env().and_then(|c| parse(c, &args)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bespin_http::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bespin: {e}");
            ExitCode::FAILURE
        }
    }
}
