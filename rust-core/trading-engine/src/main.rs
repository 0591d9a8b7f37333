//! `trading-engine`: the Rust engine's command line. `analyze` prints the analysis document,
//! `serve` runs the gRPC server (`docs/GRPC.md`), `probe` checks a server's health (the
//! containers' health checks), `config` prints the parsed configuration.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use chan_core::{analyze, ChanError};
use clap::{Parser, Subcommand};
use trading_config::{FileConfig, MacdPresets, YamlConfig};
use trading_engine::columns::{self, Mapping};
use trading_engine::csv_input::{self, Loaded, Options, ReadError};
use trading_engine::summary;
use trading_engine::times::{TimeUnit, ZoneName};

/// The mappings of one `--columns`.
#[derive(Debug, Clone)]
struct Mappings(Vec<Mapping>);

fn parse_mappings(s: &str) -> Result<Mappings, String> {
    columns::parse_mappings(s).map(Mappings)
}

// The doc comments below are the --help text, read in a terminal: no Markdown.
#[allow(clippy::doc_markdown)]
#[derive(Parser)]
#[command(name = "trading-engine", version, about = "Chan theory (缠论) engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// The doc comments below are the --help text, read in a terminal: no Markdown.
#[allow(clippy::doc_markdown)]
#[derive(Subcommand)]
enum Command {
    /// Analyze a CSV, TSV or TXT file of bars (not Parquet) and print the document as JSON.
    ///
    /// Reads delimited text: CSV, TSV or TXT with `,` `;` tab or `|` between fields (detected
    /// from the header line), UTF-8 with or without BOM, or GBK/GB18030. Does not read Parquet:
    /// use `trading-system analyze` for Parquet files. Columns are found by name (time, open,
    /// high, low, close, volume and their aliases: Yahoo, akshare, tushare; see
    /// config/columns.yaml); volume is optional. Times: ISO dates and date-times with or
    /// without an offset, 2025/06/09, YYYYMMDD, or epoch s/ms/us/ns (decided by magnitude).
    /// The rules are in docs/DATA.md.
    #[command(verbatim_doc_comment)]
    Analyze {
        /// The file (CSV, TSV or TXT).
        file: PathBuf,
        /// Map fields to columns the alias table does not know, e.g. --columns
        /// time=trade_date,volume=vol (repeatable; wins over the table).
        #[arg(long, value_name = "FIELD=COLUMN,...", value_parser = parse_mappings)]
        columns: Vec<Mappings>,
        /// Read a number time column in this unit instead of deciding by magnitude.
        #[arg(long, value_enum)]
        time_unit: Option<TimeUnit>,
        /// The zone of times written without an offset (an IANA name such as Asia/Shanghai).
        #[arg(long, default_value = "UTC")]
        tz: ZoneName,
        /// YAML configuration (the shape of config/default.yaml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override one key, e.g. --set pen.definition=traditional (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Use a named MACD preset from the presets file.
        #[arg(long)]
        macd_preset: Option<String>,
        /// The MACD presets file.
        #[arg(long, default_value = "config/macd_params.yaml")]
        presets: PathBuf,
        /// Include the MACD series (dif, dea, histogram) in the document.
        #[arg(long)]
        with_macd: bool,
        /// Indent the JSON.
        #[arg(long)]
        pretty: bool,
        /// Print a readable summary instead of the JSON document (times in --tz).
        #[arg(long, conflicts_with = "pretty")]
        summary: bool,
    },
    /// Serve the gRPC contract (proto/trading.proto) until SIGTERM or SIGINT. Prints
    /// `listening on HOST:PORT` on stdout once ready; logs JSON lines on stderr.
    Serve {
        /// The port (0: any free port); default server.rust_port.
        #[arg(long)]
        port: Option<u16>,
        /// YAML configuration (the shape of config/default.yaml); default: the built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override one key, e.g. --set server.auth_token=secret (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Check a server's health (grpc.health.v1 Check) and print `HOST:PORT SERVICE STATUS`.
    /// Exit status 0 when SERVING, 1 when NOT_SERVING or the service is unknown, 3 when the
    /// server does not answer (unreachable, or past the deadline), 4 when TLS failed (a
    /// certificate not trusted or refused, or TLS on one side only). TLS as the `client`
    /// section says (client.tls_ca_file or server.tls_cert_file set: TLS).
    Probe {
        /// The server; default server.host:server.rust_port (a wildcard host such as 0.0.0.0
        /// is probed on the loopback address).
        #[arg(long, value_name = "HOST:PORT")]
        address: Option<String>,
        /// The service to check ("" for the whole server).
        #[arg(long, default_value = trading_server::SERVICE_NAME)]
        service: String,
        /// The deadline for connecting and answering, in milliseconds.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
        timeout_ms: u64,
        /// YAML configuration (the shape of config/default.yaml), for the default address.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override one key (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Print the parsed configuration as JSON: {"config": ...} with every key (tokens that
    /// are set shown as "<redacted>"), and "presets" too when --presets is given.
    Config {
        /// YAML configuration (the shape of config/default.yaml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override one key (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A MACD presets file (config/macd_params.yaml) to parse and print as well.
        #[arg(long)]
        presets: Option<PathBuf>,
    },
}

/// Reads the configuration file (or takes the defaults), then applies the `--set` overrides.
fn load_config(config: Option<&PathBuf>, set: &[String]) -> Result<FileConfig> {
    let mut cfg = match config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            FileConfig::from_yaml(&text)?
        }
        None => FileConfig::default(),
    };
    // File < environment < --set, as in the Python package.
    cfg.apply_env(std::env::vars())?;
    for s in set {
        cfg.set(s)?;
    }
    Ok(cfg)
}

