//! Logging: tracing to stderr, human format (colours only on a terminal) or one JSON
//! object per line when `log_format = "json"`. `RUST_LOG` picks levels (default
//! `info`). HTTP requests log their route template, never the raw path or query
//! (see `api::ops`); secrets are [`crate::config::Secret`]s and print `[redacted]`.
//!
//! Some third-party crates log secrets at their debug level, so their targets are
//! capped ([`CAPPED`]) whatever `RUST_LOG` asks, even for one of their modules: the
//! cap is a second filter every event must also pass, not a directive `RUST_LOG`
//! could override.

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{FilterExt, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Targets (and everything under them) logged at most at this level:
/// - `yup_oauth2` logs each token request at debug (the signed JWT assertion, or the
///   refresh token and client secret) and each response (the access token).
pub const CAPPED: &[(&str, LevelFilter)] = &[("yup_oauth2", LevelFilter::INFO)];

/// The levels of `spec` (`RUST_LOG` syntax; `info` when absent or invalid), under
/// the caps.
fn filter<S>(spec: Option<&str>) -> impl tracing_subscriber::layer::Filter<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let levels = spec
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let caps = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPPED.iter().copied());
    levels.and(caps)
}

/// The subscriber for `format` (`json` or text), `RUST_LOG`-style `spec`, writing to
/// `writer` (with colours when `ansi`).
pub fn subscriber<W>(
    format: &str,
    spec: Option<&str>,
    writer: W,
    ansi: bool,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let layer = if format == "json" {
        layer.json().with_filter(filter(spec)).boxed()
    } else {
        layer.with_filter(filter(spec)).boxed()
    };
    tracing_subscriber::registry().with(layer)
}

/// Installs the global subscriber once (and routes `log` records through it); later
/// calls are ignored.
pub fn init(format: &str) {
    let spec = std::env::var("RUST_LOG").ok();
    let sub = subscriber(
        format,
        spec.as_deref(),
        std::io::stderr,
        std::io::stderr().is_terminal(),
    );
    let _ = tracing_subscriber::util::SubscriberInitExt::try_init(sub);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    /// What reaches the output under `spec`, for one event per (target, level).
    fn logged(spec: &str) -> String {
        let out = Buffer::default();
        let sub = subscriber("text", Some(spec), out.clone(), false);
        tracing::subscriber::with_default(sub, || {
            tracing::debug!(target: "yup_oauth2::service_account", "oauth-debug");
            tracing::trace!(target: "yup_oauth2", "oauth-trace");
            tracing::info!(target: "yup_oauth2::authenticator", "oauth-info");
            tracing::debug!(target: "bookcal::sync", "ours-debug");
            tracing::trace!(target: "hyper_util::client", "other-trace");
        });
        let bytes = out.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn capped_targets_stay_at_their_cap_whatever_rust_log_asks() {
        let cases = [
            (
                "trace",
                ["oauth-info", "ours-debug", "other-trace"].as_slice(),
            ),
            ("yup_oauth2=trace", &["oauth-info"]),
            (
                "yup_oauth2::service_account=trace,debug",
                &["oauth-info", "ours-debug"],
            ),
            ("info", &["oauth-info"]),
            ("warn", &[]),
            ("not a valid spec ===", &["oauth-info"]),
        ];
        let all = [
            "oauth-debug",
            "oauth-trace",
            "oauth-info",
            "ours-debug",
            "other-trace",
        ];
        for (spec, want) in cases {
            let out = logged(spec);
            for msg in all {
                assert_eq!(
                    out.contains(msg),
                    want.contains(&msg),
                    "RUST_LOG={spec}: {msg} in\n{out}"
                );
            }
        }
    }
}
