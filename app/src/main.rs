//! The service's entry point: config → state → router → run on Lambda or locally.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use app::config::Config;
use app::state::AppState;

/// glibc's malloc and free were about a fifth of a list request's CPU (perf, release build).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The longest init waits for the warm-up calls.
const WARM_UP_BOUND: std::time::Duration = std::time::Duration::from_millis(300);

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    // Decided first: lambda_runtime panics when started outside Lambda.
    let on_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    // Lambda sends a sandbox one event at a time, and at up to 1,769 MB gives it at most one
    // vCPU: one thread serves it (worker threads only added wake-ups, about a tenth of a list
    // request's CPU). Locally, with more than one core, requests run in parallel.
    let one_core = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let runtime = if on_lambda || one_core {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    };
    match runtime {
        Ok(runtime) => runtime.block_on(serve(started, on_lambda)),
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(started: std::time::Instant, on_lambda: bool) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if on_lambda {
        // One JSON object per line. Its `spans` carry Lambda's request id (lambda_runtime's
        // "Lambda runtime invoke" span, `requestId`) and ours (`request`, `id`).
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_env_filter(filter)
            .with_target(false)
            .init();
    } else {
        // Colours only on a terminal: redirected to a file or a pipe (`cargo xtask local > log`),
        // escape codes would be noise.
        use std::io::IsTerminal;
        let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).init();
    }

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    // Locally against the emulators, no TLS and so no CA store. On Lambda always the SDK's own
    // client, as in production (the Lambda runtime tests run it against plain-http emulators).
    let sdk = app::state::sdk_config(&config.aws, config.plain_http_endpoints && !on_lambda).await;
    let state = AppState::new(&sdk, &config);
    // The first request would otherwise open both connections itself, TLS handshakes included
    // (most of a cold first request's time on Lambda). On Lambda it is part of init, before the
    // first invocation; locally the server listens at once and it runs beside (nothing waits
    // for a local server's init, but everything waits for its /health).
    let warm_up = std::time::Instant::now();
    if config.warm_up && on_lambda {
        state.warm_up(WARM_UP_BOUND).await;
    } else if config.warm_up {
        let state = state.clone();
        tokio::spawn(async move { state.warm_up(WARM_UP_BOUND).await });
    }
    let warm_up_ms = warm_up.elapsed().as_secs_f64() * 1000.0;
    let app = app::router(state);
    // Init runs once per sandbox: on Lambda every init is a cold start (provisioned concurrency
    // and SnapStart say so in AWS_LAMBDA_INITIALIZATION_TYPE).
    let initialization = std::env::var("AWS_LAMBDA_INITIALIZATION_TYPE").unwrap_or_else(|_| "local".into());
    let cold_start = on_lambda && initialization == "on-demand";
    let init_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(init_ms, warm_up_ms, cold_start, initialization, "init done");
    if config.metrics && cold_start {
        app::metrics::emit_cold_start(init_ms);
    }

    let result = if on_lambda {
        lambda_http::run(app).await.map_err(|e| e.to_string())
    } else {
        serve_locally(app, config.port).await.map_err(|e| e.to_string())
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_locally(app: axum::Router, port: u16) -> std::io::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e} (set PORT to another port)"))
    })?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await
}

/// Ctrl-C or SIGTERM: finish in-flight requests, then exit.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