fn serve(port: Option<u16>, cfg: FileConfig) -> Result<()> {
    trading_server::log::init(&cfg.logging.level, &cfg.logging.format)
        .map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = runtime.block_on(async {
        // Signal handlers first: a SIGTERM right after "listening on" is not lost.
        let stop = trading_server::shutdown_signal().context("installing signal handlers")?;
        let server = trading_server::EngineServer::bind(cfg, port).await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", server.local_addr())?;
        out.flush()?;
        drop(out);
        server.serve(stop).await?;
        anyhow::Ok(())
    });
    // Calls still running after the grace period are not waited for.
    runtime.shutdown_background();
    result
}

/// `probe`: one health check; prints its line and returns the exit status.
fn probe(address: Option<String>, service: &str, timeout_ms: u64, cfg: &FileConfig) -> Result<u8> {
    let address = if let Some(a) = address {
        a
    } else {
        let port = u16::try_from(cfg.server.rust_port)
            .with_context(|| format!("server.rust_port {} is not a port", cfg.server.rust_port))?;
        trading_server::probe::local_address(&cfg.server.host, port)
    };
    let tls = trading_server::probe::client_tls(cfg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let timeout = Duration::from_millis(timeout_ms);
    let found = runtime.block_on(trading_server::probe::check(
        &address, service, timeout, tls,
    ));
    let label = trading_server::probe::service_label(service);
    println!("{address} {label} {}", found.word());
    match &found {
        trading_server::probe::Probe::TlsFailure(d) => eprintln!("error: {address}: TLS: {d}"),
        _ => {
            if let Some(detail) = found.detail() {
                eprintln!("error: {address}: {detail}");
            }
        }
    }
    Ok(found.exit_code())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A probe's own statuses are 0, 1, 3 and 4: it cannot run (a bad configuration) is 2.
    let probing = matches!(cli.command, Command::Probe { .. });
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`trading-engine analyze big.csv | head`): what it wanted it
        // has; nothing to report.
        Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // stderr may be closed too: nothing more can be said then.
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            // 2: the input or the configuration is wrong; 1: anything else.
            let bad_input = probing
                || e.chain().any(|c| {
                    c.downcast_ref::<ChanError>().is_some()
                        || c.downcast_ref::<Rejected>().is_some()
                        || matches!(c.downcast_ref::<ReadError>(), Some(ReadError::Load(_)))
                });
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

/// Whether an error is a write to a closed pipe.
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

/// Prints the loader's notices on stderr, one line each.
fn notify(file: &std::path::Path, loaded: &Loaded) {
    let mut err = std::io::stderr().lock();
    for n in &loaded.notices {
        // A closed stderr loses the notice, not the result.
        let _ = writeln!(err, "notice: {}: {n}", file.display());
    }
}

/// Runs a command; its exit status when it did not fail.
fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Serve { port, config, set } => {
            serve(port, load_config(config.as_ref(), &set)?).map(|()| 0)
        }
        Command::Probe {
            address,
            service,
            timeout_ms,
            config,
            set,
        } => probe(
            address,
            &service,
            timeout_ms,
            &load_config(config.as_ref(), &set)?,
        ),
        Command::Config {
            config,
            set,
            presets,
        } => {
            /// What `config` prints.
            #[derive(serde::Serialize)]
            struct Printed {
                config: FileConfig,
                #[serde(skip_serializing_if = "Option::is_none")]
                presets: Option<MacdPresets>,
            }
            // Secrets are never printed.
            let config = load_config(config.as_ref(), &set)?.redacted();
            let presets = match presets {
                Some(p) => {
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    Some(MacdPresets::from_yaml(&text)?)
                }
                None => None,
            };
            let doc = Printed { config, presets };
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
            Ok(0)
        }
        Command::Analyze {
            file,
            columns,
            time_unit,
            tz,
            config,
            set,
            macd_preset,
            presets,
            with_macd,
            pretty,
            summary,
        } => {
            let mut cfg = load_config(config.as_ref(), &[])?;
            if let Some(name) = macd_preset {
                let text = std::fs::read_to_string(&presets)
                    .with_context(|| format!("reading {}", presets.display()))?;
                let all = MacdPresets::from_yaml(&text)?;
                cfg.macd = *all.presets.get(&name).ok_or_else(|| ChanError::Config {
                    key: "macd_preset".into(),
                    message: format!(
                        "unknown preset {name:?}; known: {}",
                        all.presets.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                })?;
            }
            for s in &set {
                cfg.set(s)?;
            }
            let options = Options {
                mappings: columns.into_iter().flat_map(|m| m.0).collect(),
                time_unit,
                tz: tz.clone(),
            };
            let loaded = csv_input::read_file(&file, &options)
                .with_context(|| format!("reading {}", file.display()))?;
            notify(&file, &loaded);
            let analysis = analyze(&loaded.bars, &cfg.engine(), with_macd)
                .map_err(|e| with_lines(e, &loaded))?;
            let doc = analysis.document();
            // Nothing reaches stdout before the analysis succeeded: no partial results.
            let mut out = BufWriter::with_capacity(1 << 16, raw_stdout()?);
            if summary {
                let times: Vec<i64> = loaded.bars.iter().map(|b| b.time).collect();
                let clock = summary::Clock::new(&times, &tz);
                summary::write(&mut out, &file.display().to_string(), &doc, &clock)?;
            } else if pretty {
                serde_json::to_writer_pretty(&mut out, &doc)?;
            } else {
                serde_json::to_writer(&mut out, &doc)?;
            }
            writeln!(out)?;
            out.flush()?;
            Ok(0)
        }
    }
}

/// Standard output without the line buffering of `std::io::stdout()`, which looks for a
/// newline in every block it is handed (a document is megabytes on one line); the blocks come
/// buffered already.
fn raw_stdout() -> Result<File> {
    let fd = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .context("standard output")?;
    Ok(File::from(fd))
}

/// How many of the engine's violations are printed; a count stands for the rest.
const SHOWN_VIOLATIONS: usize = 20;

/// Bars the engine refused: its violations with their file lines, as printed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Rejected(String);

/// Adds each violation's file line (the first 20, then a count of the rest).
fn with_lines(e: ChanError, loaded: &Loaded) -> anyhow::Error {
    let ChanError::InvalidBars(v) = &e else {
        return anyhow::Error::new(e);
    };
    let mut lines: Vec<String> = v
        .iter()
        .take(SHOWN_VIOLATIONS)
        .map(|x| match x.index {
            Some(i) if i < loaded.lines.len() => format!(
                "  line {}: {} [field {}, rule {}]",
                loaded.line(i),
                x.message,
                x.field,
                x.rule
            ),
            _ => format!("  {} [rule {}]", x.message, x.rule),
        })
        .collect();
    if v.len() > SHOWN_VIOLATIONS {
        lines.push(format!("  … and {} more", v.len() - SHOWN_VIOLATIONS));
    }
    // The lines say it all: the engine's own one-line summary is not repeated after them.
    anyhow::Error::new(Rejected(format!(
        "{} bar rule violation(s); nothing was analyzed:\n{}",
        v.len(),
        lines.join("\n")
    )))
}
